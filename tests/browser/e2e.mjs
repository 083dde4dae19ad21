// End-to-end test of Warden's dashboard in Debian's headless Chromium (playwright-core).
//
// Usage: WARDEN_URL=http://127.0.0.1:PORT LIVEKIT_API_KEY=K LIVEKIT_API_SECRET=S node e2e.mjs
// Normally run by `cargo test --test it dashboard` (tests/it/dashboard.rs), which starts the
// server and sets E2E_RESTART=stdin: this script then prints RESTART on stdout, gets STOPPED on
// stdin once the server is down, looks at the offline pages, prints START and waits for
// RESTARTED while the wrapper starts the server again. Screenshots go to SCREENSHOT_DIR
// (default target/screenshots). Prints "ok - …"/"not ok - …" per step, then "N passed, N failed".
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const BASE = (process.env.WARDEN_URL || process.argv[2] || '').replace(/\/+$/, '');
const KEY = process.env.LIVEKIT_API_KEY;
const SECRET = process.env.LIVEKIT_API_SECRET;
const SHOTS = path.resolve(process.env.SCREENSHOT_DIR || 'target/screenshots');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const RESTART = process.env.E2E_RESTART === 'stdin';
if (!BASE || !KEY || !SECRET) {
  console.error('usage: WARDEN_URL=… LIVEKIT_API_KEY=… LIVEKIT_API_SECRET=… node e2e.mjs');
  process.exit(2);
}
const T = 15000; // per-wait timeout, ms

// ------------------------------------------------------------------ tokens and webhooks, signed as LiveKit does
const b64u = (s) => Buffer.from(s).toString('base64url');
function jwt(claims, secret = SECRET) {
  const head = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
  return `${head}.${crypto.createHmac('sha256', secret).update(head).digest('base64url')}`;
}
const now = () => Math.floor(Date.now() / 1000);
function accessToken(identity, video, secret = SECRET, ttl = 3600) {
  const t = now();
  return jwt({ iss: KEY, sub: identity, name: identity, jti: crypto.randomUUID(), nbf: t, exp: t + ttl, video }, secret);
}
const ADMIN = accessToken('e2e-admin', { roomAdmin: true, roomCreate: true, roomList: true });
// Valid, but grants no room to watch: every stream request is refused with 403.
const NO_ROOMS = accessToken('e2e-no-rooms', { roomJoin: true, room: 'lobby' });
const VIEWER = accessToken('e2e-viewer', { roomList: true });
const rand = (n = 10) => crypto.randomBytes(n).toString('hex').slice(0, n);
const sid = (p) => `${p}_${rand(12)}`;

async function webhook(obj) {
  const body = Buffer.from(JSON.stringify({ ...obj, id: sid('EV'), createdAt: String(now()) }));
  const t = now();
  const sha256 = crypto.createHash('sha256').update(body).digest('base64');
  const auth = jwt({ iss: KEY, exp: t + 300, nbf: t, iat: t, sha256 });
  const res = await fetch(`${BASE}/webhooks/livekit`, {
    method: 'POST', headers: { 'Content-Type': 'application/webhook+json', Authorization: auth }, body,
  });
  await res.arrayBuffer();
  return res.status;
}
async function hook(obj) {
  const status = await webhook(obj);
  if (status !== 200) throw new Error(`webhook ${obj.event} answered ${status}`);
}
const roomObj = (r) => ({ sid: r.sid, name: r.name, emptyTimeout: 300, creationTime: String(now()) });
const pObj = (p, state = 'ACTIVE') => ({ sid: p.sid, identity: p.identity, name: p.name, state, joinedAt: String(now()) });

// A GET from a chosen loopback source address, so lockout tests touch no other client.
function getFrom(localAddress, pathname, headers = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(BASE + pathname);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, headers, localAddress },
      (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end();
  });
}
async function json(pathname, token = ADMIN) {
  const res = await fetch(BASE + pathname, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`${pathname} answered ${res.status}`);
  return res.json();
}

