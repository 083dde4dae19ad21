//! Webhook bodies as livekit-server writes them, for `warden webhook send` and tests.
//!
//! Go's `protojson.Marshal` of a `livekit.WebhookEvent`: camelCase names in
//! `.proto` field order, int64 as decimal strings, zero values omitted (so an
//! audio track has no `type` and a starting egress no `status`), enums as
//! names, and fresh `EV_`/`RM_`/`PA_`/`TR_`/`EG_`/`IN_` ids (12 base57
//! characters, as LiveKit's `guid` makes them). Nothing secret is put in:
//! no `turnPassword`, stream key or metadata.

use rand::Rng;
use serde::Serialize;

/// LiveKit's id alphabet (base57: no 0, 1, I, O, l).
const BASE57: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// A fresh LiveKit-style id with `prefix`, e.g. `EV_` + 12 base57 characters.
pub fn guid(prefix: &str) -> String {
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| char::from(BASE57[rng.random_range(0..BASE57.len())]))
        .collect();
    format!("{prefix}{tail}")
}

/// A LiveKit-shaped id derived from `seed`, so that drills sent one after the
/// other (`room_started`, `participant_joined`, `participant_left`, …) name
/// the same room, participant and track, as a real server would.
pub fn stable_guid(prefix: &str, seed: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let tail: String = digest
        .iter()
        .take(12)
        .map(|b| char::from(BASE57[usize::from(*b) % BASE57.len()]))
        .collect();
    format!("{prefix}{tail}")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    room: Option<Room>,
    #[serde(skip_serializing_if = "Option::is_none")]
    participant: Option<Participant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    egress_info: Option<Egress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ingress_info: Option<Ingress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    track: Option<Track>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job: Option<Job>,
    id: String,
    created_at: String,
}

