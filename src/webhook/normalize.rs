//! From LiveKit's wire event to Warden's [`Event`]: required parts checked,
//! every string sanitised, identities hashed, enums named.
//!
//! Invariant: every `String` in the produced [`Event`] (except `room_key`,
//! which is never serialised) has passed [`sanitize`]; enum fields hold only
//! the fixed names of SPEC "SSE stream" or `unknown`.

use crate::event::{
    EgressInfo, Event, EventData, IngressInfo, JobInfo, Order, ParticipantInfo, RoomInfo, TrackInfo,
};
use crate::pepper::Pepper;

use super::decode::{WireEvent, WireIngress, WireJob, WireParticipant, WireRoom, WireTrack};
use super::sanitize::{self, MAX_TEXT_CHARS};

/// Tracks listed per participant at most (a dashboard needs a count, not thousands).
const MAX_TRACKS: usize = 64;

/// `ParticipantInfo.State`, by number.
const PARTICIPANT_STATES: &[(&str, &str)] = &[
    ("JOINING", "joining"),
    ("JOINED", "joined"),
    ("ACTIVE", "active"),
    ("DISCONNECTED", "disconnected"),
];

/// `TrackType`, by number.
const TRACK_KINDS: &[(&str, &str)] = &[("AUDIO", "audio"), ("VIDEO", "video"), ("DATA", "data")];

/// `TrackSource`, by number.
const TRACK_SOURCES: &[(&str, &str)] = &[
    ("UNKNOWN", "unknown"),
    ("CAMERA", "camera"),
    ("MICROPHONE", "microphone"),
    ("SCREEN_SHARE", "screen_share"),
    ("SCREEN_SHARE_AUDIO", "screen_share_audio"),
];

/// `ParticipantInfo.Kind`, by number (5 and 6 are not assigned).
const PARTICIPANT_KINDS: &[(&str, &str)] = &[
    ("STANDARD", "standard"),
    ("INGRESS", "ingress"),
    ("EGRESS", "egress"),
    ("SIP", "sip"),
    ("AGENT", "agent"),
    ("", "unknown"),
    ("", "unknown"),
    ("CONNECTOR", "connector"),
    ("BRIDGE", "bridge"),
];

/// `JobType`, by number.
const JOB_TYPES: &[(&str, &str)] = &[
    ("JT_ROOM", "room"),
    ("JT_PUBLISHER", "publisher"),
    ("JT_PARTICIPANT", "participant"),
];

/// `JobStatus`, by number.
const JOB_STATUSES: &[(&str, &str)] = &[
    ("JS_PENDING", "pending"),
    ("JS_RUNNING", "running"),
    ("JS_SUCCESS", "success"),
    ("JS_FAILED", "failed"),
];

/// Longest job error kept (characters): enough for a reason, not for a dump.
const MAX_ERROR_CHARS: usize = 300;

/// `EgressStatus`, by number.
const EGRESS_STATUSES: &[(&str, &str)] = &[
    ("EGRESS_STARTING", "starting"),
    ("EGRESS_ACTIVE", "active"),
    ("EGRESS_ENDING", "ending"),
    ("EGRESS_COMPLETE", "complete"),
    ("EGRESS_FAILED", "failed"),
    ("EGRESS_ABORTED", "aborted"),
    ("EGRESS_LIMIT_REACHED", "limit_reached"),
];

/// `IngressState.Status`, by number.
const INGRESS_STATES: &[(&str, &str)] = &[
    ("ENDPOINT_INACTIVE", "endpoint_inactive"),
    ("ENDPOINT_BUFFERING", "buffering"),
    ("ENDPOINT_PUBLISHING", "publishing"),
    ("ENDPOINT_ERROR", "error"),
    ("ENDPOINT_COMPLETE", "complete"),
];

/// What an event of a given name must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    Room,
    RoomParticipant,
    RoomParticipantTrack,
    Egress,
    Ingress,
    Job,
}

fn needs(event: &str) -> Option<Needs> {
    Some(match event {
        "room_started" | "room_finished" => Needs::Room,
        "participant_joined" | "participant_left" | "participant_connection_aborted" => {
            Needs::RoomParticipant
        }
        "track_published" | "track_unpublished" => Needs::RoomParticipantTrack,
        "egress_started" | "egress_updated" | "egress_ended" => Needs::Egress,
        "ingress_started" | "ingress_ended" => Needs::Ingress,
        "agent_job_started" | "agent_job_ended" => Needs::Job,
        _ => return None,
    })
}