// ------------------------------------------------------------------ a tiny runner
let passed = 0;
let failed = 0;
const pages = [];
function assert(cond, msg) { if (!cond) throw new Error(msg); }
function eq(a, b, msg) {
  const [x, y] = [JSON.stringify(a), JSON.stringify(b)];
  if (x !== y) throw new Error(`${msg}: got ${x}, want ${y}`);
}
async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}
async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e && e.stack || e).split('\n').slice(0, 6).join('\n  ')}`);
    for (const [i, p] of pages.entries()) await shot(p, `failed-${name.replace(/\W+/g, '-')}-${i}`).catch(() => {});
  }
}

// Every page gets traps: dialogs, page errors, CSP violations, script-set flags and the
// sequence of connection states (recorded by a MutationObserver, so short states count).
const dialogs = [];
const pageErrors = [];
async function newPage(browser, viewport = { width: 1280, height: 900 }) {
  const ctx = await browser.newContext({ viewport });
  await ctx.addInitScript(() => {
    window.__pwned = 0;
    window.__csp = [];
    window.__conn = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    new MutationObserver((records) => {
      for (const r of records) {
        if (r.target.id !== 'conn') continue;
        const last = window.__conn[window.__conn.length - 1];
        if (r.oldValue && r.oldValue !== last) window.__conn.push(r.oldValue);
        window.__conn.push(r.target.dataset.state);
      }
      window.__conn = window.__conn.filter((s, i, a) => i === 0 || s !== a[i - 1]);
    }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state'], attributeOldValue: true });
  });
  const page = await ctx.newPage();
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  pages.push(page);
  return page;
}
const connState = (page) => page.locator('#conn').getAttribute('data-state');
async function waitConn(page, state) {
  await page.waitForFunction((s) => document.getElementById('conn').dataset.state === s, state, { timeout: T });
}
async function signIn(page, token) {
  await page.goto(`${BASE}/`);
  await page.locator('#signin').waitFor({ state: 'visible', timeout: T });
  await page.fill('#token', token);
  await page.click('#signin-submit');
  await waitConn(page, 'live');
}
async function pageSafety(page) {
  const s = await page.evaluate(() => ({
    pwned: window.__pwned, csp: window.__csp, scripts: document.scripts.length,
    // The page's own charts are SVG with class "chart"; any other SVG would come from data.
    injected: document.querySelectorAll('#main img, #main script, #main svg:not(.chart), #main iframe, [onerror], [onload]').length,
  }));
  eq(s.pwned, 0, 'a hostile script ran');
  eq(s.csp, [], 'CSP violations');
  eq(s.scripts, 1, 'scripts in the document');
  eq(s.injected, 0, 'elements injected from data');
  eq(dialogs, [], 'dialogs opened');
  eq(pageErrors, [], 'page errors');
}
const roomCard = (page, name) => page.locator('article.room').filter({ has: page.locator('h3', { hasText: name }) });

// ------------------------------------------------------------------ the scenario
const HOSTILE = ['<img src=x onerror=alert(1)>', '</script><script>window.__pwned=1;alert(2)</script>',
  '\u202Eexe.gnp\u202C evil', '<svg onload=window.__pwned=1>'];

async function httpChecks() {
  await step('GET / sends a strict CSP with a fresh nonce that matches the script and style tags', async () => {
    const nonces = [];
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${BASE}/`);
      eq(res.status, 200, 'GET / status');
      const csp = res.headers.get('content-security-policy') || '';
      for (const d of ["default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "connect-src 'self'"]) {
        assert(csp.includes(d), `CSP lacks ${d}: ${csp}`);
      }
      assert(!/unsafe-inline|unsafe-eval/.test(csp), `CSP allows unsafe code: ${csp}`);
      const m = csp.match(/script-src 'nonce-([A-Za-z0-9+/=_-]{16,})'/);
      assert(m, `no script nonce in CSP: ${csp}`);
      const body = await res.text();
      assert(!body.includes('__CSP_NONCE__'), 'placeholder left in the page');
      const tagNonces = [...body.matchAll(/<(?:script|link)[^>]*\snonce="([^"]+)"/g)].map((x) => x[1]);
      assert(tagNonces.length >= 2, 'script and stylesheet tags carry nonces');
      assert(tagNonces.every((n) => n === m[1]), `tag nonces ${tagNonces} differ from header ${m[1]}`);
      eq(res.headers.get('x-content-type-options'), 'nosniff', 'X-Content-Type-Options');
      eq(res.headers.get('referrer-policy'), 'no-referrer', 'Referrer-Policy');
      assert(/no-store/.test(res.headers.get('cache-control') || ''), 'Cache-Control no-store');
      nonces.push(m[1]);
    }
    assert(nonces[0] !== nonces[1], 'the nonce is the same on two responses');
  });
  await step('assets are served with their content types', async () => {
    for (const [p, type] of [['/assets/app.js', /javascript/], ['/assets/app.css', /text\/css/]]) {
      const res = await fetch(BASE + p);
      eq(res.status, 200, `${p} status`);
      assert(type.test(res.headers.get('content-type') || ''), `${p} content type ${res.headers.get('content-type')}`);
    }
  });
  await step('GET /?token= moves the token into an HttpOnly SameSite=Strict cookie and drops it from the URL', async () => {
    const res = await fetch(`${BASE}/?token=${VIEWER}`, { redirect: 'manual' });
    eq(res.status, 303, 'status');
    const loc = res.headers.get('location') || '';
    assert(!loc.includes(VIEWER) && !loc.includes('token='), `Location keeps the token: ${loc}`);
    const cookie = res.headers.get('set-cookie') || '';
    assert(/^warden_token=/.test(cookie) && /HttpOnly/i.test(cookie) && /SameSite=Strict/i.test(cookie),
      `cookie attributes: ${cookie.replace(VIEWER, '<token>')}`);
  });
}

