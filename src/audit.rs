//! Security events: the one way to record one, the tamper-evident store, the
//! JSON security log and outgoing alerts.
//!
//! [`Audit::record`] is what every component calls: it masks the event's
//! strings (defence in depth — callers pass no secrets), stamps it and hands
//! it to the writer thread through a bounded queue, so request handling never
//! waits on disk. When the queue is full the event is dropped and counted
//! (`warden_audit_dropped_total`), logged once per burst. The writer appends
//! it to the SQLite hash chain ([`sqlite`]), writes it as a JSON line to
//! `logging.security_log_file` ([`logfile`]) and, at or above
//! `alerts.min_severity`, queues an alert ([`alerts`]). Repeated identical
//! denials from one client are counted, not appended one by one
//! ([`coalesce`]).
//!
//! Invariants: an event's untrusted strings are JSON values, never spliced
//! into a message; `hash` = SHA-256 of the canonical JSON of every other field
//! ([`chain`]); entries are only ever appended, and only a prefix is purged,
//! behind an anchor. [`Audit::record_durable`] returns only once the event is
//! in the store, and fails (closed) when it cannot be — sensitive admin
//! operations (rotation, unblock, pausing ingestion) use it.

mod alerts;
pub mod chain;
pub mod coalesce;
mod core;
mod logfile;
mod signing;
mod sqlite;
mod status;
mod subject;
mod target;
pub mod timeline;
mod worker;
mod writer;

#[cfg(test)]
pub(crate) mod tests;

use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use alerts::{AlertError, AlertStatus, Alerter, RetryPolicy, SigningKey};
pub use sqlite::{VerifyReport, verify_chain, verify_head};
pub use status::{Counts, MAX_LIMIT, Page};
pub use subject::{AuditErasure, AuditExport, scrub_database};
pub use target::{check_addr, non_public_reason, validate_alert_url};
pub use timeline::{MinuteCounter, Timeline};
pub use worker::{AuditHealth, AuditWorker, alert_signing_secret, run_maintenance};
pub use writer::Audit;

use crate::store::StoreError;

/// How bad a security event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Informational.
    Low,
    /// Worth a look.
    Medium,
    /// Needs attention.
    High,
    /// Act now.
    Critical,
}

impl Severity {
    /// The one spelling used everywhere (API, store, log lines, alerts).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            "critical" => Ok(Self::Critical),
            _ => Err(()),
        }
    }
}

/// The security event types of SPEC "Security events".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    /// First burst of failed authentications from a client.
    SuspiciousLogin,
    /// A client locked out, or failures against one key from many clients.
    MultipleFailedAuth,
    /// Usage far above threshold or baseline.
    UnusualApiUsage,
    /// A key rotation step.
    KeyRotation,
    /// An authorisation denial (403).
    UnauthorizedAccess,
    /// A rate limit hit.
    RateLimitExceeded,
    /// A webhook with a missing or bad signature.
    WebhookInvalidSignature,
    /// A webhook event id seen before with a different body.
    WebhookReplay,
    /// A request refused because its client is blocked.
    IpBlocked,
    /// Ingestion paused or resumed.
    IngestionPaused,
    /// One person's records erased (carries no identity; lists the audit entries erased).
    SubjectErased,
}

impl EventType {
    /// Every type, in SPEC order.
    pub const ALL: [EventType; 11] = [
        Self::SuspiciousLogin,
        Self::MultipleFailedAuth,
        Self::UnusualApiUsage,
        Self::KeyRotation,
        Self::UnauthorizedAccess,
        Self::RateLimitExceeded,
        Self::WebhookInvalidSignature,
        Self::WebhookReplay,
        Self::IpBlocked,
        Self::IngestionPaused,
        Self::SubjectErased,
    ];

