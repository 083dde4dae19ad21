//! LiveKit webhooks: verify the raw bytes, decode, normalise.
//!
//! [`Receiver::receive`] is the part of [`crate::ingest`] that reads the
//! delivery, in an order that keeps unauthenticated input cheap and inert:
//!
//! 1. size: more than `webhooks.max_body_bytes` → [`WebhookError::BodyTooLarge`]
//!    (ingest caps the read at [`Receiver::max_body_bytes`] first; this is
//!    the backstop);
//! 2. signature on the exact bytes ([`verify`]) → [`WebhookError::Signature`], recorded as
//!    `WEBHOOK_INVALID_SIGNATURE` with the source IP and claimed key id, never
//!    the token. Nothing is parsed before this passes;
//! 3. UTF-8, nesting depth (a flat byte scan), JSON → a bad body;
//! 4. lenient typed decoding ([`decode`]) and required parts → a bad body; unknown
//!    event names → [`Outcome::Ignored`];
//! 5. sanitising and minimising ([`normalize`]), with the body digest the
//!    signature check computed, for the dedupe that follows (the event id
//!    through the [`ReplayStore`] or the cluster's publish script, in
//!    [`crate::ingest`]). `createdAt` never refuses anything: LiveKit queues
//!    and retries, so late deliveries are legitimate.
//!
//! Invariant: an [`Outcome::Event`] was signed by a key of the ring, within
//! its validity, over exactly these bytes.

pub mod decode;
pub mod emit;
pub mod lag;
pub mod normalize;
pub mod replay;
pub mod sanitize;
pub mod verify;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::{Audit, EventType, NewEvent, Severity};
use crate::clock::Clock;
use crate::config::Config;
use crate::event::Event;
use crate::keys::KeyRing;
use crate::pepper::Pepper;

pub use replay::{ReplayStore, Seen};
pub use verify::SignatureError;

use normalize::{Identities, Normalized};

/// The webhook settings the receiver needs, taken from the validated config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverSettings {
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
    /// How long event ids are remembered.
    pub replay_window: Duration,
    /// Hash participant identities on the stream.
    pub hash_identities: bool,
}

impl ReceiverSettings {
    /// `webhooks.*` and `realtime.hash_identities`.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            leeway: cfg.webhooks.leeway,
            max_body_bytes: cfg.webhooks.max_body_bytes,
            max_json_depth: cfg.webhooks.max_json_depth,
            replay_window: cfg.webhooks.replay_window,
            hash_identities: cfg.realtime.hash_identities,
        }
    }
}

/// What a verified delivery holds.
// One value per request, moved straight to the hub: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// An event to broadcast once deduplicated, and the digest of its body.
    Event(Event, replay::BodyDigest),
    /// An event Warden does not broadcast (acknowledged so LiveKit does not retry).
    Ignored {
        /// The event name, sanitised.
        event: String,
    },
}

/// Why a delivery was refused. [`WebhookError::code`] and
/// [`WebhookError::public_message`] are what the client sees (the HTTP layer
/// picks the status from the variant); `Display` (one line, no token, no body
/// content) is for logs.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Missing or invalid signature, unknown key, expired.
    #[error("invalid webhook signature: {0}")]
    Signature(#[from] SignatureError),
    /// Body larger than allowed.
    #[error("webhook body of {size} bytes exceeds the {limit}-byte limit")]
    BodyTooLarge {
        /// Bytes received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Body is not UTF-8.
    #[error("webhook body is not UTF-8")]
    NotUtf8,
    /// JSON nested deeper than allowed.
    #[error("webhook body nests deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Not JSON.
    #[error("webhook body is not JSON (line {line}, column {column})")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON that is not a LiveKit event.
    #[error("webhook body is not a LiveKit event: {reason}")]
    Schema {
        /// What is wrong (a field path or a missing part; never body content).
        reason: String,
    },
}

impl WebhookError {
    /// The body is not a LiveKit event (as opposed to a signature or size refusal).
    pub fn is_bad_body(&self) -> bool {
        matches!(
            self,
            Self::NotUtf8 | Self::TooDeep { .. } | Self::Syntax { .. } | Self::Schema { .. }
        )
    }

    /// Stable error code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Signature(_) => "invalid_signature",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::NotUtf8 | Self::TooDeep { .. } | Self::Syntax { .. } => "malformed_body",
            Self::Schema { .. } => "invalid_event",
        }
    }

    /// The one-line message for the client: the same for every signature
    /// failure (the cause is in the audit log), specific for body problems.
    pub fn public_message(&self) -> String {
        match self {
            Self::Signature(_) => "missing or invalid webhook signature".to_owned(),
            other => other.to_string(),
        }
    }
}