async function adminFlow(browser) {
  const page = await newPage(browser);
  const room = { sid: sid('RM'), name: `e2e-room-${rand(6)}` };
  const ada = { sid: sid('PA'), identity: `ada-${rand(4)}@example.com`, name: 'Ada Lovelace' };
  const hostile = HOSTILE.map((name, i) => ({ sid: sid('PA'), identity: `evil-${i}-${rand(4)}`, name }));

  await step('an admin signs in by pasting a token; the token is kept nowhere in the page', async () => {
    await page.goto(`${BASE}/`);
    await page.locator('#signin').waitFor({ state: 'visible', timeout: T });
    await shot(page, '01-sign-in');
    await signIn(page, ADMIN);
    const kept = await page.evaluate(() => JSON.stringify([location.href, document.cookie,
      Object.values(localStorage), Object.values(sessionStorage), document.getElementById('token').value]));
    assert(!kept.includes(ADMIN.split('.')[2]), 'the token is visible to the page after sign-in');
    const cookie = (await page.context().cookies()).find((c) => c.name === 'warden_token');
    assert(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'HttpOnly SameSite=Strict session cookie');
    await page.locator('#rooms-empty', { hasText: 'No active rooms' }).waitFor({ timeout: T });
    await shot(page, '02-live-empty');
  });

  await step('webhooks make a room, participants and a track appear live', async () => {
    await hook({ event: 'room_started', room: roomObj(room) });
    await hook({ event: 'participant_joined', room: { ...roomObj(room), numParticipants: 1 }, participant: pObj(ada) });
    await hook({ event: 'track_published', room: roomObj(room), participant: pObj(ada),
      track: { sid: sid('TR'), type: 'AUDIO', source: 'MICROPHONE', muted: true, name: 'mic' } });
    await hook({ event: 'egress_started', egressInfo: { egressId: sid('EG'), roomId: room.sid, roomName: room.name,
      status: 'EGRESS_ACTIVE' } });
    const card = roomCard(page, room.name);
    await card.locator('li.participant', { hasText: 'Ada Lovelace' }).waitFor({ timeout: T });
    await card.locator('.track', { hasText: 'audio · microphone' }).locator('.badge.muted').waitFor({ timeout: T });
    await card.locator('.streams', { hasText: 'Egress' }).waitFor({ timeout: T });
    const snap = await json('/api/rooms');
    const p = snap.rooms.find((r) => r.name === room.name).participants.find((x) => x.sid === ada.sid);
    await card.locator('.p-identity', { hasText: p.identity }).waitFor({ timeout: T });
    assert(!p.identity.includes('ada-'), `identity is not hashed on the wire: ${p.identity}`);
    await page.locator('#feed-list li', { hasText: 'participant_joined' }).first().waitFor({ timeout: T });
  });

  await step('hostile names render as text and execute nothing', async () => {
    for (const h of hostile) await hook({ event: 'participant_joined', room: roomObj(room), participant: pObj(h) });
    const card = roomCard(page, room.name);
    await card.locator('p.count', { hasText: '5 participants' }).waitFor({ timeout: T });
    const snap = await json('/api/rooms');
    const want = Object.fromEntries(snap.rooms.find((r) => r.name === room.name).participants.map((x) => [x.sid, x.name]));
    const shown = await page.evaluate((name) => Object.fromEntries([...[...document.querySelectorAll('article.room')]
      .find((a) => a.dataset.room === name).querySelectorAll('li.participant')]
      .map((li) => [li.dataset.sid, li.querySelector('.p-name').textContent])), room.name);
    for (const h of hostile) eq(shown[h.sid], want[h.sid] || '(no name)', `name shown for ${JSON.stringify(h.name)}`);
    await page.waitForTimeout(500); // give any injected handler (onerror fires async) a chance to run
    await pageSafety(page);
    await shot(page, '03-rooms-live');
  });

  await step('rooms can be filtered by name, client-side', async () => {
    const other = { sid: sid('RM'), name: `e2e-other-${rand(6)}` };
    await hook({ event: 'room_started', room: roomObj(other) });
    await roomCard(page, other.name).waitFor({ timeout: T });
    const total = await page.locator('article.room').count();
    assert(total >= 2, `rooms shown: ${total}`);
    await page.fill('#room-filter', room.name.slice(4).toUpperCase());
    await page.waitForFunction((n) => [...document.querySelectorAll('article.room')].map((a) => a.dataset.room).join() === n,
      room.name, { timeout: T });
    await page.locator('#rooms-shown', { hasText: `1 of ${total} rooms match` }).waitFor({ timeout: T });
    await shot(page, '03b-rooms-filtered');
    // The filter holds while events arrive.
    await hook({ event: 'room_started', room: roomObj({ sid: sid('RM'), name: `e2e-third-${rand(6)}` }) });
    await page.waitForTimeout(500);
    eq(await page.locator('article.room').count(), 1, 'rooms shown while filtered');
    await page.fill('#room-filter', 'no-such-room-zz');
    await page.locator('#rooms-shown', { hasText: 'No room matches' }).waitFor({ timeout: T });
    eq(await page.locator('article.room').count(), 0, 'rooms shown for a filter that matches none');
    await page.fill('#room-filter', '');
    await page.waitForFunction((n) => document.querySelectorAll('article.room').length === n, total + 1, { timeout: T });
    assert(await page.locator('#rooms-shown').isHidden(), 'the filter hint stays after clearing');
    await hook({ event: 'room_finished', room: roomObj(other) });
  });

  await step('agents and SIP callers: badges, running agents with their age, a failed job\'s hostile error as text', async () => {
    const caller = { sid: sid('PA'), identity: `+1555${rand(6)}`, name: 'Front desk caller' };
    await hook({ event: 'participant_joined', room: roomObj(room), participant: { ...pObj(caller), kind: 'SIP' } });
    const bot = { sid: sid('PA'), identity: `agent-${rand(6)}`, name: 'Voice bot' };
    await hook({ event: 'participant_joined', room: roomObj(room), participant: { ...pObj(bot), kind: 'AGENT' } });
    const startedNs = `${now() - 125}000000000`;
    const job = (id, status, extra = {}) => ({ id, type: 'JT_ROOM', agentName: 'receptionist', room: roomObj(room),
      state: { status, startedAt: startedNs, workerId: 'W_browser', ...extra } });
    await hook({ event: 'agent_job_started', job: job('AJ_run', 'JS_RUNNING') });
    // A room job still pending: type and status omitted, as protojson writes zero values.
    await hook({ event: 'agent_job_started', job: { id: 'AJ_pend', agentName: 'notetaker', room: roomObj(room) } });
    const card = roomCard(page, room.name);
    await card.locator('li.participant', { hasText: 'Front desk caller' }).locator('.badge.kind-sip', { hasText: 'SIP caller' }).waitFor({ timeout: T });
    await card.locator('li.participant', { hasText: 'Voice bot' }).locator('.badge.kind-agent', { hasText: 'agent' }).waitFor({ timeout: T });
    eq(await card.locator('li.participant', { hasText: 'Front desk caller' }).locator('.badge.kind-agent').count(), 0, 'agent badge on the SIP caller');
    const running = card.locator('li.agent[data-job="AJ_run"]');
    await running.waitFor({ timeout: T });
    const line = await running.textContent();
    assert(line.includes('receptionist') && line.includes('running') && /running 2m \d+s/.test(line), `agent line: ${line}`);
    await card.locator('li.agent[data-job="AJ_pend"]', { hasText: 'pending' }).waitFor({ timeout: T });
    await card.locator('h4', { hasText: 'Agents (2)' }).waitFor({ timeout: T });
    await shot(page, '03b-agents');
    const evil = '<img src=x onerror="window.__pwned=1">\u202Egnp.exe <b>timeout</b>';
    await hook({ event: 'agent_job_ended', job: job('AJ_run', 'JS_FAILED', { error: evil, endedAt: `${now()}000000000` }) });
    await running.waitFor({ state: 'detached', timeout: T });
    const feed = page.locator('#feed-list li', { hasText: 'agent_job_ended' }).first();
    await feed.waitFor({ timeout: T });
    const html = await feed.innerHTML();
    assert(html.includes('job-error'), `feed line: ${html}`);
    const err = await feed.locator('.job-error').textContent();
    assert(err.includes('timeout') && !err.includes('<') && !err.includes('\u202E'), `job error shown as: ${JSON.stringify(err)}`);
    eq(await feed.locator('img, b').count(), 0, 'markup elements in the feed line');
    await page.waitForTimeout(300);
    await pageSafety(page);
    await hook({ event: 'agent_job_ended', job: job('AJ_pend', 'JS_SUCCESS') });
    await card.locator('li.agent').first().waitFor({ state: 'detached', timeout: T });
    await hook({ event: 'participant_left', room: roomObj(room), participant: pObj(caller, 'DISCONNECTED') });
    await hook({ event: 'participant_left', room: roomObj(room), participant: { ...pObj(bot, 'DISCONNECTED'), kind: 'AGENT' } });
  });

  await step('participant_left removes a participant', async () => {
    await hook({ event: 'participant_left', room: roomObj(room), participant: pObj(ada, 'DISCONNECTED') });
    const card = roomCard(page, room.name);
    await card.locator('li.participant', { hasText: 'Ada Lovelace' }).waitFor({ state: 'detached', timeout: T });
    await card.locator('p.count', { hasText: '4 participants' }).waitFor({ timeout: T });
    await page.locator('#feed-list li', { hasText: 'participant_left' }).first().waitFor({ timeout: T });
  });

  await step('the feed shows times in local time', async () => {
    const iso = await page.locator('#feed-list li time').first().getAttribute('datetime');
    const shown = await page.locator('#feed-list li time').first().textContent();
    const local = await page.evaluate((d) => new Date(d).toLocaleTimeString(), iso);
    eq(shown, local, 'feed time');
    assert(Math.abs(Date.parse(iso) - Date.now()) < 120000, `event time ${iso} is not now`);
  });

  await step('admins see the security panel: status, events, keys', async () => {
    await page.locator('#security').waitFor({ state: 'visible', timeout: T });
    const overall = await page.locator('#sec-overall').getAttribute('data-status');
    assert(['healthy', 'degraded', 'critical'].includes(overall), `overall status ${overall}`);
    const status = await json('/api/security/status');
    eq(overall, status.overall_status, 'overall status shown');
    const overallText = await page.locator('#sec-overall').textContent();
    eq(overallText, `Overall: ${status.overall_status}${status.reason ? ` — ${status.reason}` : ''}`, 'overall line');
    assert(status.keys.length > 0, 'the status lists no key (the wrapper created one)');
    const keys = await page.locator('#sec-keys tbody tr').allTextContents();
    for (const k of status.keys) {
      const row = keys.find((r) => r.includes(k.id));
      const due = k.rotation_due ? 'due now' : 'not due';
      assert(row && row.includes(k.state) && /\d+\.\d h/.test(row) && row.includes(due), `key ${k.id} row: ${row}`);
    }
  });

  await step('a locked-out client is listed and the Unblock button frees it', async () => {
    const ip = '127.0.0.77';
    const bad = accessToken('intruder', { roomList: true }, 'x'.repeat(43));
    for (let i = 0; i < 8; i++) await getFrom(ip, '/api/rooms', { Authorization: `Bearer ${bad}` });
    const locked = await getFrom(ip, '/api/rooms', { Authorization: `Bearer ${VIEWER}` });
    eq(locked, 403, 'a locked-out client with a valid token');
    await page.click('#sec-refresh');
    const row = page.locator(`#sec-blocked li[data-ip="${ip}"]`);
    await row.waitFor({ timeout: T });
    const blockedRow = page.locator('#sec-events tbody tr', { hasText: 'IP_BLOCKED' }).filter({ hasText: ip });
    await blockedRow.first().waitFor({ timeout: T });
    const when = await blockedRow.first().locator('time').getAttribute('datetime');
    assert(when && Math.abs(Date.parse(when) - Date.now()) < 120000, `IP_BLOCKED event time ${when}`);
    await shot(page, '04-security-panel');
    await page.selectOption('#sec-type', 'IP_BLOCKED');
    await page.waitForFunction(() => {
      const types = [...document.querySelectorAll('#sec-events tbody tr td:nth-child(2)')].map((td) => td.textContent);
      return types.length > 0 && types.every((t) => t === 'IP_BLOCKED');
    }, null, { timeout: T });
    await page.selectOption('#sec-type', '');
    await row.locator('button.unblock').click();
    await row.waitFor({ state: 'detached', timeout: T });
    eq(await getFrom(ip, '/api/rooms', { Authorization: `Bearer ${VIEWER}` }), 200, 'unblocked client');
  });

  await step('the security panel draws the last hour (events by type, webhooks per minute) and the connections gauge', async () => {
    const t = await json('/api/security/timeline');
    const hooks = t.webhooks_accepted.reduce((a, b) => a + b, 0);
    assert(hooks >= 8, `webhooks accepted this hour: ${hooks}`);
    await page.click('#sec-refresh');
    await page.waitForFunction((n) => {
      const svg = document.querySelector('#chart-hooks svg.chart');
      return svg && Number(svg.dataset.total) === n;
    }, hooks, { timeout: T });
    const bars = await page.locator('#chart-hooks rect.bar').evaluateAll((r) => r.map((x) => Number(x.dataset.count)));
    eq(bars.reduce((a, b) => a + b, 0), hooks, 'webhook bars add up to the accepted webhooks');
    for (const type of ['IP_BLOCKED', 'SUSPICIOUS_LOGIN']) {
      const want = t.security_events[type].reduce((a, b) => a + b, 0);
      assert(want > 0, `${type} in the timeline`);
      await page.locator(`#chart-sec-legend li[data-type="${type}"]`).waitFor({ timeout: T });
      // The chart may still show the fetch before this one (the webhook total
      // waited for above can be the same in both): wait for this fetch's counts.
      const count = (ty) => [...document.querySelectorAll(`#chart-sec rect[data-series="${ty}"]`)]
        .reduce((a, x) => a + Number(x.dataset.count), 0);
      const reached = await page.waitForFunction(([ty, n, f]) => (new Function('ty', `return (${f})(ty)`))(ty) >= n,
        [type, want, count.toString()], { timeout: T }).then(() => true, () => false);
      const drawn = await page.evaluate(([ty, f]) => (new Function('ty', `return (${f})(ty)`))(ty), [type, count.toString()]);
      assert(reached && drawn >= want, `${type}: ${drawn} drawn, ${want} in the timeline`);
    }
    const g = page.locator('#gauge-conn svg.gauge');
    const open = Number(await g.getAttribute('data-open'));
    assert(open >= 1 && open <= t.connections.open + 2, `gauge shows ${open} open, the server ${t.connections.open}`);
    eq(Number(await g.getAttribute('data-max')), t.connections.max, 'gauge maximum');
    await page.locator('#gauge-text', { hasText: `of at most ${t.connections.max}` }).waitFor({ timeout: T });
    await pageSafety(page);
    await page.locator('.charts').screenshot({ path: path.join(SHOTS, '04b-charts.png') });
  });

  await step('the ingestion kill switch pauses and resumes webhooks, with a confirm step', async () => {
    await page.click('#ingest-toggle');
    await page.locator('#ingest-confirm').waitFor({ state: 'visible', timeout: T });
    const notYet = { sid: sid('RM'), name: 'not-yet' };
    eq(await webhook({ event: 'room_started', room: roomObj(notYet) }), 200, 'before confirm');
    await shot(page, '05-ingestion-confirm');
    await page.click('#ingest-yes');
    await page.locator('#ingest-state[data-enabled="false"]').waitFor({ timeout: T });
    eq(await webhook({ event: 'room_started', room: roomObj({ sid: sid('RM'), name: 'paused' }) }), 503, 'while paused');
    await page.click('#ingest-toggle');
    await page.click('#ingest-yes');
    await page.locator('#ingest-state[data-enabled="true"]').waitFor({ timeout: T });
    eq(await webhook({ event: 'room_finished', room: roomObj(notYet) }), 200, 'resumed');
  });
  return { page, room };
}

