//! `alerts`: where security alerts are sent, signed, filtered and deduplicated.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::field;
use crate::redact::Secret;
use crate::security::Severity;

const SECTION: &str = "alerts";

/// `alerts` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAlerts {
    pub webhook_url: Option<String>,
    pub signing_secret: Option<String>,
    pub min_severity: String,
    pub allowed_private_targets: Vec<String>,
    pub dedupe_window_seconds: i64,
    pub queue_size: i64,
}

/// `alerts` section.
#[derive(Clone)]
pub struct Alerts {
    /// Alert receiver.
    pub webhook_url: Option<String>,
    /// Standard Webhooks signing secret (`whsec_…`).
    pub signing_secret: Option<Secret>,
    /// Lowest severity sent.
    pub min_severity: Severity,
    /// Private targets allowed anyway.
    pub allowed_private_targets: Vec<IpNet>,
    /// One alert per type and source per window.
    pub dedupe_window: Duration,
    /// Pending alerts kept.
    pub queue_size: usize,
}

/// The alert URL's path and query may be a credential (Slack, Discord, Teams
/// webhook URLs are): only its scheme and host are shown.
impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = self.webhook_url.as_deref().map(|u| {
            url::Url::parse(u).map_or_else(
                |_| "[redacted]".to_owned(),
                |p| format!("{}://{}/[redacted]", p.scheme(), p.host_str().unwrap_or("")),
            )
        });
        f.debug_struct("Alerts")
            .field("webhook_url", &url)
            .field("signing_secret", &self.signing_secret)
            .field("min_severity", &self.min_severity)
            .field("allowed_private_targets", &self.allowed_private_targets)
            .field("dedupe_window", &self.dedupe_window)
            .field("queue_size", &self.queue_size)
            .finish()
    }
}

impl TryFrom<RawAlerts> for Alerts {
    type Error = ConfigError;

    fn try_from(r: RawAlerts) -> Result<Self, ConfigError> {
        let severity = field!(r.min_severity);
        Ok(Self {
            webhook_url: field!(r.webhook_url).url()?,
            signing_secret: field!(r.signing_secret).secret(),
            min_severity: severity
                .value
                .parse()
                .map_err(|_| severity.invalid("must be low, medium, high or critical"))?,
            allowed_private_targets: field!(r.allowed_private_targets).nets()?,
            dedupe_window: field!(r.dedupe_window_seconds).secs(1, 86_400)?,
            queue_size: field!(r.queue_size).count()?,
        })
    }
}
