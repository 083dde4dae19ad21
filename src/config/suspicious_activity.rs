//! `suspicious_activity`: lockouts, rate limits, allow- and blocklists.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::{MAX_LIMIT, field};

const SECTION: &str = "suspicious_activity";

/// `suspicious_activity` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSuspicious {
    pub max_failed_attempts: i64,
    pub failure_window_minutes: i64,
    pub lockout_duration_minutes: i64,
    pub rate_limit_per_minute: i64,
    pub unusual_usage_threshold: i64,
    pub allowlist: Vec<String>,
    pub blocklist: Vec<String>,
    pub ipv6_prefix_length: i64,
    pub key_failure_clients: i64,
    pub max_tracked_clients: i64,
}

/// `suspicious_activity` section.
#[derive(Clone, Debug)]
pub struct SuspiciousActivity {
    /// Failures in the window that lock a client out.
    pub max_failed_attempts: u32,
    /// Window in which failures count.
    pub failure_window: Duration,
    /// How long a lockout lasts.
    pub lockout_duration: Duration,
    /// API requests per client per minute.
    pub rate_limit_per_minute: u32,
    /// Requests per hour that are unusual.
    pub unusual_usage_threshold: u64,
    /// Never locked out.
    pub allowlist: Vec<IpNet>,
    /// Always refused.
    pub blocklist: Vec<IpNet>,
    /// IPv6 prefix that counts as one client.
    pub ipv6_prefix_length: u8,
    /// Distinct clients failing against one key that raise MULTIPLE_FAILED_AUTH.
    pub key_failure_clients: u32,
    /// Most clients tracked at once.
    pub max_tracked_clients: usize,
}

impl TryFrom<RawSuspicious> for SuspiciousActivity {
    type Error = ConfigError;

    fn try_from(r: RawSuspicious) -> Result<Self, ConfigError> {
        Ok(Self {
            max_failed_attempts: field!(r.max_failed_attempts).count()?,
            failure_window: field!(r.failure_window_minutes).minutes(1, 525_600)?,
            lockout_duration: field!(r.lockout_duration_minutes).minutes(1, 525_600)?,
            rate_limit_per_minute: field!(r.rate_limit_per_minute).count()?,
            unusual_usage_threshold: field!(r.unusual_usage_threshold).count()?,
            allowlist: field!(r.allowlist).nets()?,
            blocklist: field!(r.blocklist).nets()?,
            ipv6_prefix_length: field!(r.ipv6_prefix_length).range(1, 128)?,
            key_failure_clients: field!(r.key_failure_clients).count()?,
            max_tracked_clients: field!(r.max_tracked_clients).range(100, MAX_LIMIT)?,
        })
    }
}