async function fitsPhone(page, name) {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(over <= 0, `page is ${over}px wider than the phone screen`);
  await shot(page, name);
  await page.setViewportSize({ width: 1280, height: 900 });
}

async function viewerFlow(browser, room, admin) {
  const page = await newPage(browser);
  const adminCalls = [];
  page.on('request', (r) => { if (r.url().includes('/api/security/')) adminCalls.push(r.url()); });
  await step('a non-admin signs in with the keyboard alone and sees no security panel', async () => {
    await page.goto(`${BASE}/`);
    await page.locator('#signin').waitFor({ state: 'visible', timeout: T });
    await page.evaluate(() => document.activeElement && document.activeElement.blur());
    for (let i = 0; i < 10 && await page.evaluate(() => document.activeElement.id) !== 'token'; i++) await page.keyboard.press('Tab');
    eq(await page.evaluate(() => document.activeElement.id), 'token', 'Tab reaches the token field');
    await page.keyboard.insertText(VIEWER);
    await page.keyboard.press('Tab');
    eq(await page.evaluate(() => document.activeElement.id), 'signin-submit', 'Tab reaches Sign in');
    await page.keyboard.press('Enter');
    await waitConn(page, 'live');
    await roomCard(page, room.name).waitFor({ timeout: T });
    await page.waitForTimeout(1000);
    assert(await page.locator('#security').isHidden(), 'the security panel is visible to a non-admin');
    eq(adminCalls, [], 'admin API calls from a non-admin page');
    await page.focus('#signout');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Tab');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert(outline !== 'none', 'keyboard focus is visible');
    await shot(page, '06-viewer');
  });
  await step('readable at phone width: no horizontal scrolling', async () => {
    await fitsPhone(page, '07-phone');
    await fitsPhone(admin, '07-phone-admin');
  });
  await step('on a phone the rooms come first and the security panel starts collapsed below them', async () => {
    const phone = await newPage(browser, { width: 390, height: 844 });
    await signIn(phone, ADMIN);
    await roomCard(phone, room.name).waitFor({ timeout: T });
    await phone.locator('#sec-summary', { hasText: 'Overall:' }).waitFor({ timeout: T });
    assert(await phone.locator('#sec-body').isHidden(), 'the security panel is open on a phone');
    eq(await phone.locator('#sec-toggle').getAttribute('aria-expanded'), 'false', 'aria-expanded');
    const top = (sel) => phone.evaluate((s) => document.querySelector(s).getBoundingClientRect().top + window.scrollY, sel);
    const [rooms, security] = [await top('#rooms'), await top('#security')];
    assert(rooms < 300, `the rooms start ${rooms}px down`);
    assert(security > rooms, `security (${security}px) above the rooms (${rooms}px)`);
    await shot(phone, '07b-phone-admin-collapsed');
    await phone.click('#sec-toggle');
    await phone.locator('#sec-body').waitFor({ state: 'visible', timeout: T });
    assert(await top('#rooms') === rooms, 'opening the panel moved the rooms');
    const over = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(over <= 0, `the open panel is ${over}px wider than the phone`);
    await shot(phone, '07c-phone-admin-open');
    await pageSafety(phone);
    await phone.context().close();
    pages.splice(pages.indexOf(phone), 1);
  });
  return page;
}