/// `livekit.Job`: a room job (JT_ROOM, the zero value, so no `type`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    id: String,
    dispatch_id: String,
    room: Room,
    agent_name: String,
    state: JobState,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobState {
    status: &'static str,
    started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at: Option<String>,
    updated_at: String,
    participant_identity: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Room {
    sid: String,
    name: String,
    empty_timeout: u32,
    departure_timeout: u32,
    creation_time: String,
    creation_time_ms: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_participants: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Participant {
    sid: String,
    identity: String,
    state: &'static str,
    joined_at: String,
    joined_at_ms: String,
    name: String,
    version: u32,
    permission: Permission,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnect_reason: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Permission {
    can_subscribe: bool,
    can_publish: bool,
    can_publish_data: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Track {
    sid: String,
    name: &'static str,
    source: &'static str,
    mime_type: &'static str,
    mid: &'static str,
    stream: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Egress {
    egress_id: String,
    room_id: String,
    room_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at: Option<String>,
    updated_at: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Ingress {
    ingress_id: String,
    name: &'static str,
    room_name: String,
    participant_identity: String,
    state: IngressState,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IngressState {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    room_id: String,
    started_at: String,
}

/// The body livekit-server would send for `event` in `room` at `now_ms`;
/// `identity` is the participant of participant and track events.
pub fn livekit_body(event: &str, room: &str, identity: &str, now_ms: i64) -> Vec<u8> {
    livekit_body_for_agent(event, room, identity, "warden-drill-agent", now_ms)
}

/// [`livekit_body`], with `agent` as the agent name of `agent_job_*` events.
pub fn livekit_body_for_agent(
    event: &str,
    room: &str,
    identity: &str,
    agent: &str,
    now_ms: i64,
) -> Vec<u8> {
    let (secs, nanos) = (now_ms.div_euclid(1000), now_ms.saturating_mul(1_000_000));
    let room_sid = stable_guid("RM_", room);
    let mut body = Body {
        event: event.to_owned(),
        room: None,
        participant: None,
        egress_info: None,
        ingress_info: None,
        track: None,
        job: None,
        id: guid("EV_"),
        created_at: secs.to_string(),
    };
    let the_room = |n: Option<u32>| Room {
        sid: room_sid.clone(),
        name: room.to_owned(),
        empty_timeout: 300,
        departure_timeout: 20,
        creation_time: (secs - 60).to_string(),
        creation_time_ms: (now_ms - 60_000).to_string(),
        num_participants: n,
    };
    match event {
        "egress_started" | "egress_updated" | "egress_ended" => {
            body.egress_info = Some(egress(event, room, &room_sid, nanos))
        }
        "ingress_started" | "ingress_ended" => {
            body.ingress_info = Some(ingress(event, room, &room_sid, identity, nanos));
        }
        "participant_joined" | "participant_left" | "participant_connection_aborted" => {
            body.room = Some(the_room(Some(1)));
            body.participant = Some(participant(event, room, identity, secs, now_ms));
        }
        "track_published" | "track_unpublished" => {
            body.room = Some(the_room(Some(1)));
            body.participant = Some(participant(event, room, identity, secs, now_ms));
            body.track = Some(Track {
                sid: stable_guid("TR_", &format!("{room}\u{0}{identity}\u{0}microphone")),
                name: "microphone",
                source: "MICROPHONE",
                mime_type: "audio/red",
                mid: "1",
                stream: "microphone",
            });
        }
        // The room is the job's own; the event's top-level `room` stays unset.
        "agent_job_started" | "agent_job_ended" => {
            let seed = format!("{room}\u{0}{agent}");
            let ended = event == "agent_job_ended";
            body.job = Some(Job {
                id: stable_guid("AJ_", &seed),
                dispatch_id: stable_guid("AD_", &seed),
                room: the_room(None),
                agent_name: agent.to_owned(),
                state: JobState {
                    status: if ended { "JS_SUCCESS" } else { "JS_RUNNING" },
                    started_at: (nanos - 5_000_000_000).to_string(),
                    ended_at: ended.then(|| nanos.to_string()),
                    updated_at: nanos.to_string(),
                    participant_identity: format!("agent-{}", stable_guid("AJ_", &seed)),
                },
            });
        }
        _ => body.room = Some(the_room(None)),
    }
    serde_json::to_vec(&body).expect("plain structs always serialise")
}

fn participant(event: &str, room: &str, identity: &str, secs: i64, now_ms: i64) -> Participant {
    let gone = event != "participant_joined" && !event.starts_with("track_");
    Participant {
        sid: stable_guid("PA_", &format!("{room}\u{0}{identity}")),
        identity: identity.to_owned(),
        state: if gone { "DISCONNECTED" } else { "ACTIVE" },
        joined_at: (secs - 30).to_string(),
        joined_at_ms: (now_ms - 30_000).to_string(),
        // A display name, not the identity (which the stream hashes).
        name: identity.split('@').next().unwrap_or(identity).to_owned(),
        version: 2,
        permission: Permission {
            can_subscribe: true,
            can_publish: true,
            can_publish_data: true,
        },
        disconnect_reason: gone.then_some("CLIENT_INITIATED"),
    }
}

fn egress(event: &str, room: &str, room_sid: &str, nanos: i64) -> Egress {
    let started = nanos - 5_000_000_000;
    let (status, started_at, ended_at) = match event {
        "egress_started" => (None, None, None),
        "egress_updated" => (Some("EGRESS_ACTIVE"), Some(started), None),
        _ => (Some("EGRESS_COMPLETE"), Some(started), Some(nanos)),
    };
    Egress {
        egress_id: guid("EG_"),
        room_id: room_sid.to_owned(),
        room_name: room.to_owned(),
        status,
        started_at: started_at.map(|t| t.to_string()),
        ended_at: ended_at.map(|t| t.to_string()),
        updated_at: nanos.to_string(),
    }
}

fn ingress(event: &str, room: &str, room_sid: &str, identity: &str, nanos: i64) -> Ingress {
    Ingress {
        ingress_id: guid("IN_"),
        name: "warden drill",
        room_name: room.to_owned(),
        participant_identity: identity.to_owned(),
        state: IngressState {
            status: (event == "ingress_started").then_some("ENDPOINT_PUBLISHING"),
            room_id: room_sid.to_owned(),
            started_at: (nanos - 5_000_000_000).to_string(),
        },
    }
}
