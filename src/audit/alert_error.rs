//! Why an alert target is refused or a delivery failed: shared by the
//! target rules (`target.rs`) and the sender (`alerts.rs`), which uses the
//! rules, so neither imports the other's error.

use std::net::IpAddr;
use std::time::Duration;

/// Why an alert URL is refused or a delivery failed. Never holds the URL's path or query (they may carry a token).
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// The URL breaks the transport rule or is malformed.
    #[error("alerts.webhook_url: {0}")]
    Url(String),
    /// The target address is not public and not listed.
    #[error(
        "alert target {addr} is {reason}; list it in alerts.allowed_private_targets to allow it"
    )]
    Forbidden {
        /// The refused address.
        addr: IpAddr,
        /// Its class (private, loopback, …).
        reason: &'static str,
    },
    /// The host did not resolve.
    #[error("alert host {host} could not be resolved: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
    /// The signing secret is not `whsec_<base64>`.
    #[error("alerts.signing_secret must be whsec_ followed by base64 of at least 24 bytes")]
    Secret,
    /// The receiver answered with a non-2xx status.
    #[error("alert receiver answered HTTP {status}")]
    Status {
        /// The status code.
        status: u16,
        /// Its `Retry-After`, when given in seconds.
        retry_after: Option<Duration>,
    },
    /// Connecting or sending failed.
    #[error("alert delivery failed: {0}")]
    Network(String),
}

impl AlertError {
    pub(super) fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Network(_) | Self::Resolve { .. } => true,
            Self::Url(_) | Self::Forbidden { .. } | Self::Secret => false,
        }
    }
}