async function refusalFlow(browser) {
  await step('a stream refused with 403 shows the reason and is not retried', async () => {
    const page = await newPage(browser);
    const streams = [];
    page.on('request', (r) => { if (r.url().includes('/api/events')) streams.push(r.url()); });
    await page.goto(`${BASE}/`);
    await page.locator('#signin').waitFor({ state: 'visible', timeout: T });
    await page.fill('#token', NO_ROOMS);
    await page.click('#signin-submit');
    await page.locator('#denied').waitFor({ state: 'visible', timeout: T });
    const said = await page.locator('#denied-text').textContent();
    assert(said.includes('the token grants no room to watch') && said.includes('(forbidden)'), `reason shown: ${said}`);
    eq(await connState(page), 'denied', 'connection state');
    assert(await page.locator('#live').isHidden(), 'an empty live view under the refusal');
    await shot(page, '11-stream-refused');
    await page.waitForTimeout(8000); // the old page retried every 3 s
    eq(streams.length, 1, 'stream requests after a 403');
    const ev = await json('/api/security/events?type=UNAUTHORIZED_ACCESS&limit=1000');
    const onStream = ev.events.filter((e) => e.details && e.details.route === '/api/events');
    eq(onStream.length, 1, 'UNAUTHORIZED_ACCESS events for the stream');
    await page.click('#denied-signin');
    await page.locator('#signin').waitFor({ state: 'visible', timeout: T });
    await pageSafety(page);
    await page.context().close();
    pages.splice(pages.indexOf(page), 1);
  });
  await step('a session whose token expires asks for a new token', async () => {
    const page = await newPage(browser);
    await signIn(page, accessToken('e2e-short', { roomList: true }, SECRET, 6));
    await page.locator('#signin').waitFor({ state: 'visible', timeout: 30000 });
    await page.locator('#signin-error', { hasText: 'expired' }).waitFor({ timeout: T });
    const said = await page.locator('#signin-error').textContent();
    assert(said.includes('Paste a new token'), `prompt: ${said}`);
    await shot(page, '12-token-expired');
    await pageSafety(page);
    await page.context().close();
    pages.splice(pages.indexOf(page), 1);
  });
  await step('a link with a refused token, without a session, says so on the sign-in form', async () => {
    const page = await newPage(browser);
    await page.goto(`${BASE}/?token=${accessToken('e2e-link', { roomList: true }, 'y'.repeat(43))}`);
    await page.locator('#signin-error', { hasText: 'The token in the link was refused' }).waitFor({ state: 'visible', timeout: T });
    eq(new URL(page.url()).search, '', 'query left in the address bar');
    eq((await page.context().cookies()).filter((c) => c.name === 'warden_token').length, 0, 'a cookie was set');
    await pageSafety(page);
    await page.context().close();
    pages.splice(pages.indexOf(page), 1);
  });
}

