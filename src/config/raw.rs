//! The configuration as written: every section and key, as YAML gives them.
//!
//! Deserialised from the defaults merged with the file and the environment,
//! so every key is present; `deny_unknown_fields` makes a misspelt key an
//! error that names its path. Numbers are read as `i64` so that a negative
//! value gets a range message rather than a type error.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub server: RawServer,
    pub wss_enforcement: RawWss,
    pub key_rotation: RawKeyRotation,
    pub access_validation: RawAccess,
    pub suspicious_activity: RawSuspicious,
    pub webhooks: RawWebhooks,
    pub realtime: RawRealtime,
    pub logging: RawLogging,
    pub alerts: RawAlerts,
    pub storage: RawStorage,
    pub livekit: RawLivekit,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: String,
    pub tls: Option<RawTls>,
    pub redirect_listen: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub public_url: Option<String>,
    pub header_timeout_seconds: i64,
    pub request_timeout_seconds: i64,
    pub max_header_bytes: i64,
    pub shutdown_grace_seconds: i64,
    pub idle_timeout_seconds: i64,
    pub max_tcp_connections_per_ip: i64,
    pub max_tcp_connections: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWss {
    pub enabled: bool,
    pub allowed_protocols: Vec<String>,
    pub redirect_http_to_https: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKeyRotation {
    pub enabled: bool,
    pub rotation_interval_hours: i64,
    pub overlap_period_minutes: i64,
    pub auto_rotation: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccess {
    pub strict_mode: bool,
    pub validate_all_grants: bool,
    pub log_access_attempts: bool,
    pub max_token_bytes: i64,
}

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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhooks {
    pub allowed_ips: Vec<String>,
    pub rate_limit_per_minute: i64,
    pub max_body_bytes: i64,
    pub replay_window_seconds: i64,
    pub leeway_seconds: i64,
    pub max_json_depth: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRealtime {
    pub max_connections: i64,
    pub max_connections_per_ip: i64,
    pub heartbeat_seconds: i64,
    pub max_connection_age_hours: i64,
    pub batch_interval_ms: i64,
    pub max_batch_size: i64,
    pub history_size: i64,
    pub history_retention_hours: i64,
    pub hash_identities: bool,
    pub client_queue_size: i64,
    pub write_timeout_seconds: i64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogging {
    pub mask_sensitive_data: bool,
    pub log_level: String,
    pub format: String,
    pub audit_log_retention_days: i64,
    pub security_log_file: String,
    pub security_log_max_bytes: i64,
    pub security_log_retention_days: i64,
}

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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub backend: String,
    pub path: String,
    pub redis_url: Option<String>,
    pub redis_ca_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLivekit {
    pub keys_file: String,
    pub api_url: Option<String>,
    pub reconcile_interval_seconds: i64,
}
