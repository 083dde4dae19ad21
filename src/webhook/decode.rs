//! LiveKit's `WebhookEvent`, decoded as leniently as protobuf JSON allows.
//!
//! The shapes follow livekit/protocol's `livekit_webhook.proto`,
//! `livekit_models.proto`, `livekit_egress.proto` and `livekit_ingress.proto`,
//! but only the fields Warden keeps (or must check) are declared; everything
//! else — metadata, attributes, `turnPassword`, stream keys, URLs, IPs — is
//! skipped by the parser and never held in memory. What protobuf JSON allows,
//! this accepts: camelCase or the proto (snake_case) names, int64 as strings
//! or numbers, any field absent (the zero value), `null` for absent, enums as
//! names or numbers, and enum values this build does not know (kept as
//! [`Enum::Unknown`], never an error). What it refuses is JSON of the wrong
//! *shape*: a `room` that is not an object, an `event` that is not a string.
//!
//! Before serde sees a byte, [`check_depth`] bounds the nesting with a flat
//! scan, so a 10 000-deep body costs one pass and no recursion.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The parts of LiveKit's `WebhookEvent` Warden reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEvent {
    /// Event name; absent means the body is not an event.
    pub event: Option<String>,
    /// The room.
    pub room: Option<WireRoom>,
    /// The participant.
    pub participant: Option<WireParticipant>,
    /// The track.
    pub track: Option<WireTrack>,
    /// Egress events.
    #[serde(alias = "egress_info")]
    pub egress_info: Option<WireEgress>,
    /// Ingress events.
    #[serde(alias = "ingress_info")]
    pub ingress_info: Option<WireIngress>,
    /// Agent job events (`agent_job_*`; field 12).
    pub job: Option<WireJob>,
    /// Event id (`EV_…`).
    pub id: Option<String>,
    /// Unix seconds.
    #[serde(alias = "created_at", default, deserialize_with = "int64")]
    pub created_at: Option<i64>,
}

/// `livekit.Room`, minimised.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireRoom {
    /// `RM_…`
    pub sid: Option<String>,
    /// Room name.
    pub name: Option<String>,
    /// Unix seconds.
    #[serde(alias = "creation_time", default, deserialize_with = "int64")]
    pub creation_time: Option<i64>,
    /// Participants in the room.
    #[serde(alias = "num_participants", default, deserialize_with = "int64")]
    pub num_participants: Option<i64>,
}

/// `livekit.ParticipantInfo`, minimised.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireParticipant {
    /// `PA_…`
    pub sid: Option<String>,
    /// Identity (hashed before it goes anywhere).
    pub identity: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// `ParticipantInfo.State`.
    #[serde(default)]
    pub state: Enum,
    /// Unix seconds.
    #[serde(alias = "joined_at", default, deserialize_with = "int64")]
    pub joined_at: Option<i64>,
    /// Unix milliseconds (newer servers): orders sessions of one participant.
    #[serde(alias = "joined_at_ms", default, deserialize_with = "int64")]
    pub joined_at_ms: Option<i64>,
    /// Bumped by LiveKit on every change of the participant: orders updates.
    #[serde(default, deserialize_with = "int64")]
    pub version: Option<i64>,
    /// `ParticipantInfo.Kind` (absent = STANDARD).
    #[serde(default)]
    pub kind: Enum,
    /// Published tracks.
    pub tracks: Option<Vec<WireTrack>>,
}

/// `livekit.Job` (livekit_agent.proto), minimised: its `metadata`,
/// `attributes` (both `SENSITIVITY_PII`), dispatch id, namespace and
/// deployment are not declared, so never read.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireJob {
    /// `AJ_…`
    pub id: Option<String>,
    /// `JobType` (absent = JT_ROOM).
    #[serde(rename = "type", default)]
    pub kind: Enum,
    /// The room the job runs in (the event's own `room` is unset).
    pub room: Option<WireRoom>,
    /// The participant the job is for (publisher and participant jobs).
    pub participant: Option<WireParticipant>,
    /// The agent's registered name.
    #[serde(alias = "agent_name")]
    pub agent_name: Option<String>,
    /// Its state (absent = pending, nothing started).
    pub state: Option<WireJobState>,
}

/// `livekit.JobState`, minimised: the worker and agent ids are not declared.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireJobState {
    /// `JobStatus` (absent = JS_PENDING).
    #[serde(default)]
    pub status: Enum,
    /// Why a job failed (free text from the agent: sanitised, bounded).
    pub error: Option<String>,
    /// When the job started (LiveKit writes Unix nanoseconds; any unit is accepted).
    #[serde(alias = "started_at", default, deserialize_with = "int64")]
    pub started_at: Option<i64>,
    /// When it ended.
    #[serde(alias = "ended_at", default, deserialize_with = "int64")]
    pub ended_at: Option<i64>,
    /// The agent's own participant identity (hashed like any identity).
    #[serde(alias = "participant_identity")]
    pub participant_identity: Option<String>,
}

/// `livekit.TrackInfo`, minimised.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireTrack {
    /// `TR_…`
    pub sid: Option<String>,
    /// `TrackType` (absent = AUDIO, the zero value).
    #[serde(rename = "type", default)]
    pub kind: Enum,
    /// `TrackSource`.
    #[serde(default)]
    pub source: Enum,
    /// Muted.
    pub muted: Option<bool>,
}

