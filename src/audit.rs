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

mod alert_error;
mod alerts;
pub mod chain;
pub mod coalesce;
mod handle;
mod logfile;
mod query;
mod signing;
mod sqlite;
mod subject;
mod target;
pub mod timeline;
mod worker;
mod writer;

#[cfg(test)]
pub(crate) mod tests;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use alerts::{AlertError, AlertStatus, Alerter, RetryPolicy, SigningKey};
pub use handle::Audit;
pub use query::{Counts, MAX_LIMIT, Page};
pub use sqlite::{VerifyReport, verify_chain, verify_head};
pub use subject::{AuditErasure, AuditExport, scrub_database};
pub use target::{check_addr, non_public_reason, validate_alert_url};
pub use timeline::{MinuteCounter, Timeline};
pub use worker::{AuditHealth, AuditWorker, alert_signing_secret, run_maintenance};

pub use crate::security::{EventType, Severity};
use crate::store::StoreError;

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

impl StoredEvent {
    /// `event` recorded at `at` (Unix ms), with a fresh id; the store links
    /// it into the chain (`prev_hash`, `hash`).
    pub(crate) fn unchained(event: NewEvent, at: i64) -> Self {
        use rand::RngCore as _;
        Self {
            id: format!("evt_{:013x}{:016x}", at.max(0), rand::rng().next_u64()),
            event,
            timestamp: crate::clock::rfc3339_ms(at),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
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
