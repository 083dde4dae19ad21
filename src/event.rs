//! Warden's internal form of a LiveKit event: verified, sanitised, minimised.
//!
//! `webhook` produces it, `hub` fans it out and keeps the room snapshot from
//! it. Its `Serialize` form is exactly the `data` object of an SSE event (see
//! SPEC "SSE stream"): only what a dashboard needs — no metadata, attributes,
//! IPs, user agents, stream keys or TURN passwords can get here, because
//! there is no field to hold them. Every string in it has been sanitised.

use serde::{Deserialize, Deserializer, Serialize};

/// The LiveKit event names Warden broadcasts.
pub const BROADCAST_EVENTS: &[&str] = &[
    "room_started",
    "room_finished",
    "participant_joined",
    "participant_left",
    "participant_connection_aborted",
    "track_published",
    "track_unpublished",
    "egress_started",
    "egress_updated",
    "egress_ended",
    "ingress_started",
    "ingress_ended",
    "agent_job_started",
    "agent_job_ended",
];

/// One of a fixed vocabulary of names (a state, a kind, a status). An alias
/// and not a bare `&'static str` in the structs below because serde's derive
/// borrows fields spelled `&str` from the input, which a `'static` lifetime
/// would demand of every input; stored names are read back by [`names`].
pub type Name = &'static str;

/// One verified LiveKit event, ready to broadcast.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// LiveKit's event id (`EV_…`), or one Warden made for an event without one.
    pub id: String,
    /// Event name, one of [`BROADCAST_EVENTS`].
    pub event: String,
    /// LiveKit's `createdAt`, Unix ms (0 when absent).
    #[serde(skip)]
    pub created_at_ms: i64,
    /// The room name exactly as LiveKit sent it (never serialised): per-room
    /// authorisation compares it with the token's `video.room`, which is raw too.
    #[serde(skip)]
    pub room_key: Option<String>,
    /// LiveKit's ordering of the participant's sessions and updates (never
    /// serialised): the room state applies it, the stream does not.
    #[serde(skip)]
    pub order: Option<Order>,
    /// The payload that goes out as `data`.
    pub data: EventData,
}

/// The `data` object of an SSE event.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EventData {
    /// The room (present on room, participant and track events; on egress/ingress when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomInfo>,
    /// The participant (participant and track events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant: Option<ParticipantInfo>,
    /// The track (track events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track: Option<TrackInfo>,
    /// The egress (egress events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressInfo>,
    /// The ingress (ingress events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressInfo>,
    /// The agent job (`agent_job_started` / `agent_job_ended`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobInfo>,
    /// On `reconciled` events: what reconciliation with the LiveKit API
    /// changed (`room_added`, `room_removed`, `participant_added`,
    /// `participant_removed`, `agent_added`, `agent_removed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<&'static str>,
}

/// A room, minimised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// `RM_…`
    pub sid: String,
    /// Room name, sanitised for display.
    pub name: String,
    /// Participants LiveKit reported, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_participants: Option<u32>,
    /// Room creation, Unix seconds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<i64>,
}

/// A participant, minimised: the identity is hashed (unless configured otherwise).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// `PA_…`
    pub sid: String,
    /// 8 hex chars of HMAC-SHA256(pepper, identity), or the sanitised identity.
    pub identity: String,
    /// Display name, sanitised.
    pub name: String,
    /// `joining|joined|active|disconnected`
    #[serde(deserialize_with = "names::participant_state")]
    pub state: Name,
    /// `standard|ingress|egress|sip|agent|connector|bridge|unknown`
    #[serde(
        default = "names::standard",
        deserialize_with = "names::participant_kind"
    )]
    pub kind: Name,
    /// Join time, Unix seconds, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<i64>,
    /// Published tracks, when LiveKit listed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackInfo>,
}

impl Default for ParticipantInfo {
    fn default() -> Self {
        Self {
            sid: String::new(),
            identity: String::new(),
            name: String::new(),
            state: "joining",
            kind: "standard",
            joined_at: None,
            tracks: Vec::new(),
        }
    }
}

