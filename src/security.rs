//! The vocabulary of security events: what happened ([`EventType`], SPEC
//! "Security events") and how bad it is ([`Severity`]). A leaf: the audit
//! records them, the config names a threshold, the metrics count them.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