/// How identities are shown.
#[derive(Clone, Debug)]
pub enum Identities {
    /// 8 hex chars of HMAC-SHA256(pepper, identity).
    Hashed(Pepper),
    /// Sanitised plain text.
    Plain,
}

/// The result of normalising one decoded event.
#[derive(Debug)]
pub enum Normalized {
    /// A broadcast event.
    Event(Box<Event>),
    /// An event name Warden does not broadcast (sanitised).
    Ignored(String),
    /// A known event lacking what it needs, or with no `event` at all.
    Invalid(&'static str),
}

/// Normalises `wire`; `fallback_id` is used when LiveKit sent no id.
pub fn normalize(
    wire: WireEvent,
    identities: &Identities,
    fallback_id: impl FnOnce() -> String,
) -> Normalized {
    let Some(name) = wire.event.as_deref().filter(|n| !n.is_empty()) else {
        return Normalized::Invalid("no `event`");
    };
    let Some(needs) = needs(name) else {
        return Normalized::Ignored(sanitize::text(name, MAX_TEXT_CHARS));
    };
    if let Err(what) = check_required(&wire, needs) {
        return Normalized::Invalid(what);
    }
    // Deduplicated on the id LiveKit sent: hashed, not stripped, when unclean.
    let id = wire
        .id
        .as_deref()
        .map(sanitize::event_id)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(fallback_id);
    // An agent job names its room and participant inside the job.
    let job = wire.job.as_ref();
    let wire_room = wire.room.as_ref().or(job.and_then(|j| j.room.as_ref()));
    let wire_participant = wire
        .participant
        .as_ref()
        .or(job.and_then(|j| j.participant.as_ref()));
    let mut data = EventData {
        room: wire_room.map(room),
        participant: wire_participant.map(|p| participant(p, identities)),
        track: wire.track.as_ref().map(track),
        job: job.map(|j| job_info(j, identities)),
        ..EventData::default()
    };
    let mut room_key = wire_room.and_then(|r| r.name.clone());
    egress_and_ingress(&wire, &mut data, &mut room_key);
    let created_at_ms = wire.created_at.unwrap_or(0).saturating_mul(1000);
    Normalized::Event(Box::new(Event {
        id,
        event: name.to_owned(),
        created_at_ms,
        room_key,
        order: wire_participant.map(order),
        data,
    }))
}

/// LiveKit's order of a participant's sessions and updates.
fn order(p: &WireParticipant) -> Order {
    let joined_at_ms = p
        .joined_at_ms
        .filter(|ms| *ms > 0)
        .or(p.joined_at.map(|s| s.saturating_mul(1000)))
        .unwrap_or(0);
    Order {
        joined_at_ms,
        version: p
            .version
            .map_or(0, |v| u32::try_from(v.max(0)).unwrap_or(u32::MAX)),
    }
}

/// A job as it goes on the stream (the reconciler builds its changes with this too).
pub fn job_info(j: &WireJob, identities: &Identities) -> JobInfo {
    let state = j.state.as_ref();
    JobInfo {
        id: opt_id(&j.id),
        agent_name: opt_text(&j.agent_name),
        kind: j.kind.pick(JOB_TYPES),
        status: state.map_or(JOB_STATUSES[0].1, |s| s.status.pick(JOB_STATUSES)),
        error: state
            .and_then(|s| s.error.as_deref())
            .map(|e| sanitize::text(e, MAX_ERROR_CHARS))
            .filter(|e| !e.is_empty()),
        agent_identity: state
            .and_then(|s| s.participant_identity.as_deref())
            .filter(|i| !i.is_empty())
            .map(|i| identity(i, identities)),
        started_at: state.and_then(|s| unix_ms(s.started_at)),
        ended_at: state.and_then(|s| unix_ms(s.ended_at)),
    }
}

/// A LiveKit timestamp in any unit (s, ms, µs, ns: livekit-server writes job
/// times in ns) as Unix ms; absent or zero is `None`.
fn unix_ms(t: Option<i64>) -> Option<i64> {
    let t = t.filter(|t| *t > 0)?;
    Some(match t {
        t if t >= 100_000_000_000_000_000 => t / 1_000_000,
        t if t >= 100_000_000_000_000 => t / 1_000,
        t if t >= 100_000_000_000 => t,
        t => t.saturating_mul(1000),
    })
}

fn identity(raw: &str, identities: &Identities) -> String {
    match identities {
        Identities::Hashed(pepper) => pepper.hash_identity(raw),
        Identities::Plain => sanitize::text(raw, MAX_TEXT_CHARS),
    }
}

/// Egress and ingress parts, and the room they name when the event has no `room`.
fn egress_and_ingress(wire: &WireEvent, data: &mut EventData, room_key: &mut Option<String>) {
    if let Some(e) = &wire.egress_info {
        data.egress = Some(EgressInfo {
            id: opt_id(&e.egress_id),
            status: e.status.pick(EGRESS_STATUSES),
        });
        fill_room(data, room_key, e.room_id.as_deref(), e.room_name.as_deref());
    }
    if let Some(i) = &wire.ingress_info {
        data.ingress = Some(ingress(i));
        let room_sid = i.state.as_ref().and_then(|s| s.room_id.as_deref());
        fill_room(data, room_key, room_sid, i.room_name.as_deref());
    }
}

fn check_required(wire: &WireEvent, needs: Needs) -> Result<(), &'static str> {
    let room = wire.room.is_some();
    let participant = wire.participant.is_some();
    match needs {
        Needs::Room | Needs::RoomParticipant | Needs::RoomParticipantTrack if !room => {
            Err("`room` is required")
        }
        Needs::RoomParticipant | Needs::RoomParticipantTrack if !participant => {
            Err("`participant` is required")
        }
        Needs::RoomParticipantTrack if wire.track.is_none() => Err("`track` is required"),
        Needs::Egress if wire.egress_info.is_none() => Err("`egressInfo` is required"),
        Needs::Ingress if wire.ingress_info.is_none() => Err("`ingressInfo` is required"),
        Needs::Job if wire.job.is_none() => Err("`job` is required"),
        _ => Ok(()),
    }
}