/// A track, minimised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// `TR_…`
    pub sid: String,
    /// `audio|video|data`
    #[serde(deserialize_with = "names::track_kind")]
    pub kind: Name,
    /// `camera|microphone|screen_share|screen_share_audio|unknown`
    #[serde(deserialize_with = "names::track_source")]
    pub source: Name,
    /// Muted at the time of the event.
    pub muted: bool,
}

/// Where a participant's event stands in LiveKit's own order: a later
/// session has a later `joined_at_ms`, a later update of one session a
/// higher `version`. Events may arrive in any order; the room state keeps
/// the newest (SPEC "SSE stream": events are delivered as they arrive).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Order {
    /// Session start, Unix ms (0 when LiveKit sent none).
    pub joined_at_ms: i64,
    /// `ParticipantInfo.version` (0 when absent).
    pub version: u32,
}

/// An agent job (LiveKit's agent dispatch), minimised: no metadata,
/// attributes, worker or agent ids.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobInfo {
    /// `AJ_…`
    pub id: String,
    /// The agent's registered name, sanitised.
    pub agent_name: String,
    /// `room|publisher|participant`
    #[serde(rename = "type", deserialize_with = "names::job_type")]
    pub kind: Name,
    /// `pending|running|success|failed`
    #[serde(deserialize_with = "names::job_status")]
    pub status: Name,
    /// Why it failed: plain text, sanitised, bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The agent's own participant identity, hashed like every identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_identity: Option<String>,
    /// Start, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// End, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
}

/// An egress, minimised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressInfo {
    /// `EG_…`
    pub id: String,
    /// `starting|active|ending|complete|failed|aborted|limit_reached|unknown`
    #[serde(deserialize_with = "names::egress_status")]
    pub status: Name,
}

/// An ingress, minimised.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressInfo {
    /// `IN_…`
    pub id: String,
    /// `endpoint_inactive|buffering|publishing|error|complete|unknown`
    #[serde(deserialize_with = "names::ingress_state")]
    pub state: Name,
}

impl Event {
    /// The room name this event belongs to, for per-room authorisation.
    pub fn room_name(&self) -> Option<&str> {
        self.room_key.as_deref()
    }
}

/// Reading stored state back (the room state persisted by the hub's journal):
/// the enumerated names are `&'static str` on the wire, so a stored name is
/// mapped back onto the one known spelling, and anything else reads as
/// `unknown` (stored data is never trusted to widen the vocabulary).
mod names {
    use super::{Deserialize, Deserializer};

    fn one_of<'de, D: Deserializer<'de>>(
        d: D,
        known: &'static [&'static str],
    ) -> Result<&'static str, D::Error> {
        let s = String::deserialize(d)?;
        Ok(known.iter().copied().find(|k| *k == s).unwrap_or("unknown"))
    }

    pub(super) fn standard() -> &'static str {
        "standard"
    }

    pub(super) fn participant_kind<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<&'static str, D::Error> {
        one_of(
            d,
            &[
                "standard",
                "ingress",
                "egress",
                "sip",
                "agent",
                "connector",
                "bridge",
            ],
        )
    }

    pub(super) fn job_type<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        one_of(d, &["room", "publisher", "participant"])
    }

    pub(super) fn job_status<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        one_of(d, &["pending", "running", "success", "failed"])
    }

    pub(super) fn participant_state<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<&'static str, D::Error> {
        one_of(d, &["joining", "joined", "active", "disconnected"])
    }

    pub(super) fn track_kind<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        one_of(d, &["audio", "video", "data"])
    }

    pub(super) fn track_source<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        one_of(
            d,
            &[
                "camera",
                "microphone",
                "screen_share",
                "screen_share_audio",
                "unknown",
            ],
        )
    }

    pub(super) fn egress_status<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        one_of(
            d,
            &[
                "starting",
                "active",
                "ending",
                "complete",
                "failed",
                "aborted",
                "limit_reached",
            ],
        )
    }

    pub(super) fn ingress_state<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
        one_of(
            d,
            &[
                "endpoint_inactive",
                "buffering",
                "publishing",
                "error",
                "complete",
            ],
        )
    }
}