async function rawHostileFlow(browser) {
  // Defence in depth: even if the server passed hostile strings through unsanitised, the page
  // renders them as text. The page and its CSP are real; only the stream's content is staged.
  const page = await newPage(browser);
  const parts = HOSTILE.map((name, i) => ({ sid: `PA_raw${i}`, identity: name, name, state: 'active',
    tracks: [{ sid: `TR_raw${i}`, kind: 'video', source: 'camera', muted: false }] }));
  const snapshot = { rooms: [{ sid: 'RM_raw', name: HOSTILE[0], num_participants: parts.length, participants: parts,
    egress: [{ id: HOSTILE[1], status: HOSTILE[3] }], ingress: [] }] };
  await page.route('**/api/auth/session', (r) => r.fulfill({ json: { identity: HOSTILE[2], admin: false,
    room_list: true, rooms: null, expires_at: new Date(Date.now() + 3600e3).toISOString() } }));
  await page.route('**/api/events*', (r) => r.fulfill({ status: 200, contentType: 'text/event-stream',
    body: `retry: 60000\nid: 1\nevent: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n` }));
  await step('raw hostile strings (not sanitised by any server) still render as text under the real CSP', async () => {
    await page.goto(`${BASE}/`);
    const names = page.locator('article.room li.participant .p-name');
    await names.first().waitFor({ timeout: T });
    eq(await names.allTextContents(), HOSTILE, 'participant names');
    eq(await page.locator('article.room h3').textContent(), HOSTILE[0], 'room name');
    await page.waitForTimeout(500);
    await pageSafety(page);
    await shot(page, '08-hostile-as-text');
  });
  await page.context().close();
  pages.splice(pages.indexOf(page), 1);
}

