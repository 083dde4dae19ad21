// Webhook interop with LiveKit's official Node SDK (livekit-server-sdk + @livekit/protocol).
//
//   node webhook.mjs make KEY SECRET
//     One JSON line per delivery: {name, body, auth, expect}. Bodies are
//     @livekit/protocol WebhookEvent.toJsonString() / JSON.stringify(toJson())
//     (as livekit-server-sdk's WebhookReceiver parses them); tokens are
//     AccessToken with the `sha256` claim, exactly what WebhookReceiver verifies.
//
//   node webhook.mjs serve KEY SECRET
//     An HTTP server on 127.0.0.1:0 that checks each POST with the official
//     WebhookReceiver.receive(body, authHeader). Prints `LISTENING <port>`, then
//     one JSON line per request: {ok, status, contentType, body, auth, event, room, identity, track, error}.
//     Answers 200 when verified, 401 otherwise. Exits when stdin closes.
import { createHash } from 'node:crypto';
import http from 'node:http';
import { AccessToken, WebhookReceiver } from 'livekit-server-sdk';
import {
  EgressInfo, EgressStatus, IngressInfo, IngressState, IngressState_Status, Job, JobState, JobStatus,
  JobType, ParticipantInfo, ParticipantInfo_Kind, ParticipantInfo_State, Room, TrackInfo, TrackSource,
  TrackType, WebhookEvent,
} from '@livekit/protocol';

const [mode, key, secret] = process.argv.slice(2);
if (!mode || !key || !secret) {
  console.error('usage: node webhook.mjs make|serve KEY SECRET');
  process.exit(2);
}

const now = BigInt(Math.floor(Date.now() / 1000));
const room = (name) => new Room({
  sid: 'RM_' + name.replace(/[^A-Za-z0-9]/g, ''), name, emptyTimeout: 300, creationTime: now - 60n,
  turnPassword: 'TURNsecretFromSdk', metadata: '{"secret":"room-metadata"}', numParticipants: 2,
});
const participant = (identity, state) => new ParticipantInfo({
  sid: 'PA_' + identity.replace(/[^A-Za-z0-9]/g, ''), identity, name: 'Ada <b>Lovelace</b>', state,
  joinedAt: now - 5n, metadata: 'participant-metadata', attributes: { role: 'attribute-value' },
});

