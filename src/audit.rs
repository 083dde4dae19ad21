//! Security events: the one way to record one.
//!
//! (Foundation stub: the types every component emits through. The hash-chained
//! store, the JSON security log and alerts land with the audit issue.)

use std::net::IpAddr;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// How bad a security event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
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
}

/// A security event before it is chained and stored.
#[derive(Clone, Debug, Serialize)]
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

/// The audit handle: cheap to clone, never blocks the caller.
#[derive(Clone, Default)]
pub struct Audit {
    recent: Arc<Mutex<Vec<NewEvent>>>,
}

impl Audit {
    /// An audit sink that keeps events in memory.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Records a security event.
    pub fn record(&self, event: NewEvent) {
        tracing::warn!(security_event = ?event.kind, severity = ?event.severity, "security event");
        if let Ok(mut r) = self.recent.lock() {
            r.push(event);
        }
    }

    /// Events recorded so far (newest last).
    pub fn recent(&self) -> Vec<NewEvent> {
        self.recent.lock().map(|r| r.clone()).unwrap_or_default()
    }
}