async function restartFlow(admin, viewer, room) {
  if (!RESTART) {
    console.log('# restart steps not run: they need the Rust wrapper (E2E_RESTART=stdin)');
    return;
  }
  await viewer.context().clearCookies(); // its stream must come back 401 after the restart
  const lines = readline.createInterface({ input: process.stdin });
  let freshRestarted;
  let stopped;
  const restarted = new Promise((resolve) => {
    stopped = new Promise((resolveStopped) => {
      freshRestarted = new Promise((resolveFresh) => lines.on('line', (l) => {
        if (l.trim() === 'STOPPED') resolveStopped();
        if (l.trim() === 'RESTARTED') resolve();
        if (l.trim() === 'RESTARTED_FRESH') resolveFresh();
      }));
    });
  });
  const before = await admin.evaluate(() => window.__conn.length);
  console.log('RESTART');
  await Promise.race([stopped, new Promise((_, rej) => setTimeout(() => rej(new Error('no STOPPED')), 60000))]);
  await step('while Warden is unreachable the page dims what it shows and says since when', async () => {
    await waitConn(admin, 'unreachable');
    const conn = await admin.locator('#conn').textContent();
    assert(/^Offline since \d/.test(conn), `connection text: ${conn}`);
    await admin.locator('#stale', { hasText: 'Offline since' }).waitFor({ state: 'visible', timeout: T });
    eq(await admin.locator('#live').getAttribute('data-stale'), 'true', 'the live view is marked stale');
    const opacity = await admin.evaluate(() => Number(getComputedStyle(document.getElementById('rooms')).opacity));
    assert(opacity < 0.6, `rooms opacity while offline: ${opacity}`);
    assert(await admin.locator('article.room').count() > 0, 'the rooms stay shown while offline');
    await shot(admin, '09a-offline');
  });
  console.log('START');
  await Promise.race([restarted, new Promise((_, rej) => setTimeout(() => rej(new Error('no RESTARTED')), 60000))]);
  await step('after a server restart the stream resumes where it was: reconnecting, then live, no reset, the same rooms', async () => {
    await admin.waitForFunction((n) => {
      const s = window.__conn.slice(n);
      const r = s.indexOf('reconnecting');
      return r >= 0 && s.indexOf('live', r) > r;
    }, before, { timeout: 30000 }).catch(async (e) => {
      throw new Error(`states ${JSON.stringify(await admin.evaluate(() => window.__conn))}: ${e.message}`);
    });
    const states = await admin.evaluate((n) => window.__conn.slice(n), before);
    assert(!states.includes('reset'), `no reset across a restart: ${JSON.stringify(states)}`);
    assert(states.includes('unreachable'), `the outage was shown: ${JSON.stringify(states)}`);
    eq(await admin.locator('#live').getAttribute('data-stale'), null, 'still marked stale once live');
    assert(await admin.locator('#stale').isHidden(), 'the offline note stays once live');
    eq(await admin.locator('#feed-list li.ev-reset').count(), 0, 'reset lines in the feed');
    const fresh = (await json('/api/rooms')).rooms.map((r) => r.name).sort();
    const shown = (await admin.locator('article.room').evaluateAll((a) => a.map((x) => x.dataset.room))).sort();
    eq(shown, fresh, 'rooms after the restart');
    assert(fresh.includes(room.name), 'the room from before the restart is still there');
    const after = { sid: sid('RM'), name: `after-restart-${rand(4)}` };
    await hook({ event: 'room_started', room: roomObj(after) });
    await roomCard(admin, after.name).waitFor({ timeout: T });
    await shot(admin, '09-after-restart');
  });
  const before2 = await admin.evaluate(() => window.__conn.length);
  console.log('RESTART_FRESH');
  await Promise.race([freshRestarted, new Promise((_, rej) => setTimeout(() => rej(new Error('no RESTARTED_FRESH')), 60000))]);
  lines.close();
  await step('after the data directory is replaced the page says why it resets, in words, and shows the fresh state', async () => {
    await admin.waitForFunction((n) => {
      const s = window.__conn.slice(n);
      const r = s.indexOf('reset');
      return r >= 0 && s.indexOf('live', r) > r;
    }, before2, { timeout: 30000 }).catch(async (e) => {
      throw new Error(`states ${JSON.stringify(await admin.evaluate(() => window.__conn))}: ${e.message}`);
    });
    const line = admin.locator('#feed-list li.ev-reset').first();
    await line.waitFor({ timeout: T });
    const text = await line.textContent();
    assert(text.includes("Warden's history was restarted; showing fresh state"), `reset line: ${text}`);
    assert(!text.includes('other_epoch'), `wire reason shown to the operator: ${text}`);
    const fresh = (await json('/api/rooms')).rooms.map((r) => r.name).sort();
    const shown = (await admin.locator('article.room').evaluateAll((a) => a.map((x) => x.dataset.room))).sort();
    eq(shown, fresh, 'rooms after the reset');
    await shot(admin, '09b-after-reset');
  });
  await step('a stream refused with 401 returns the page to sign-in', async () => {
    await viewer.locator('#signin').waitFor({ state: 'visible', timeout: 30000 });
    await viewer.locator('#signin-error', { hasText: 'Sign in again' }).waitFor({ timeout: T });
    void room;
  });
}