/// Egress and ingress name their room in their own fields; use them when the event has no `room`.
fn fill_room(
    data: &mut EventData,
    room_key: &mut Option<String>,
    sid: Option<&str>,
    name: Option<&str>,
) {
    let name = name.filter(|n| !n.is_empty());
    if data.room.is_none() && (name.is_some() || sid.is_some_and(|s| !s.is_empty())) {
        data.room = Some(RoomInfo {
            sid: sid.map(sanitize::id).unwrap_or_default(),
            name: name
                .map(|n| sanitize::text(n, MAX_TEXT_CHARS))
                .unwrap_or_default(),
            ..RoomInfo::default()
        });
    }
    if room_key.is_none() {
        *room_key = name.map(str::to_owned);
    }
}

fn opt_id(s: &Option<String>) -> String {
    s.as_deref().map(sanitize::id).unwrap_or_default()
}

fn opt_text(s: &Option<String>) -> String {
    s.as_deref()
        .map(|t| sanitize::text(t, MAX_TEXT_CHARS))
        .unwrap_or_default()
}

fn positive(n: Option<i64>) -> Option<i64> {
    n.filter(|v| *v > 0)
}

/// A room as it goes on the stream (the reconciler builds its changes with this too).
pub fn room(r: &WireRoom) -> RoomInfo {
    RoomInfo {
        sid: opt_id(&r.sid),
        name: opt_text(&r.name),
        num_participants: r
            .num_participants
            .map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX)),
        creation_time: positive(r.creation_time),
    }
}

/// A participant as it goes on the stream, identity hashed or sanitised (the
/// reconciler builds its changes with this too).
pub fn participant(p: &WireParticipant, identities: &Identities) -> ParticipantInfo {
    ParticipantInfo {
        sid: opt_id(&p.sid),
        identity: identity(p.identity.as_deref().unwrap_or(""), identities),
        name: opt_text(&p.name),
        state: p.state.pick(PARTICIPANT_STATES),
        kind: p.kind.pick(PARTICIPANT_KINDS),
        joined_at: positive(p.joined_at),
        tracks: p
            .tracks
            .iter()
            .flatten()
            .take(MAX_TRACKS)
            .map(track)
            .collect(),
    }
}

fn track(t: &WireTrack) -> TrackInfo {
    TrackInfo {
        sid: opt_id(&t.sid),
        kind: t.kind.pick(TRACK_KINDS),
        source: t.source.pick(TRACK_SOURCES),
        muted: t.muted.unwrap_or(false),
    }
}

fn ingress(i: &WireIngress) -> IngressInfo {
    let state = i
        .state
        .as_ref()
        .map_or(INGRESS_STATES[0].1, |s| s.status.pick(INGRESS_STATES));
    IngressInfo {
        id: opt_id(&i.ingress_id),
        state,
    }
}
