//! An [`Event`] as it travels through the shared stream, and back.
//!
//! The event is serialised after verification and normalisation on the node
//! that received the webhook, so every node broadcasts exactly the same
//! minimised, sanitised, peppered data. `Event` only serialises (its
//! vocabulary fields are `&'static str`), so decoding goes through owned
//! mirror types and maps each vocabulary word back onto the known list —
//! anything else becomes `unknown` (Warden's own `reconciled` events and
//! their `change` travel the same way). Text is sanitised again on the way in:
//! Redis is trusted, but the stream must never carry markup whatever is in it.

use serde::{Deserialize, Serialize};

use crate::event::{
    EgressInfo, Event, EventData, IngressInfo, JobInfo, Order, ParticipantInfo, RoomInfo, TrackInfo,
};
use crate::webhook::sanitize;

const PARTICIPANT_STATES: &[&str] = &["joining", "joined", "active", "disconnected"];
const PARTICIPANT_KINDS: &[&str] = &[
    "standard",
    "ingress",
    "egress",
    "sip",
    "agent",
    "connector",
    "bridge",
];
const TRACK_KINDS: &[&str] = &["audio", "video", "data"];
const TRACK_SOURCES: &[&str] = &["camera", "microphone", "screen_share", "screen_share_audio"];
const EGRESS_STATUSES: &[&str] = &[
    "starting",
    "active",
    "ending",
    "complete",
    "failed",
    "aborted",
    "limit_reached",
];
const INGRESS_STATES: &[&str] = &[
    "endpoint_inactive",
    "buffering",
    "publishing",
    "error",
    "complete",
];

/// What a `reconciled` event may say it changed (see [`crate::livekit`]).
const CHANGES: &[&str] = &[
    "room_added",
    "room_removed",
    "participant_added",
    "participant_removed",
    "agent_added",
    "agent_removed",
];

/// Longest text kept from the stream (names are cut far shorter at the source).
const MAX_TEXT: usize = 512;

#[derive(Serialize)]
struct Out<'a> {
    id: &'a str,
    event: &'a str,
    created_at_ms: i64,
    room_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<Order>,
    data: &'a EventData,
}

#[derive(Deserialize)]
struct In {
    id: String,
    event: String,
    #[serde(default)]
    created_at_ms: i64,
    room_key: Option<String>,
    #[serde(default)]
    order: Option<Order>,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    room: Option<Room>,
    participant: Option<Participant>,
    track: Option<Track>,
    egress: Option<Egress>,
    ingress: Option<Ingress>,
    /// Its vocabulary is mapped by `JobInfo`'s own `Deserialize`; text is sanitised below.
    #[serde(default)]
    job: Option<JobInfo>,
    change: Option<String>,
}

#[derive(Deserialize)]
struct Room {
    sid: String,
    name: String,
    num_participants: Option<u32>,
    creation_time: Option<i64>,
}

#[derive(Deserialize)]
struct Participant {
    sid: String,
    identity: String,
    name: String,
    state: String,
    #[serde(default)]
    kind: String,
    joined_at: Option<i64>,
    #[serde(default)]
    tracks: Vec<Track>,
}

#[derive(Deserialize)]
struct Track {
    sid: String,
    kind: String,
    source: String,
    muted: bool,
}

#[derive(Deserialize)]
struct Egress {
    id: String,
    status: String,
}

#[derive(Deserialize)]
struct Ingress {
    id: String,
    state: String,
}

/// The event's wire JSON.
pub(super) fn encode(event: &Event) -> String {
    serde_json::to_string(&Out {
        id: &event.id,
        event: &event.event,
        created_at_ms: event.created_at_ms,
        room_key: event.room_key.as_deref(),
        order: event.order,
        data: &event.data,
    })
    .expect("plain derived structs serialise without error")
}

