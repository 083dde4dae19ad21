// Warden dashboard: sign-in, the live view from /api/events, the admin security panel
// and its pictures (inline SVG drawn here from /api/security/timeline).
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
  const RETRY_MIN_MS = 3000;    // first retry of a stream the server ended with an error status
  const RETRY_MAX_MS = 60000;   // retries back off up to this
  const OFFLINE_RETRY_MS = 5000; // while Warden is unreachable, look again this often
  const TIMELINE_EVERY = 3;     // the timeline is fetched on every third security refresh (15 s)
  const NARROW = '(max-width: 800px)'; // phone layout: the security panel starts collapsed
  // Security event types in SPEC order; the index picks the colour class (t-0 … t-10) of a chart.
  const EVENT_TYPES = ['SUSPICIOUS_LOGIN', 'MULTIPLE_FAILED_AUTH', 'UNUSUAL_API_USAGE', 'KEY_ROTATION',
    'UNAUTHORIZED_ACCESS', 'RATE_LIMIT_EXCEEDED', 'WEBHOOK_INVALID_SIGNATURE', 'WEBHOOK_REPLAY', 'IP_BLOCKED',
    'INGESTION_PAUSED', 'SUBJECT_ERASED'];
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
  let retryDelay = RETRY_MIN_MS;
  let offlineSince = 0;    // when Warden stopped answering (0: it answers)
  let probing = false;
  let secRefreshes = 0;
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
    let res;
    try {
      res = await fetch(path, opts);
    } catch (_) {
      throw Object.assign(new Error('Warden cannot be reached'), { offline: true });
    }
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
    unreachable: 'Offline', denied: 'Refused',
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
    ui.conn.textContent = state === 'unreachable' ? `Offline since ${detail}`
      : detail ? `${CONN_TEXT[state]} (${detail})` : CONN_TEXT[state];
  }

  // ---------------------------------------------------------------- offline: the shown state dimmed
  function markOffline() {
    if (!session) return;
    if (!offlineSince) offlineSince = Date.now();
    const at = new Date(offlineSince).toLocaleTimeString();
    ui.live.dataset.stale = 'true';
    ui.stale.textContent = `Offline since ${at}: Warden cannot be reached. What you see is how it was then; ` +
      'the page reconnects on its own.';
    show(ui.stale, true);
    setConn('unreachable', at);
  }
  function markOnline() {
    if (!offlineSince) return;
    offlineSince = 0;
    delete ui.live.dataset.stale;
    show(ui.stale, false);
    if (ui.conn.dataset.state === 'unreachable') {
      setConn(source && source.readyState === EventSource.OPEN ? 'live' : 'reconnecting');
    }
  }
  // Any answer at all (even an error status) means Warden is there.
  async function probeReachable() {
    if (probing) return;
    probing = true;
    try {
      await fetch('/health', { cache: 'no-store', credentials: 'omit' });
      markOnline();
    } catch (_) {
      markOffline();
    } finally {
      probing = false;
    }
  }

  // ---------------------------------------------------------------- sign-in / session
  function showSignIn(message) {
    stopAll();
    clearState();
    session = null;
    offlineSince = 0;
    delete ui.live.dataset.stale;
    show(ui.stale, false);
    show(ui.denied, false);
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
    if (s.admin) {
      setSecOpen(!window.matchMedia(NARROW).matches);
      secRefreshes = 0;
      refreshSecurity();
      secTimer = setInterval(refreshSecurity, SEC_REFRESH_MS);
    }
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
    retryDelay = RETRY_MIN_MS;
  }
  function tokenExpired() {
    const exp = session && localTime(session.expires_at);
    return Boolean(exp) && exp.getTime() <= Date.now();
  }
  function expiredText() {
    const exp = session && localTime(session.expires_at);
    return `Your token expired at ${exp ? exp.toLocaleString() : 'an unknown time'}. Paste a new token to sign in again.`;
  }

  // ---------------------------------------------------------------- the event stream
  function connect() {
    if (source) source.close();
    clearTimeout(retryTimer);
    show(ui.denied, false);
    show(ui.live, true);
    if (!offlineSince) setConn(lastId ? 'reconnecting' : 'connecting');
    // A recreated EventSource cannot send Last-Event-ID, so the id goes in the query.
    const url = lastId ? `/api/events?lastEventId=${encodeURIComponent(lastId)}` : '/api/events';
    const es = new EventSource(url, { withCredentials: true });
    source = es;
    es.onopen = () => {
      if (source !== es) return;
      retryDelay = RETRY_MIN_MS;
      markOnline();
      if (ui.conn.dataset.state !== 'reset') setConn('live');
    };
    es.onerror = () => {
      if (source !== es) return;
      if (es.readyState === EventSource.CONNECTING) {
        // The browser retries on its own (the connection dropped): is Warden there at all?
        if (!offlineSince) setConn('reconnecting');
        probeReachable();
        return;
      }
      // CLOSED: the server answered with an error status, which EventSource does not
      // tell; retrying blindly would repeat a refusal (each one a security event).
      es.close();
      source = null;
      if (!offlineSince) setConn('reconnecting');
      diagnose();
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
  // Asks the stream's JSON twin (same credential, same checks) why the stream was refused:
  // 401 (or 403 once the token has expired) asks for a new token; 403 shows the reason and
  // stops; anything else (a connection cap, a restart) is retried with a growing delay.
  async function diagnose() {
    let res;
    let body = null;
    try {
      res = await fetch('/api/rooms', { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } });
      body = await res.json().catch(() => null);
    } catch (_) {
      markOffline();
      scheduleConnect(OFFLINE_RETRY_MS);
      return;
    }
    if (!session) return;
    markOnline();
    const code = body && typeof body.error === 'string' ? body.error : `http_${res.status}`;
    const message = body && typeof body.message === 'string' ? body.message : `HTTP ${res.status}`;
    if (res.status === 401 || (res.status === 403 && tokenExpired())) {
      showSignIn(tokenExpired() ? expiredText() : 'Your session ended. Sign in again.');
      return;
    }
    if (res.status === 403) { denyStream(message, code); return; }
    scheduleConnect(retryDelay, res.ok ? '' : message);
    retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS);
  }
  function scheduleConnect(delay, detail) {
    clearTimeout(retryTimer);
    if (detail && !offlineSince) setConn('reconnecting', detail);
    retryTimer = setTimeout(connect, delay);
  }
  function denyStream(message, code) {
    if (source) { source.close(); source = null; }
    clearTimeout(retryTimer);
    show(ui.live, false); // nothing to show: no snapshot is coming
    setConn('denied', code);
    ui.deniedText.replaceChildren('Warden answered 403: ', text(message), ' (', el('code', {}, code), ').');
    show(ui.denied, true);
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
    markOnline();
    goLive();
    refreshSecurity(true); // a fresh snapshot often follows a restart: bring the panel (and its gauge) up to date too
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
    const all = [...rooms.values()].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const q = ui.roomFilter.value.trim().toLowerCase();
    const list = q ? all.filter((r) => String(r.name || '').toLowerCase().includes(q)) : all;
    ui.roomsEmpty.textContent = ui.roomsEmpty.dataset.ready
      ? 'No active rooms. Rooms appear here as soon as LiveKit reports them.'
      : 'Waiting for the first snapshot…';
    show(ui.roomsEmpty, all.length === 0);
    ui.roomsShown.textContent = !q ? ''
      : list.length ? `${list.length} of ${all.length} room${all.length === 1 ? '' : 's'} match “${ui.roomFilter.value.trim()}”.`
        : `No room matches “${ui.roomFilter.value.trim()}” (${all.length} hidden).`;
    show(ui.roomsShown, Boolean(q) && all.length > 0);
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
  async function refreshSecurity(full) {
    if (!session || !session.admin || ui.security.hidden) return;
    const type = ui.secType.value;
    const query = `/api/security/events?limit=${secLimit}${type ? `&type=${encodeURIComponent(type)}` : ''}`;
    const withTimeline = secRefreshes++ % TIMELINE_EVERY === 0 || full === true;
    try {
      const [s, ev, tl] = await Promise.all([api('GET', '/api/security/status'), api('GET', query).catch((e) => e),
        withTimeline ? api('GET', '/api/security/timeline').catch((e) => e) : null]);
      if (!session) return;
      markOnline();
      if (ev instanceof Error && (ev.status === 401 || ev.status === 403)) throw ev;
      renderSecurity(s, ev instanceof Error ? null : ev);
      if (tl && !(tl instanceof Error)) renderCharts(tl);
      show(ui.secError, false);
    } catch (e) {
      if (e.offline) markOffline();
      if (e.status === 401) { showSignIn(tokenExpired() ? expiredText() : 'Your session ended. Sign in again.'); return; }
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
    const hour = s.counts && s.counts['1h'] && typeof s.counts['1h'] === 'object'
      ? Object.values(s.counts['1h']).reduce((a, n) => a + (Number(n) || 0), 0) : 0;
    ui.secSummary.textContent = `Overall: ${s.overall_status || 'unknown'} · ${blocked.length} blocked · ` +
      `${hour} security event${hour === 1 ? '' : 's'} in the last hour`;
  }
  function setSecOpen(open) {
    show(ui.secBody, open);
    show(ui.secSummary, !open);
    ui.secToggle.setAttribute('aria-expanded', String(open));
    ui.secToggle.textContent = open ? 'Hide' : 'Show';
  }

  // ---------------------------------------------------------------- pictures (inline SVG, no script from elsewhere)
  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  // Stacked bars, one per minute: series = [{name, cls, values}], oldest minute first.
  function barChart(series, startMs, label) {
    const W = 600, H = 120, n = Math.max(1, ...series.map((x) => x.values.length));
    const totals = Array.from({ length: n }, (_, i) => series.reduce((a, x) => a + (Number(x.values[i]) || 0), 0));
    const max = Math.max(1, ...totals);
    const bw = W / n;
    const root = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none',
      role: 'img', 'aria-label': label, 'data-max': max, 'data-total': totals.reduce((a, b) => a + b, 0) });
    for (let i = 0; i < n; i++) {
      let y = H;
      const at = new Date(startMs + i * 60000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
      for (const x of series) {
        const v = Number(x.values[i]) || 0;
        if (!v) continue;
        const h = (v / max) * (H - 4);
        y -= h;
        root.append(svg('rect', { x: (i * bw + 0.5).toFixed(2), y: y.toFixed(2), width: Math.max(1, bw - 1).toFixed(2),
          height: h.toFixed(2), class: `bar ${x.cls}`, 'data-series': x.name, 'data-count': v, 'data-minute': i },
        svg('title', {}, `${at} · ${x.name}: ${v}`)));
      }
    }
    root.append(svg('line', { class: 'axis', x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }));
    const scale = el('div', { class: 'chart-scale' }, el('span', {}, '60 min ago'), el('span', {}, `peak ${max === 1 && !totals.some(Boolean) ? 0 : max}/min`), el('span', {}, 'now'));
    return [root, scale];
  }
  function gauge(open, max) {
    const len = Math.PI * 80;
    const frac = max > 0 ? Math.min(1, open / max) : 0;
    const shown = open > 0 ? Math.max(3, len * frac) : 0;
    const arc = 'M 20 95 A 80 80 0 0 1 180 95';
    return svg('svg', { class: 'chart gauge', viewBox: '0 0 200 105', role: 'img',
      'aria-label': `${open} open event-stream connections of at most ${max}`, 'data-open': open, 'data-max': max },
    svg('path', { class: 'gauge-track', d: arc }),
    svg('path', { class: `gauge-value${frac >= 0.8 ? ' high' : ''}`, d: arc, 'stroke-dasharray': `${shown.toFixed(2)} ${len.toFixed(2)}` }));
  }
  function renderCharts(t) {
    const start = localTime(t.start);
    const startMs = start ? start.getTime() : Date.now() - 3600e3;
    const byType = t.security_events && typeof t.security_events === 'object' ? t.security_events : {};
    const series = EVENT_TYPES.map((name, i) => ({ name, cls: `t-${i}`, values: Array.isArray(byType[name]) ? byType[name] : [] }));
    ui.chartSec.replaceChildren(...barChart(series, startMs, 'Security events per minute over the last hour, by type'));
    const seen = series.map((x) => [x, x.values.reduce((a, n) => a + (Number(n) || 0), 0)]).filter(([, n]) => n > 0);
    ui.chartSecLegend.replaceChildren(...(seen.length ? seen.map(([x, n]) => el('li', { 'data-type': x.name },
      el('span', { class: `swatch ${x.cls}` }), `${x.name} ${n}`)) : [el('li', { class: 'empty' }, 'No security events in the last hour.')]));
    const hooks = Array.isArray(t.webhooks_accepted) ? t.webhooks_accepted : [];
    ui.chartHooks.replaceChildren(...barChart([{ name: 'accepted', cls: 'bar-hooks', values: hooks }], startMs,
      'Webhooks accepted per minute over the last hour'));
    const c = t.connections || {};
    const open = Number(c.open) || 0, max = Number(c.max) || 0;
    ui.gaugeConn.replaceChildren(gauge(open, max));
    ui.gaugeText.textContent = `${open} open of at most ${max}`;
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
      feedEmpty: 'feed-empty', feedList: 'feed-list', notice: 'notice', stale: 'stale', denied: 'denied',
      deniedText: 'denied-text', deniedRetry: 'denied-retry', deniedSignin: 'denied-signin', secToggle: 'sec-toggle',
      secBody: 'sec-body', secSummary: 'sec-summary', chartSec: 'chart-sec', chartSecLegend: 'chart-sec-legend',
      chartHooks: 'chart-hooks', gaugeConn: 'gauge-conn', gaugeText: 'gauge-text', roomFilter: 'room-filter',
      roomsShown: 'rooms-shown' })) ui[k] = $(id);
    ui.signinForm.addEventListener('submit', onSignIn);
    ui.signout.addEventListener('click', onSignOut);
    ui.secRefresh.addEventListener('click', () => refreshSecurity(true));
    ui.ingestToggle.addEventListener('click', onIngestToggle);
    ui.ingestYes.addEventListener('click', onIngestConfirm);
    ui.ingestNo.addEventListener('click', () => { show(ui.ingestConfirm, false); ui.ingestToggle.focus(); });
    ui.secBlocked.addEventListener('click', onBlockedClick);
    ui.secType.addEventListener('change', () => { secLimit = SEC_PAGE; refreshSecurity(); });
    ui.secMore.addEventListener('click', () => { secLimit += SEC_PAGE; refreshSecurity(); });
    ui.secToggle.addEventListener('click', () => setSecOpen(ui.secBody.hidden));
    ui.roomFilter.addEventListener('input', queueRender);
    ui.deniedRetry.addEventListener('click', connect);
    ui.deniedSignin.addEventListener('click', () => showSignIn(''));
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
