//! Why a delivery was refused: kinds, not statuses (those are `http/error.rs`'s).

use crate::guard::Refusal;
use crate::webhook::{SignatureError, WebhookError};

/// What became of reading the body (the caller's future reports it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than [`super::Ingest::max_body_bytes`] (declared or read).
    TooLarge,
    /// The body could not be read.
    Unreadable,
}

/// Why [`super::Ingest::accept`] refused a delivery. [`IngestError::code`]
/// is the stable code the client sees and the metric label; `Display` (one
/// line, no token, no body content) is for logs.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The guard's webhook policy: a source not allowed, the blocklist, the rate limit.
    #[error("{0}")]
    Refused(Refusal),
    /// A locked-out source whose delivery did not carry a verifying
    /// signature. LiveKit retries this refusal (and drops other refusals).
    #[error("{0}")]
    LockedOut(Refusal),
    /// The kill switch is off.
    #[error("webhook ingestion is paused; retry later")]
    Paused,
    /// The body is longer than allowed.
    #[error("the body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The body could not be read.
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// No signature, or one that does not verify (recorded as
    /// `WEBHOOK_INVALID_SIGNATURE` by the receiver).
    #[error("invalid webhook signature: {cause}")]
    Unauthorized {
        /// Why (for the log; the client is told the same whatever the cause).
        cause: SignatureError,
        /// An `Authorization` value was presented at all.
        presented: bool,
        /// The key id the token claimed, unverified (counted for the guard).
        claimed_key: Option<String>,
    },
    /// A verified body that is not an acceptable LiveKit event.
    #[error("{0}")]
    Webhook(WebhookError),
    /// The event could not be stored (LiveKit retries it).
    #[error("the event could not be stored; retry later")]
    Storage,
    /// The cluster's shared stream is unreachable (LiveKit retries it).
    #[error("the event could not be queued; retry later")]
    Cluster,
}

impl IngestError {
    /// The stable code for the error body and the metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Refused(r) | Self::LockedOut(r) => r.kind.code(),
            Self::Paused => "ingestion_paused",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyUnreadable => "body_unreadable",
            Self::Unauthorized { .. } => "unauthorized",
            Self::Webhook(e) => e.code(),
            Self::Storage => "storage_unavailable",
            Self::Cluster => "cluster_unavailable",
        }
    }
}