async function signOutFlow(page) {
  await step('a link with a token that does not verify leaves the session alone and says so', async () => {
    const session = async () => ((await page.context().cookies()).find((c) => c.name === 'warden_token') || {}).value;
    const before = await session();
    await page.goto(`${BASE}/?token=not-a-token`);
    await page.locator('#notice', { hasText: 'refused' }).waitFor({ state: 'visible', timeout: T });
    eq(new URL(page.url()).search, '', 'query left in the address bar');
    await waitConn(page, 'live');
    eq(await session(), before, 'the session cookie');
    await shot(page, '10a-link-refused');
    // A link whose token is signed right but has expired: refused the same way, the session kept.
    const expired = jwt({ iss: KEY, sub: 'e2e-old', nbf: now() - 7200, exp: now() - 3600, video: { roomList: true } });
    await page.goto(`${BASE}/?token=${expired}`);
    await page.locator('#notice', { hasText: 'refused' }).waitFor({ state: 'visible', timeout: T });
    await waitConn(page, 'live');
    eq(await session(), before, 'the session cookie after an expired link');
  });
  await step('sign-out clears the session cookie and returns to sign-in', async () => {
    await page.click('#signout');
    await page.locator('#signin').waitFor({ state: 'visible', timeout: T });
    const cookie = (await page.context().cookies()).find((c) => c.name === 'warden_token' && c.value);
    assert(!cookie, 'the session cookie survived sign-out');
    eq(await page.evaluate(() => fetch('/api/auth/session').then((r) => r.status)), 401, 'session after sign-out');
    eq(await page.locator('#room-list article').count(), 0, 'rooms left on screen');
    await shot(page, '10-signed-out');
  });
}

const browser = await chromium.launch({
  executablePath: CHROMIUM, headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  await httpChecks();
  const { page: admin, room } = await adminFlow(browser);
  const viewer = await viewerFlow(browser, room, admin);
  await refusalFlow(browser);
  await rawHostileFlow(browser);
  await restartFlow(admin, viewer, room);
  await signOutFlow(admin);
  await step('no page error, dialog or CSP violation in the whole run', async () => {
    for (const p of pages) await pageSafety(p);
  });
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