/// `livekit.EgressInfo`, minimised.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireEgress {
    /// `EG_…`
    #[serde(alias = "egress_id")]
    pub egress_id: Option<String>,
    /// `RM_…`
    #[serde(alias = "room_id")]
    pub room_id: Option<String>,
    /// Room name.
    #[serde(alias = "room_name")]
    pub room_name: Option<String>,
    /// `EgressStatus` (absent = EGRESS_STARTING).
    #[serde(default)]
    pub status: Enum,
    /// Unix nanoseconds (checked for shape, not kept).
    #[serde(alias = "started_at", default, deserialize_with = "int64")]
    pub started_at: Option<i64>,
    /// Unix nanoseconds.
    #[serde(alias = "ended_at", default, deserialize_with = "int64")]
    pub ended_at: Option<i64>,
}

/// `livekit.IngressInfo`, minimised (no stream key, URL or identity is declared, so none is read).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireIngress {
    /// `IN_…`
    #[serde(alias = "ingress_id")]
    pub ingress_id: Option<String>,
    /// Room name.
    #[serde(alias = "room_name")]
    pub room_name: Option<String>,
    /// `IngressState`.
    pub state: Option<WireIngressState>,
}

/// `livekit.IngressState`, minimised.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireIngressState {
    /// `IngressState.Status` (absent = ENDPOINT_INACTIVE).
    #[serde(default)]
    pub status: Enum,
    /// `RM_…` of the room published to.
    #[serde(alias = "room_id")]
    pub room_id: Option<String>,
}

/// A protobuf enum as it may appear in JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Enum {
    /// Absent or `null`: the zero value.
    #[default]
    Zero,
    /// A name, e.g. `"ACTIVE"`.
    Name(String),
    /// A number, e.g. `2`.
    Number(i64),
}

impl Enum {
    /// Maps to one of `names` (indexed by number, matched by name); unknown values give `"unknown"`.
    pub fn pick(&self, names: &[(&str, &'static str)]) -> &'static str {
        match self {
            Enum::Zero => names.first().map_or("unknown", |(_, v)| v),
            Enum::Number(n) => usize::try_from(*n)
                .ok()
                .and_then(|i| names.get(i))
                .map_or("unknown", |(_, v)| v),
            Enum::Name(s) => names
                .iter()
                .find(|(wire, _)| wire == s)
                .map_or("unknown", |(_, v)| v),
        }
    }
}

impl<'de> Deserialize<'de> for Enum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Enum;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an enum name or number")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Enum, E> {
                // Names are short; an enormous one is not LiveKit's and need not be kept.
                Ok(Enum::Name(s.chars().take(64).collect()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Enum, E> {
                Ok(Enum::Number(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Enum, E> {
                Ok(Enum::Number(i64::try_from(n).unwrap_or(i64::MAX)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Enum, E> {
                Ok(Enum::Zero)
            }
        }
        d.deserialize_any(V)
    }
}

/// protobuf JSON int64/uint32: a number or a decimal string; `null` is absent.
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer or a decimal string")
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            Ok(Some(n))
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            Ok(Some(i64::try_from(n).unwrap_or(i64::MAX)))
        }
        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
            // protobuf JSON allows `1.7e9` for an integer if it is integral.
            if n.is_finite() && n.fract() == 0.0 {
                #[allow(clippy::cast_possible_truncation)] // saturating cast intended
                Ok(Some(n as i64))
            } else {
                Err(E::invalid_value(
                    de::Unexpected::Other("a fractional number"),
                    &self,
                ))
            }
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            let digits = s.strip_prefix('-').unwrap_or(s);
            if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(E::invalid_value(
                    de::Unexpected::Other("a non-numeric string"),
                    &self,
                ));
            }
            Ok(Some(s.parse::<i64>().unwrap_or(if s.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            })))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// How a body failed to decode (never carries body content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeFailure {
    /// Not JSON at all (syntax error, truncated).
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// JSON, but not a LiveKit event (wrong shape at `path`).
    Shape {
        /// Dotted path of the offending field (`.` for the top level).
        path: String,
    },
}

/// Decodes `json` (already UTF-8 and depth-checked) into a [`WireEvent`].
///
/// Valid bodies take one plain serde pass. Only when it fails is the body
/// decoded again with the field path tracked, for the error: deserialising is
/// deterministic, so the second pass fails the same way, and tracking the path
/// of every field of every valid body would cost it a quarter more.
pub fn decode(json: &str) -> Result<WireEvent, DecodeFailure> {
    let mut de = serde_json::Deserializer::from_str(json);
    if let Ok(event) = WireEvent::deserialize(&mut de)
        && de.end().is_ok()
    {
        return Ok(event);
    }
    decode_explained(json)
}

/// [`decode`] with the path of the offending field tracked.
fn decode_explained(json: &str) -> Result<WireEvent, DecodeFailure> {
    let syntax = |e: &serde_json::Error| DecodeFailure::Syntax {
        line: e.line(),
        column: e.column(),
    };
    let mut de = serde_json::Deserializer::from_str(json);
    let event = serde_path_to_error::deserialize::<_, WireEvent>(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => DecodeFailure::Shape { path },
            _ => syntax(&inner),
        }
    })?;
    // Trailing bytes after the object (a second document, garbage) are a syntax error.
    de.end().map_err(|e| syntax(&e))?;
    Ok(event)
}

/// Checks that `bytes` never nests arrays/objects deeper than `max` (strings are skipped exactly).
pub fn check_depth(bytes: &[u8], max: usize) -> Result<(), usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(depth);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}