struct Inner {
    keys: KeyRing,
    audit: Audit,
    clock: Clock,
    settings: ReceiverSettings,
    identities: Identities,
}

/// The webhook pipeline; cheap to clone.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver verifying with `keys`, hashing identities with `pepper`.
    pub fn new(
        keys: KeyRing,
        pepper: Pepper,
        audit: Audit,
        clock: Clock,
        settings: ReceiverSettings,
    ) -> Self {
        let identities = if settings.hash_identities {
            Identities::Hashed(pepper)
        } else {
            Identities::Plain
        };
        Self {
            inner: Arc::new(Inner {
                keys,
                audit,
                clock,
                settings,
                identities,
            }),
        }
    }

    /// The largest body [`Receiver::receive`] accepts; cap the read at this.
    pub fn max_body_bytes(&self) -> usize {
        self.inner.settings.max_body_bytes
    }

    /// True when `authorization` is a LiveKit signature over `body` that
    /// verifies now. Records nothing: it is asked about deliveries from a
    /// locked-out source, whose failures are refused as the lockout and covered by the
    /// lockout's one `IP_BLOCKED` event, not written to the audit log one by one.
    pub fn signature_verifies<A: AsRef<[u8]>>(&self, authorization: &[A], body: &[u8]) -> bool {
        let leeway_ms = i64::try_from(self.inner.settings.leeway.as_millis()).unwrap_or(i64::MAX);
        let now_ms = self.inner.clock.now_ms();
        verify::verify(authorization, body, &self.inner.keys, now_ms, leeway_ms).is_ok()
    }

    /// How long event ids are remembered.
    pub fn replay_window(&self) -> Duration {
        self.inner.settings.replay_window
    }

    /// Verifies, decodes and normalises one delivery; records a signature
    /// refusal as `WEBHOOK_INVALID_SIGNATURE`. `authorization` holds
    /// every `Authorization` header value of the request (more than one is refused).
    pub fn receive<A: AsRef<[u8]>>(
        &self,
        source_ip: IpAddr,
        authorization: &[A],
        body: &[u8],
    ) -> Result<Outcome, WebhookError> {
        let s = &self.inner.settings;
        if body.len() > s.max_body_bytes {
            return Err(WebhookError::BodyTooLarge {
                size: body.len(),
                limit: s.max_body_bytes,
            });
        }
        let now_ms = self.inner.clock.now_ms();
        let leeway_ms = i64::try_from(s.leeway.as_millis()).unwrap_or(i64::MAX);
        let verified =
            match verify::verify(authorization, body, &self.inner.keys, now_ms, leeway_ms) {
                Ok(v) => v,
                Err(refusal) => {
                    self.record_refusal(source_ip, &refusal);
                    return Err(WebhookError::Signature(refusal.error));
                }
            };
        // The body was hashed once, for the signature's checksum: the replay digest is its prefix.
        let body_digest = replay::truncate(&verified.body_sha256);
        let wire = parse(body, s.max_json_depth)?;
        let fallback_id = || format!("WH_{}", hex::encode(body_digest));
        let event = match normalize::normalize(wire, &self.inner.identities, fallback_id) {
            Normalized::Event(event) => *event,
            Normalized::Ignored(event) => return Ok(Outcome::Ignored { event }),
            Normalized::Invalid(reason) => {
                return Err(WebhookError::Schema {
                    reason: reason.to_owned(),
                });
            }
        };
        Ok(Outcome::Event(event, body_digest))
    }

    fn record_refusal(&self, ip: IpAddr, refusal: &verify::Refusal) {
        let mut ev = NewEvent::new(EventType::WebhookInvalidSignature, Severity::Medium)
            .ip(ip)
            .detail("reason", refusal.error.reason());
        if let Some(key) = &refusal.claimed_key {
            ev = ev.key(key.clone());
        }
        self.inner.audit.record(ev);
    }
}

/// UTF-8, depth, JSON and shape, in that order.
fn parse(body: &[u8], max_depth: usize) -> Result<decode::WireEvent, WebhookError> {
    let text = std::str::from_utf8(body).map_err(|_| WebhookError::NotUtf8)?;
    decode::check_depth(body, max_depth).map_err(|_| WebhookError::TooDeep { max: max_depth })?;
    decode::decode(text).map_err(|f| match f {
        decode::DecodeFailure::Syntax { line, column } => WebhookError::Syntax { line, column },
        decode::DecodeFailure::Shape { path } if path == "." => WebhookError::Schema {
            reason: "the body is not a JSON object of the expected shape".to_owned(),
        },
        decode::DecodeFailure::Shape { path } => WebhookError::Schema {
            reason: format!("field `{}` has the wrong type", sanitize::text(&path, 128)),
        },
    })
}

#[cfg(test)]
mod tests;
