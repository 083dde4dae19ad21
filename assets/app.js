// Warden dashboard: sign-in, the live view from /api/events, the admin security panel.
//
// Safe by construction: every string that came from the network is put in the page
// with createTextNode (via `el`), never parsed as HTML; nothing here uses innerHTML,
// eval or inline handlers, so the strict CSP of `GET /` holds. The access token is
// only ever sent once to POST /api/auth/session and then dropped: the session lives
// in the HttpOnly `warden_token` cookie, which EventSource sends on its own.
'use strict';

(() => {
  const FEED_MAX = 200;         // rolling event feed bound
  const SEEN_MAX = 1000;        // event ids remembered to drop a redelivery
  const SEC_REFRESH_MS = 5000;  // security panel refresh period
  const SEC_PAGE = 25;          // security events shown, then more per "Show more"
  const SEC_MAX_EVENTS = 500;
  const RESET_MIN_MS = 2000;    // "reset" stays visible at least this long
  const LIVEKIT_EVENTS = ['room_started', 'room_finished', 'participant_joined', 'participant_left',
    'participant_connection_aborted', 'track_published', 'track_unpublished', 'egress_started',
    'egress_updated', 'egress_ended', 'ingress_started', 'ingress_ended', 'agent_job_started', 'agent_job_ended'];
  const ENDED = new Set(['complete', 'failed', 'aborted', 'limit_reached', 'ended']);

  const $ = (id) => document.getElementById(id);
  const ui = {};
  let session = null;
  let source = null;       // the EventSource
  let lastId = '';         // last SSE id seen, to resume a stream we had to recreate
  let retryTimer = 0;
  let secTimer = 0;
  let secLimit = SEC_PAGE;
  let resetAt = 0;
  let ageTimer = null;  // re-renders how long agents have run
  let renderQueued = false;
  let rooms = new Map();   // room name -> {sid, name, participants: Map, egress: Map, ingress: Map}
  const seen = new Set();

  // ---------------------------------------------------------------- helpers
  // Builds an element; string children become text nodes, attributes are set one by one.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  // An untrusted string, isolated so a bidi control in it cannot reorder the text around it.
  const text = (s, fallback) => el('bdi', {}, s === undefined || s === null || s === '' ? fallback || '—' : String(s));
  function localTime(t) {
    if (t === undefined || t === null || t === '') return null;
    const d = new Date(typeof t === 'number' && t < 1e12 ? t * 1000 : t);
    return Number.isNaN(d.getTime()) ? null : d;
  }
  function timeEl(t, withDate) {
    const d = localTime(t);
    if (!d) return el('span', {}, '—');
    return el('time', { datetime: d.toISOString() }, withDate ? d.toLocaleString() : d.toLocaleTimeString());
  }
  function show(node, visible) { node.hidden = !visible; }
  async function api(method, path, body) {
    const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const msg = data && typeof data.message === 'string' ? data.message : `HTTP ${res.status}`;
      throw Object.assign(new Error(msg), { status: res.status });
    }
    return data;
  }

  // ---------------------------------------------------------------- connection indicator
  const CONN_TEXT = {
    offline: 'Not connected', connecting: 'Connecting…', live: 'Live',
    reconnecting: 'Reconnecting…', reset: 'Reset: rebuilding from a fresh snapshot',
  };
  // Why a stream was reset, in an operator's words (the wire reason stays in the title).
  const RESET_TEXT = {
    other_epoch: "Warden's history was restarted; showing fresh state",
    too_old: 'This page was away longer than Warden keeps history; showing fresh state',
    unknown_id: 'Warden does not know the last event this page saw; showing fresh state',
    malformed_id: 'Warden does not know the last event this page saw; showing fresh state',
    slow_consumer: 'This page fell too far behind the live stream; showing fresh state',
    history_lost: "The cluster's shared history was lost (Redis restarted empty); showing fresh state",
    cluster_gap: 'This Warden node missed events from the cluster; showing fresh state',
  };
  function resetText(reason) {
    return RESET_TEXT[reason] || `The stream was restarted${reason ? ` (${reason})` : ''}; showing fresh state`;
  }
  function setConn(state, detail) {
    ui.conn.dataset.state = state;
    ui.conn.textContent = detail ? `${CONN_TEXT[state]} (${detail})` : CONN_TEXT[state];
  }

  // ---------------------------------------------------------------- sign-in / session
  function showSignIn(message) {
    stopAll();
    clearState();
    session = null;
    show(ui.live, false);
    show(ui.who, false);
    show(ui.signin, true);
    ui.signinError.textContent = message || '';
    show(ui.signinError, Boolean(message));
    setConn('offline');
    ui.token.focus();
  }
  function startSession(s) {
    session = s;
    ui.token.value = '';
    show(ui.signin, false);
    show(ui.live, true);
    const scope = s.room_list ? 'all rooms' : `rooms: ${(s.rooms || []).join(', ') || 'none'}`;
    const expires = localTime(s.expires_at);
    ui.whoText.textContent = `${s.identity || 'signed in'}${s.admin ? ' · admin' : ''} · ${scope}` +
      (expires ? ` · until ${expires.toLocaleString()}` : '');
    show(ui.who, true);
    show(ui.security, Boolean(s.admin));
    if (s.admin) { refreshSecurity(); secTimer = setInterval(refreshSecurity, SEC_REFRESH_MS); }
    if (!ageTimer) ageTimer = setInterval(() => { if ([...rooms.values()].some((r) => r.agents.size)) queueRender(); }, 5000);
    connect();
  }
  async function onSignIn(ev) {
    ev.preventDefault();
    const token = ui.token.value.trim();
    if (!token) { showSignIn('Paste an access token first.'); return; }
    ui.signinSubmit.disabled = true;
    try {
      const s = await api('POST', '/api/auth/session', { token });
      startSession(s);
    } catch (e) {
      ui.token.value = '';
      showSignIn(e.status === 401 ? 'That token was refused (invalid, expired or from an unknown key).'
        : e.status === 403 ? `Refused: ${e.message}` : `Sign-in failed: ${e.message}`);
    } finally {
      ui.signinSubmit.disabled = false;
    }
  }
  async function onSignOut() {
    stopAll();
    try { await api('DELETE', '/api/auth/session'); } catch (_) { /* the cookie is gone or was never there */ }
    showSignIn('Signed out.');
  }
  function stopAll() {
    if (source) { source.close(); source = null; }
    clearTimeout(retryTimer);
    clearInterval(secTimer);
    secTimer = 0;
  }

  // ---------------------------------------------------------------- the event stream
  function connect() {
    if (source) source.close();
    setConn(lastId ? 'reconnecting' : 'connecting');
    // A recreated EventSource cannot send Last-Event-ID, so the id goes in the query.
    const url = lastId ? `/api/events?lastEventId=${encodeURIComponent(lastId)}` : '/api/events';
    const es = new EventSource(url, { withCredentials: true });
    source = es;
    es.onopen = () => { if (ui.conn.dataset.state !== 'reset') setConn('live'); };
    es.onerror = () => {
      if (source !== es) return;
      if (es.readyState === EventSource.CONNECTING) { setConn('reconnecting'); return; }
      // CLOSED: the server answered with an error status. Find out whether we are still signed in.
      es.close();
      source = null;
      setConn('reconnecting');
      api('GET', '/api/auth/session').then(() => {
        retryTimer = setTimeout(connect, 3000);
      }, (e) => {
        if (e.status === 401) showSignIn('Your session ended. Sign in again.');
        else retryTimer = setTimeout(connect, 5000);
      });
    };
    es.addEventListener('snapshot', (e) => onSnapshot(e));
    es.addEventListener('reconciled', (e) => onSnapshot(e, true));
    es.addEventListener('reset', (e) => {
      track(e);
      const d = parse(e.data) || {};
      resetAt = Date.now();
      const reason = typeof d.reason === 'string' ? d.reason : '';
      setConn('reset');
      ui.conn.title = reason;
      addFeed({ event: 'reset', timestamp: Date.now(), note: resetText(reason) });
    });
    for (const name of LIVEKIT_EVENTS) es.addEventListener(name, (e) => onLiveKit(e));
    es.onmessage = (e) => onLiveKit(e);
  }
  function track(e) { if (e.lastEventId) lastId = e.lastEventId; }
  function parse(s) { try { return JSON.parse(s); } catch (_) { return null; } }
  function onSnapshot(e, reconciled) {
    track(e);
    const d = parse(e.data);
    if (!d || !Array.isArray(d.rooms)) return;
    rooms = new Map();
    for (const r of d.rooms) {
      const room = ensureRoom(r);
      for (const p of r.participants || []) upsertParticipant(room, p);
      for (const g of r.egress || []) if (g && g.id) room.egress.set(g.id, g);
      for (const g of r.ingress || []) if (g && g.id) room.ingress.set(g.id, g);
      for (const j of r.agents || []) if (j && j.id) room.agents.set(j.id, j);
    }
    if (reconciled) addFeed({ event: 'reconciled', timestamp: Date.now(), note: 'state reconciled with LiveKit' });
    ui.roomsEmpty.dataset.ready = '1';
    goLive();
    refreshSecurity(); // a fresh snapshot often follows a restart: bring the panel up to date too
    queueRender();
  }
  // After a reset the indicator keeps saying so for a moment, so a person can see it happened.
  function goLive() {
    if (ui.conn.dataset.state !== 'reset') { setConn('live'); return; }
    const wait = Math.max(0, RESET_MIN_MS - (Date.now() - resetAt));
    setTimeout(() => { if (source && ui.conn.dataset.state === 'reset') setConn('live'); }, wait);
  }
  function onLiveKit(e) {
    track(e);
    const ev = parse(e.data);
    if (!ev || typeof ev !== 'object') return;
    if (ev.id) {
      if (seen.has(ev.id)) return;
      seen.add(ev.id);
      if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value);
    }
    const name = ev.event || e.type;
    applyEvent(name, ev.data || {});
    addFeed({ event: name, timestamp: ev.timestamp, data: ev.data || {} });
    queueRender();
  }

  // ---------------------------------------------------------------- state
  function ensureRoom(r) {
    const key = r.name || r.sid || '';
    let room = rooms.get(key);
    if (!room) {
      room = { sid: r.sid, name: r.name, participants: new Map(), egress: new Map(), ingress: new Map(), agents: new Map() };
      rooms.set(key, room);
    }
    if (r.sid) room.sid = r.sid;
    return room;
  }
  function upsertParticipant(room, p) {
    const key = p.sid || p.identity;
    const old = room.participants.get(key);
    const tracks = old ? old.tracks : new Map();
    for (const t of p.tracks || []) if (t && t.sid) tracks.set(t.sid, t);
    const merged = { ...(old || {}), ...p, tracks };
    room.participants.set(key, merged);
    return merged;
  }
  function applyEvent(name, d) {
    if (name === 'agent_job_ended' && d.job && d.job.id) {
      for (const r of rooms.values()) r.agents.delete(d.job.id);
      return;
    }
    if (!d.room) return;
    const key = d.room.name || d.room.sid;
    if (name === 'room_finished') {
      // A late room_finished of an older incarnation (same name, other sid) ends nothing.
      const held = rooms.get(key);
      if (!held || !held.sid || !d.room.sid || held.sid === d.room.sid) rooms.delete(key);
      return;
    }
    const room = ensureRoom(d.room);
    const p = d.participant;
    const pkey = p && (p.sid || p.identity);
    switch (name) {
      case 'agent_job_started':
        if (d.job && d.job.id) {
          if (d.job.status === 'pending' || d.job.status === 'running') room.agents.set(d.job.id, d.job);
          else room.agents.delete(d.job.id);
        }
        break;
      case 'participant_left':
      case 'participant_connection_aborted': {
        // A stale leave of an older session of this participant removes nothing.
        const held = pkey && room.participants.get(pkey);
        if (held && !(held.joined_at && p.joined_at && held.joined_at > p.joined_at)) room.participants.delete(pkey);
        break;
      }
      case 'participant_joined':
        if (p) upsertParticipant(room, p);
        break;
      case 'track_published':
        if (p && d.track) upsertParticipant(room, p).tracks.set(d.track.sid, d.track);
        break;
      case 'track_unpublished': {
        const known = pkey && room.participants.get(pkey);
        if (known && d.track) known.tracks.delete(d.track.sid);
        break;
      }
      default:
        if (d.egress && d.egress.id) {
          if (name === 'egress_ended' || ENDED.has(d.egress.status)) room.egress.delete(d.egress.id);
          else room.egress.set(d.egress.id, d.egress);
        }
        if (d.ingress && d.ingress.id) {
          if (name === 'ingress_ended') room.ingress.delete(d.ingress.id);
          else room.ingress.set(d.ingress.id, d.ingress);
        }
    }
  }
  function clearState() {
    rooms = new Map();
    seen.clear();
    lastId = '';
    ui.feedList.replaceChildren();
    show(ui.feedEmpty, true);
    delete ui.roomsEmpty.dataset.ready;
    queueRender();
  }

  // ---------------------------------------------------------------- rendering: rooms and feed
  function queueRender() {
    if (renderQueued) return;
    renderQueued = true;
    setTimeout(() => { renderQueued = false; renderRooms(); }, 0);
  }
  function renderRooms() {
    const list = [...rooms.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    ui.roomsEmpty.textContent = ui.roomsEmpty.dataset.ready
      ? 'No active rooms. Rooms appear here as soon as LiveKit reports them.'
      : 'Waiting for the first snapshot…';
    show(ui.roomsEmpty, list.length === 0);
    ui.roomList.replaceChildren(...list.map(roomCard));
  }
  function roomCard(room) {
    const n = room.participants.size;
    const people = [...room.participants.values()].map((p) => el('li', { class: 'participant', 'data-sid': p.sid },
      el('span', { class: 'p-name' }, text(p.name, '(no name)')),
      el('code', { class: 'p-identity', title: 'hashed identity' }, text(p.identity)),
      el('span', { class: `badge state-${cls(p.state)}` }, text(p.state, 'unknown')),
      KIND_TEXT[p.kind] ? el('span', { class: `badge kind-${cls(p.kind)}` }, KIND_TEXT[p.kind]) : '',
      p.tracks.size ? el('ul', { class: 'tracks' }, [...p.tracks.values()].map((t) => el('li', { class: 'track' },
        `${t.kind || 'unknown'} · ${t.source || 'unknown'}`, t.muted ? el('span', { class: 'badge muted' }, 'muted') : '')))
        : el('p', { class: 'hint' }, 'No published tracks.')));
    const agents = [...room.agents.values()].map((j) => el('li', { class: 'agent', 'data-job': j.id },
      el('span', { class: 'badge kind-agent' }, 'agent'), ' ',
      el('span', { class: 'a-name' }, text(j.agent_name, '(unnamed agent)')), ' ',
      el('span', { class: `badge job-${cls(j.status)}` }, text(j.status, 'unknown')),
      j.started_at ? el('span', { class: 'a-age', title: `since ${(localTime(j.started_at) || '').toLocaleString()}` }, ` · ${runFor(j.started_at)}`) : ''));
    const streams = [
      ...[...room.egress.values()].map((g) => el('li', {}, 'Egress ', el('code', {}, text(g.id)), ': ', text(g.status, 'unknown'))),
      ...[...room.ingress.values()].map((g) => el('li', {}, 'Ingress ', el('code', {}, text(g.id)), ': ', text(g.state, 'unknown'))),
    ];
    return el('article', { class: 'card room', 'data-room': room.name },
      el('h3', {}, text(room.name, '(unnamed room)')),
      el('p', { class: 'count' }, `${n} participant${n === 1 ? '' : 's'}`),
      n ? el('ul', { class: 'participants plain' }, people) : el('p', { class: 'empty' }, 'No participants.'),
      agents.length ? [el('h4', {}, `Agents (${agents.length})`), el('ul', { class: 'agents plain' }, agents)] : null,
      streams.length ? el('ul', { class: 'streams plain' }, streams) : null);
  }
  // Participant kinds worth a badge (standard participants get none).
  const KIND_TEXT = { sip: 'SIP caller', agent: 'agent', ingress: 'ingress', egress: 'egress', connector: 'connector', bridge: 'bridge' };
  function runFor(startedMs) {
    const s = Math.max(0, Math.floor((Date.now() - Number(startedMs)) / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? `running ${h}h ${m}m` : m ? `running ${m}m ${sec}s` : `running ${sec}s`;
  }
  const cls = (s) => String(s || 'unknown').toLowerCase().replace(/[^a-z0-9_-]/g, '');
  function addFeed(item) {
    const d = item.data || {};
    const who = d.participant ? [' · ', text(d.participant.name || d.participant.identity)] : [];
    const what = d.track ? ` · ${d.track.kind || ''} ${d.track.source || ''}`
      : d.egress ? ` · ${d.egress.status || ''}` : d.ingress ? ` · ${d.ingress.state || ''}`
        : '';
    const job = d.job ? [' · agent ', text(d.job.agent_name), ' ', el('span', { class: `job-${cls(d.job.status)}` }, text(d.job.status)),
      ...(d.job.error ? [': ', el('span', { class: 'job-error' }, text(d.job.error))] : [])] : [];
    const li = el('li', { class: `feed-item ev-${cls(item.event)}` }, timeEl(item.timestamp),
      ' ', el('strong', {}, String(item.event)), d.room ? [' · ', text(d.room.name)] : [], who, what, job,
      item.note ? [' · ', item.note] : []);
    ui.feedList.prepend(li);
    while (ui.feedList.childElementCount > FEED_MAX) ui.feedList.lastElementChild.remove();
    show(ui.feedEmpty, false);
  }

  // ---------------------------------------------------------------- the security panel (admins)
  // The status gives the overview; the events come from the paged audit query (newest first).
  async function refreshSecurity() {
    if (!session || !session.admin || ui.security.hidden) return;
    const type = ui.secType.value;
    const query = `/api/security/events?limit=${secLimit}${type ? `&type=${encodeURIComponent(type)}` : ''}`;
    try {
      const [s, ev] = await Promise.all([api('GET', '/api/security/status'), api('GET', query).catch((e) => e)]);
      if (!session) return;
      if (ev instanceof Error && (ev.status === 401 || ev.status === 403)) throw ev;
      renderSecurity(s, ev instanceof Error ? null : ev);
      show(ui.secError, false);
    } catch (e) {
      if (e.status === 401) { showSignIn('Your session ended. Sign in again.'); return; }
      if (e.status === 403) { show(ui.security, false); clearInterval(secTimer); return; }
      ui.secError.textContent = `Could not load the security status: ${e.message}. Retrying every 5 s.`;
      show(ui.secError, true);
    }
  }
  function renderSecurity(s, page) {
    const overall = cls(s.overall_status);
    ui.secOverall.dataset.status = overall;
    ui.secOverall.replaceChildren(el('strong', {}, `Overall: ${s.overall_status || 'unknown'}`),
      ...(s.reason ? [' — ', text(s.reason)] : []));
    // counts: {window: {TYPE: n}}; only the types that happened are listed.
    const describe = (v) => {
      if (v === null || typeof v !== 'object') return String(v);
      const seen = Object.entries(v).filter(([, n]) => Number(n) > 0);
      return seen.length ? seen.map(([t, n]) => `${t} ${n}`).join(' · ') : 'no security events';
    };
    ui.secCounts.replaceChildren(...Object.entries(s.counts || {}).flatMap(([k, v]) =>
      [el('dt', {}, `last ${k}`), el('dd', {}, describe(v))]));
    const enabled = !s.ingestion || s.ingestion.enabled !== false;
    ui.ingestState.textContent = enabled ? 'Webhook ingestion: running.' : 'Webhook ingestion: PAUSED — LiveKit webhooks are refused (503) until resumed.';
    ui.ingestState.dataset.enabled = String(enabled);
    ui.ingestToggle.textContent = enabled ? 'Pause ingestion…' : 'Resume ingestion…';
    ui.ingestToggle.dataset.enable = String(!enabled);
    const blocked = s.blocked || [];
    ui.secBlocked.replaceChildren(...(blocked.length ? blocked.map((b) => el('li', { class: 'blocked', 'data-ip': b.ip },
      el('code', {}, text(b.ip)), ' until ', timeEl(b.until, true), ' ',
      el('button', { type: 'button', class: 'secondary unblock', 'data-ip': b.ip }, 'Unblock')))
      : [el('li', { class: 'empty' }, 'No client is blocked.')]));
    const keys = s.keys || [];
    ui.secKeys.tBodies[0].replaceChildren(...(keys.length ? keys.map((k) => el('tr', {},
      el('td', {}, el('code', {}, text(k.id))), el('td', {}, text(k.state)), el('td', {}, timeEl(k.created, true)),
      el('td', {}, k.age_hours === undefined ? '—' : `${Number(k.age_hours).toFixed(1)} h`),
      el('td', { class: k.rotation_due ? 'due' : '' }, k.rotation_due ? 'due now' : 'not due')))
      : [el('tr', {}, el('td', { colspan: 5, class: 'empty' }, 'No keys in Warden\'s own store (keys from the environment are not listed).'))]));
    const events = page ? page.events || [] : (s.recent_events || []).filter((e) => !ui.secType.value || e.type === ui.secType.value);
    show(ui.secMore, Boolean(page && page.next) && secLimit < SEC_MAX_EVENTS);
    const cell = (label, klass, ...content) => el('td', { class: klass, 'data-label': label }, ...content);
    ui.secEvents.tBodies[0].replaceChildren(...(events.length ? events.map((e) => el('tr', { class: `sev-${cls(e.severity)}` },
      cell('Time', 'nowrap', timeEl(e.timestamp, true)), cell('Type', 'nowrap', text(e.type)),
      cell('Severity', '', text(e.severity)), cell('Source', 'nowrap', text(e.source_ip)),
      cell('Identity / key', '', text([e.identity, e.key_id].filter(Boolean).join(' / '))),
      cell('Details', 'details', text(typeof e.details === 'object' && e.details !== null ? JSON.stringify(e.details) : e.details))))
      : [el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'No security events recorded.'))]));
    ui.secUpdated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every 5 s.`;
  }
  async function secAction(path, body) {
    try {
      await api('POST', path, body);
      show(ui.secError, false);
    } catch (e) {
      ui.secError.textContent = `Action failed: ${e.message}`;
      show(ui.secError, true);
    }
    await refreshSecurity();
  }
  function onIngestToggle() {
    const enable = ui.ingestToggle.dataset.enable === 'true';
    ui.ingestQuestion.textContent = enable ? 'Resume processing LiveKit webhooks?'
      : 'Pause processing LiveKit webhooks? LiveKit will get 503 and events stop until you resume.';
    ui.ingestYes.textContent = enable ? 'Confirm: resume' : 'Confirm: pause';
    ui.ingestYes.dataset.enable = String(enable);
    show(ui.ingestConfirm, true);
    ui.ingestNo.focus();
  }
  async function onIngestConfirm() {
    show(ui.ingestConfirm, false);
    await secAction('/api/security/ingestion', { enabled: ui.ingestYes.dataset.enable === 'true' });
    ui.ingestToggle.focus();
  }
  function onBlockedClick(ev) {
    const btn = ev.target.closest('button.unblock');
    if (btn) { btn.disabled = true; secAction('/api/security/unblock', { ip: btn.dataset.ip }); }
  }

  // ---------------------------------------------------------------- start
  async function init() {
    for (const [k, id] of Object.entries({ conn: 'conn', who: 'who', whoText: 'who-text', signout: 'signout',
      signin: 'signin', signinForm: 'signin-form', token: 'token', signinError: 'signin-error',
      signinSubmit: 'signin-submit', live: 'live', security: 'security', secRefresh: 'sec-refresh',
      secError: 'sec-error', secOverall: 'sec-overall', secCounts: 'sec-counts', ingestState: 'ingest-state',
      ingestToggle: 'ingest-toggle', ingestConfirm: 'ingest-confirm', ingestQuestion: 'ingest-question',
      ingestYes: 'ingest-yes', ingestNo: 'ingest-no', secBlocked: 'sec-blocked', secKeys: 'sec-keys',
      secEvents: 'sec-events', secType: 'sec-type', secMore: 'sec-more', secUpdated: 'sec-updated', roomsEmpty: 'rooms-empty', roomList: 'room-list',
      feedEmpty: 'feed-empty', feedList: 'feed-list', notice: 'notice' })) ui[k] = $(id);
    ui.signinForm.addEventListener('submit', onSignIn);
    ui.signout.addEventListener('click', onSignOut);
    ui.secRefresh.addEventListener('click', refreshSecurity);
    ui.ingestToggle.addEventListener('click', onIngestToggle);
    ui.ingestYes.addEventListener('click', onIngestConfirm);
    ui.ingestNo.addEventListener('click', () => { show(ui.ingestConfirm, false); ui.ingestToggle.focus(); });
    ui.secBlocked.addEventListener('click', onBlockedClick);
    ui.secType.addEventListener('change', () => { secLimit = SEC_PAGE; refreshSecurity(); });
    ui.secMore.addEventListener('click', () => { secLimit += SEC_PAGE; refreshSecurity(); });
    setConn('offline');
    // `/?token=` with a token the server refused comes back as `/?signin=refused`;
    // the session (if any) was left alone.
    const refused = new URLSearchParams(location.search).get('signin') === 'refused';
    if (refused) history.replaceState(null, '', '/');
    const REFUSED = 'The token in the link was refused (invalid, expired or from an unknown key).';
    try {
      startSession(await api('GET', '/api/auth/session'));
      if (refused) { ui.notice.textContent = `${REFUSED} You are still signed in as before.`; show(ui.notice, true); }
    } catch (e) {
      showSignIn(refused ? REFUSED
        : e.status === 401 || e.status === 404 ? '' : `Could not reach Warden: ${e.message}`);
    }
  }
  document.addEventListener('DOMContentLoaded', init);
})();