// [name, WebhookEvent fields, expected normalised fields, toJson options]
function cases() {
  const audio = new TrackInfo({ sid: 'TR_audio1', type: TrackType.AUDIO, source: TrackSource.MICROPHONE, name: 'mic' });
  const screen = new TrackInfo({ sid: 'TR_screen1', type: TrackType.VIDEO, source: TrackSource.SCREEN_SHARE, muted: true });
  const egress = (status, extra = {}) => new EgressInfo({
    egressId: 'EG_sdk1', roomId: 'RM_rec', roomName: 'recorded', status, ...extra,
  });
  const ingress = (status) => new IngressInfo({
    ingressId: 'IN_sdk1', name: 'obs', streamKey: 'sk_SDKSECRET', url: 'rtmp://ingest.example/x', roomName: 'stage',
    participantIdentity: 'streamer', state: new IngressState({ status, roomId: 'RM_stage', startedAt: now * 1_000_000_000n }),
  });
  const p = (state) => participant('alice@example.com', state);
  const sip = new ParticipantInfo({
    sid: 'PA_sip1', identity: '+15550100', name: 'Ada <b>Lovelace</b>', state: ParticipantInfo_State.ACTIVE,
    kind: ParticipantInfo_Kind.SIP, metadata: 'participant-metadata', attributes: { 'sip.callID': 'attribute-value' },
  });
  const job = (type, status, who, error) => new Job({
    id: 'AJ_sdk1', dispatchId: 'AD_sdk1', type, room: room('demo'), participant: who, agentName: 'voice',
    metadata: '{"secret":"job-metadata"}', attributes: { k: 'attribute-value' },
    state: new JobState({ status, error: error ?? '', startedAt: now * 1_000_000_000n, participantIdentity: 'agent-identity',
      workerId: 'W_sdkworker', agentId: 'A_sdkagent' }),
  });
  return [
    ['room_started', { room: room('demo') }, { room: 'demo' }],
    ['room_finished', { room: room('demo') }, { room: 'demo' }],
    ['participant_joined', { room: room('demo'), participant: p(ParticipantInfo_State.ACTIVE) },
      { room: 'demo', identity: 'alice@example.com', state: 'active' }],
    ['participant_left', { room: room('demo'), participant: p(ParticipantInfo_State.DISCONNECTED) },
      { room: 'demo', identity: 'alice@example.com', state: 'disconnected' }],
    ['participant_connection_aborted', { room: room('demo'), participant: p(ParticipantInfo_State.JOINING) },
      { room: 'demo', identity: 'alice@example.com', state: 'joining' }],
    ['track_published', { room: room('demo'), participant: p(ParticipantInfo_State.ACTIVE), track: audio },
      { room: 'demo', track: ['TR_audio1', 'audio', 'microphone', false] }],
    ['track_unpublished', { room: room('demo'), participant: p(ParticipantInfo_State.ACTIVE), track: screen },
      { room: 'demo', track: ['TR_screen1', 'video', 'screen_share', true] }],
    ['egress_started', { egressInfo: egress(EgressStatus.EGRESS_STARTING, { updatedAt: now * 1_000_000_000n }) },
      { room: 'recorded', egress: ['EG_sdk1', 'starting'] }],
    ['egress_updated', { egressInfo: egress(EgressStatus.EGRESS_ACTIVE, { startedAt: now * 1_000_000_000n + 123n }) },
      { room: 'recorded', egress: ['EG_sdk1', 'active'] }],
    ['egress_ended', { egressInfo: egress(EgressStatus.EGRESS_COMPLETE, { endedAt: now * 1_000_000_000n + 999n }) },
      { room: 'recorded', egress: ['EG_sdk1', 'complete'] }, { useProtoFieldName: true }],
    ['ingress_started', { ingressInfo: ingress(IngressState_Status.ENDPOINT_PUBLISHING) },
      { room: 'stage', ingress: ['IN_sdk1', 'publishing'] }, { enumAsInteger: true }],
    ['ingress_ended', { ingressInfo: ingress(IngressState_Status.ENDPOINT_INACTIVE) },
      { room: 'stage', ingress: ['IN_sdk1', 'endpoint_inactive'] }],
    // Agent dispatch: the room is the job's; a JT_ROOM job in JS_PENDING has neither type nor status.
    ['agent_job_started', { job: job(JobType.JT_ROOM, JobStatus.JS_PENDING) },
      { room: 'demo', job: ['AJ_sdk1', 'voice', 'room', 'pending'] }],
    ['agent_job_started', { job: job(JobType.JT_PARTICIPANT, JobStatus.JS_RUNNING, sip) },
      { room: 'demo', job: ['AJ_sdk1', 'voice', 'participant', 'running'], identity: '+15550100', state: 'active', kind: 'sip' },
      { useProtoFieldName: true, enumAsInteger: true }],
    ['agent_job_ended', { job: job(JobType.JT_PUBLISHER, JobStatus.JS_FAILED, undefined, 'model <b>timeout</b>') },
      { room: 'demo', job: ['AJ_sdk1', 'voice', 'publisher', 'failed'], error: 'model timeout' }],
  ];
}

async function sign(body) {
  const at = new AccessToken(key, secret, { ttl: '5m' });
  at.sha256 = createHash('sha256').update(body).digest('base64');
  return at.toJwt();
}

async function make() {
  let n = 0;
  for (const [event, fields, expect, opts] of cases()) {
    const ev = new WebhookEvent({ event, id: `EV_sdk${n++}`, createdAt: now, ...fields });
    // Both serialisations the SDK offers; the options cover snake_case names and numeric enums.
    const body = opts ? JSON.stringify(ev.toJson(opts)) : ev.toJsonString();
    console.log(JSON.stringify({ name: event, event, body, auth: await sign(body), expect }));
  }
}

function serve() {
  const receiver = new WebhookReceiver(key, secret);
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const authHeaders = req.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'authorization');
      const report = {
        contentType: req.headers['content-type'] ?? null, auth_headers: authHeaders.length,
        body, auth: req.headers.authorization ?? null,
      };
      try {
        const ev = await receiver.receive(body, req.headers.authorization);
        Object.assign(report, {
          ok: true, status: 200, event: ev.event, id: ev.id,
          room: ev.room?.name ?? ev.egressInfo?.roomName ?? ev.ingressInfo?.roomName ?? ev.job?.room?.name ?? null,
          agent: ev.job?.agentName ?? null,
          identity: ev.participant?.identity ?? null, track: ev.track ? TrackSource[ev.track.source] : null,
        });
      } catch (e) {
        Object.assign(report, { ok: false, status: 401, error: String(e?.message ?? e) });
      }
      res.writeHead(report.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: report.ok }));
      console.log(JSON.stringify(report));
    });
  });
  server.listen(0, '127.0.0.1', () => console.log(`LISTENING ${server.address().port}`));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

if (mode === 'make') await make();
else if (mode === 'serve') serve();
else { console.error(`unknown mode ${mode}`); process.exit(2); }