/// The event back from its wire JSON; `None` when it is not one.
pub(super) fn decode(json: &str) -> Option<Event> {
    let w: In = serde_json::from_str(json).ok()?;
    let text = |s: &str| sanitize::text(s, MAX_TEXT);
    // LiveKit's events, and Warden's own reconciliation with the LiveKit API.
    let event = crate::event::BROADCAST_EVENTS
        .iter()
        .chain(&["reconciled"])
        .find(|e| **e == w.event)
        .map_or("unknown", |e| e);
    Some(Event {
        id: sanitize::id(&w.id),
        event: event.to_owned(),
        created_at_ms: w.created_at_ms,
        // The raw room name is compared with tokens' `video.room`, never shown: kept as is.
        room_key: w.room_key,
        order: w.order,
        data: EventData {
            room: w.data.room.map(|r| RoomInfo {
                sid: sanitize::id(&r.sid),
                name: text(&r.name),
                num_participants: r.num_participants,
                creation_time: r.creation_time,
            }),
            participant: w.data.participant.map(|p| ParticipantInfo {
                sid: sanitize::id(&p.sid),
                identity: text(&p.identity),
                name: text(&p.name),
                state: word(&p.state, PARTICIPANT_STATES),
                kind: if p.kind.is_empty() {
                    "standard"
                } else {
                    word(&p.kind, PARTICIPANT_KINDS)
                },
                joined_at: p.joined_at,
                tracks: p.tracks.into_iter().map(track).collect(),
            }),
            track: w.data.track.map(track),
            egress: w.data.egress.map(|e| EgressInfo {
                id: sanitize::id(&e.id),
                status: word(&e.status, EGRESS_STATUSES),
            }),
            ingress: w.data.ingress.map(|i| IngressInfo {
                id: sanitize::id(&i.id),
                state: word(&i.state, INGRESS_STATES),
            }),
            job: w.data.job.map(|j| JobInfo {
                id: sanitize::id(&j.id),
                agent_name: text(&j.agent_name),
                error: j.error.as_deref().map(text),
                agent_identity: j.agent_identity.as_deref().map(text),
                ..j
            }),
            change: w.data.change.map(|c| word(&c, CHANGES)),
        },
    })
}

fn track(t: Track) -> TrackInfo {
    TrackInfo {
        sid: sanitize::id(&t.sid),
        kind: word(&t.kind, TRACK_KINDS),
        source: word(&t.source, TRACK_SOURCES),
        muted: t.muted,
    }
}

/// `s` as the matching word of `known`, else `unknown`.
fn word(s: &str, known: &[&'static str]) -> &'static str {
    known
        .iter()
        .find(|k| **k == s)
        .copied()
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        let track = TrackInfo {
            sid: "TR_1".into(),
            kind: "video",
            source: "screen_share",
            muted: true,
        };
        Event {
            id: "EV_abc".into(),
            event: "track_published".into(),
            created_at_ms: 1_700_000_000_123,
            room_key: Some("raw <room>".into()),
            order: None,
            data: EventData {
                room: Some(RoomInfo {
                    sid: "RM_1".into(),
                    name: "demo".into(),
                    num_participants: Some(2),
                    creation_time: Some(1_700_000_000),
                }),
                participant: Some(ParticipantInfo {
                    sid: "PA_1".into(),
                    identity: "3f2a9c1d".into(),
                    name: "Alice".into(),
                    state: "active",
                    kind: "sip",
                    joined_at: Some(1_700_000_001),
                    tracks: vec![track.clone()],
                }),
                track: Some(track),
                egress: Some(EgressInfo {
                    id: "EG_1".into(),
                    status: "limit_reached",
                }),
                ingress: Some(IngressInfo {
                    id: "IN_1".into(),
                    state: "buffering",
                }),
                job: Some(crate::event::JobInfo {
                    id: "AJ_1".into(),
                    agent_name: "voice".into(),
                    kind: "publisher",
                    status: "failed",
                    error: Some("boom".into()),
                    agent_identity: Some("0a1b2c3d".into()),
                    started_at: Some(1_700_000_000_500),
                    ended_at: Some(1_700_000_009_000),
                }),
                change: None,
            },
        }
    }

    #[test]
    fn an_event_survives_the_round_trip_exactly() {
        let event = sample();
        assert_eq!(decode(&encode(&event)), Some(event));
    }

    #[test]
    fn a_reconciled_event_keeps_its_change() {
        let mut event = sample();
        event.event = "reconciled".into();
        event.data.change = Some("participant_removed");
        assert_eq!(decode(&encode(&event)), Some(event.clone()));
        let mut json: serde_json::Value = serde_json::from_str(&encode(&event)).expect("json");
        json["data"]["change"] = "everything_removed".into();
        let back = decode(&json.to_string()).expect("decodes");
        assert_eq!(back.data.change, Some("unknown"));
    }

    #[test]
    fn unknown_words_and_markup_do_not_come_back_from_the_stream() {
        let mut json: serde_json::Value = serde_json::from_str(&encode(&sample())).expect("json");
        json["data"]["participant"]["state"] = "<b>owned</b>".into();
        json["data"]["participant"]["name"] = "<script>x</script>".into();
        json["event"] = "made_up".into();
        let event = decode(&json.to_string()).expect("decodes");
        let p = event.data.participant.expect("participant");
        assert_eq!(p.state, "unknown");
        assert!(!p.name.contains('<'), "{}", p.name);
        assert_eq!(event.event, "unknown");
        assert_eq!(decode("not json"), None);
    }
}