    /// The SPEC name, e.g. `WEBHOOK_REPLAY`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuspiciousLogin => "SUSPICIOUS_LOGIN",
            Self::MultipleFailedAuth => "MULTIPLE_FAILED_AUTH",
            Self::UnusualApiUsage => "UNUSUAL_API_USAGE",
            Self::KeyRotation => "KEY_ROTATION",
            Self::UnauthorizedAccess => "UNAUTHORIZED_ACCESS",
            Self::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            Self::WebhookInvalidSignature => "WEBHOOK_INVALID_SIGNATURE",
            Self::WebhookReplay => "WEBHOOK_REPLAY",
            Self::IpBlocked => "IP_BLOCKED",
            Self::IngestionPaused => "INGESTION_PAUSED",
            Self::SubjectErased => "SUBJECT_ERASED",
        }
    }
}

impl FromStr for EventType {
    type Err = ();
    /// Parses the SPEC name (case-insensitive), e.g. for `?type=` filters.
    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or(())
    }
}

/// A security event before it is chained and stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Severity.
    pub severity: Severity,
    /// Client address, when there is one.
    pub source_ip: Option<IpAddr>,
    /// Hashed identity, when there is one (never the raw identity).
    pub identity: Option<String>,
    /// API key id involved (never the secret).
    pub key_id: Option<String>,
    /// Structured details; untrusted strings stay values here, never spliced into text.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl NewEvent {
    /// A new event of `kind` with `severity` and nothing else.
    pub fn new(kind: EventType, severity: Severity) -> Self {
        Self {
            kind,
            severity,
            source_ip: None,
            identity: None,
            key_id: None,
            details: serde_json::Map::new(),
        }
    }

    /// Sets the client address.
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// Sets the key id.
    pub fn key(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// Sets the hashed identity.
    pub fn identity(mut self, hashed: impl Into<String>) -> Self {
        self.identity = Some(hashed.into());
        self
    }

    /// Adds a detail.
    pub fn detail(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(name.to_owned(), value.into());
        self
    }
}

/// A recorded event, in the SPEC shape (what the store, the log, the API and alerts carry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Unique id (`evt_…`), also the alert's `webhook-id`.
    pub id: String,
    /// What happened (details masked), flattened into the SPEC shape.
    #[serde(flatten)]
    pub event: NewEvent,
    /// When it was recorded (RFC 3339, UTC, milliseconds).
    pub timestamp: String,
    /// The previous entry's hash ([`chain::GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 of this entry's canonical JSON without `hash`.
    #[serde(default)]
    pub hash: String,
}

/// The first broken link of the chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainBreak {
    /// The entry's content does not match its hash (edited), or its indexed columns disagree with it.
    #[error(
        "audit chain broken at entry #{seq} (id {id}): its content does not match its hash (altered)"
    )]
    Altered {
        /// Position in the chain (1 = first event ever recorded).
        seq: i64,
        /// The entry's id.
        id: String,
    },
    /// The entry does not follow the one before it.
    #[error(
        "audit chain broken at entry #{seq} (id {id}): its prev_hash is not the hash of the entry before it \
         (an entry was inserted, deleted or reordered just before it)"
    )]
    Unlinked {
        /// Position in the chain.
        seq: i64,
        /// The entry's id.
        id: String,
    },
    /// The entry's personal fields are gone but no `SUBJECT_ERASED` entry names it.
    #[error(
        "audit chain broken at entry #{seq} (id {id}): its personal fields were removed without a recorded erasure"
    )]
    ErasedUnrecorded {
        /// Position in the chain.
        seq: i64,
        /// The entry's id.
        id: String,
    },
    /// The store could not be read.
    #[error("audit store unreadable: {0}")]
    Store(#[source] StoreError),
}

/// Audit errors.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The event could not be written: the operation that needed it must not go ahead.
    #[error(
        "the audit store cannot record this operation, so it is refused until the audit log is writable: {0}"
    )]
    NotRecorded(#[source] StoreError),
    /// The audit writer has stopped (shutdown).
    #[error("the audit writer has stopped; operation refused")]
    WriterStopped,
    /// Reading or maintaining the store failed.
    #[error("audit store: {0}")]
    Store(#[source] StoreError),
    /// The writer thread could not be started.
    #[error("cannot start the audit writer: {0}")]
    Thread(#[source] std::io::Error),
    /// The alert settings are invalid.
    #[error(transparent)]
    Alert(#[from] AlertError),
}
