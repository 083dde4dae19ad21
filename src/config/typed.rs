//! The validated configuration: parsed addresses, durations and limits.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::raw::RawConfig;
use super::{ConfigError, EnvKeys};
use crate::redact::Secret;
use crate::security::Severity;

/// Largest value of any count, size or rate.
pub const MAX_LIMIT: i64 = 1_000_000_000;

/// LiveKit's webhook signature lifetime, seconds.
pub const LIVEKIT_WEBHOOK_TTL_SECS: i64 = 300;

/// The whole validated configuration. See `config/defaults.yaml` for every key.
#[derive(Clone)]
pub struct Config {
    /// `server`
    pub server: Server,
    /// `wss_enforcement`
    pub wss_enforcement: WssEnforcement,
    /// `key_rotation`
    pub key_rotation: KeyRotation,
    /// `access_validation`
    pub access_validation: AccessValidation,
    /// `suspicious_activity`
    pub suspicious_activity: SuspiciousActivity,
    /// `webhooks`
    pub webhooks: Webhooks,
    /// `realtime`
    pub realtime: Realtime,
    /// `logging`
    pub logging: Logging,
    /// `alerts`
    pub alerts: Alerts,
    /// `storage`
    pub storage: Storage,
    /// `livekit`
    pub livekit: Livekit,
    /// Keys from `LIVEKIT_API_KEY`/`LIVEKIT_API_SECRET` and `LIVEKIT_KEYS`.
    pub env_keys: EnvKeys,
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
    pub(crate) effective: serde_norway::Value,
}

/// Every section, but not the effective YAML (it holds the secrets in clear:
/// `config check` prints it masked).
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("server", &self.server)
            .field("wss_enforcement", &self.wss_enforcement)
            .field("key_rotation", &self.key_rotation)
            .field("access_validation", &self.access_validation)
            .field("suspicious_activity", &self.suspicious_activity)
            .field("webhooks", &self.webhooks)
            .field("realtime", &self.realtime)
            .field("logging", &self.logging)
            .field("alerts", &self.alerts)
            .field("storage", &self.storage)
            .field("livekit", &self.livekit)
            .field("env_keys", &self.env_keys)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// `server` section.
#[derive(Clone, Debug)]
pub struct Server {
    /// Listener address.
    pub listen: SocketAddr,
    /// TLS certificate and key paths.
    pub tls: Option<Tls>,
    /// Plain-HTTP listener that only redirects.
    pub redirect_listen: Option<SocketAddr>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Public base URL.
    pub public_url: Option<String>,
    /// Time to read a request head.
    pub header_timeout: Duration,
    /// Time for a whole non-streaming request.
    pub request_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Idle keep-alive (HTTP/1.1) or stream-less (HTTP/2) connections close after this.
    pub idle_timeout: Duration,
    /// Open TCP connections per client address (trusted proxies exempt).
    pub max_tcp_connections_per_ip: usize,
    /// Open TCP connections in all; `None` = derived from the open-file limit.
    pub max_tcp_connections: Option<usize>,
}

/// TLS files.
#[derive(Clone, Debug)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `wss_enforcement` section.
#[derive(Clone, Debug)]
pub struct WssEnforcement {
    /// Enforce secure transport.
    pub enabled: bool,
    /// Allowed outgoing schemes (lower case).
    pub allowed_protocols: Vec<String>,
    /// Redirect plain HTTP and send HSTS.
    pub redirect_http_to_https: bool,
}

/// `key_rotation` section.
#[derive(Clone, Debug)]
pub struct KeyRotation {
    /// Rotation allowed at all.
    pub enabled: bool,
    /// Age at which a key is due.
    pub rotation_interval: Duration,
    /// How long a retiring key keeps verifying.
    pub overlap_period: Duration,
    /// Rotate automatically.
    pub auto_rotation: bool,
}

/// `access_validation` section.
#[derive(Clone, Debug)]
pub struct AccessValidation {
    /// Refuse weak secrets and insecure loopback URLs.
    pub strict_mode: bool,
    /// Record denials as security events.
    pub log_access_attempts: bool,
    /// Longest accepted token.
    pub max_token_bytes: usize,
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

/// `webhooks` section.
#[derive(Clone, Debug)]
pub struct Webhooks {
    /// Allowed sources; empty = any.
    pub allowed_ips: Vec<IpNet>,
    /// Per source per minute.
    pub rate_limit_per_minute: u32,
    /// Largest body.
    pub max_body_bytes: usize,
    /// How long event ids are remembered.
    pub replay_window: Duration,
    /// Clock skew tolerated on exp/nbf.
    pub leeway: Duration,
    /// Deepest JSON nesting.
    pub max_json_depth: usize,
}

/// `realtime` section.
#[derive(Clone, Debug)]
pub struct Realtime {
    /// SSE connections per node.
    pub max_connections: usize,
    /// SSE connections per client.
    pub max_connections_per_ip: usize,
    /// Heartbeat interval.
    pub heartbeat: Duration,
    /// Longest stream life.
    pub max_connection_age: Duration,
    /// Longest coalescing delay while a write is pending.
    pub batch_interval: Duration,
    /// Most events per write.
    pub max_batch_size: usize,
    /// Events kept for resume.
    pub history_size: usize,
    /// History frames older than this many hours are swept.
    pub history_retention_hours: u32,
    /// Hash participant identities.
    pub hash_identities: bool,
    /// Events queued per client before it is cut off.
    pub client_queue_size: usize,
    /// Longest single write.
    pub write_timeout: Duration,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    /// Human-readable text.
    Text,
    /// JSON lines.
    Json,
}

/// `logging` section.
#[derive(Clone, Debug)]
pub struct Logging {
    /// Mask secrets in log lines.
    pub mask_sensitive_data: bool,
    /// Level filter directive (lower case, e.g. `info`).
    pub log_level: String,
    /// Output format.
    pub format: LogFormat,
    /// Audit retention.
    pub audit_log_retention_days: u32,
    /// JSON-lines security log.
    pub security_log_file: PathBuf,
    /// Rotation size of the security log.
    pub security_log_max_bytes: u64,
    /// Rotated security log files are deleted after this many days.
    pub security_log_retention_days: u32,
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

/// Storage backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file, one node.
    Sqlite,
    /// Redis, several nodes.
    Redis,
}

/// `storage` section.
#[derive(Clone, Debug)]
pub struct Storage {
    /// Backend.
    pub backend: Backend,
    /// SQLite file.
    pub path: PathBuf,
    /// Redis URL (may hold a password).
    pub redis_url: Option<Secret>,
    /// PEM CA certificate(s) that a `rediss://` server's certificate must
    /// chain to, instead of the platform's roots (a private CA).
    pub redis_ca_file: Option<PathBuf>,
}

/// `livekit` section.
#[derive(Clone, Debug)]
pub struct Livekit {
    /// livekit-server key file.
    pub keys_file: PathBuf,
    /// LiveKit API base URL.
    pub api_url: Option<String>,
    /// Reconciliation period.
    pub reconcile_interval: Duration,
}

impl Config {
    /// The built-in defaults with no environment.
    pub fn defaults() -> Self {
        super::from_yaml("", &super::Env::default()).expect("embedded defaults are valid")
    }

    /// The directory holding Warden's own data (the store's directory).
    pub fn data_dir(&self) -> PathBuf {
        match self.storage.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Refuses plain HTTP on a non-loopback address when secure transport is
    /// enforced and no TLS proxy is declared (`trusted_proxies`).
    pub fn check_transport(&self, listen: SocketAddr) -> Result<(), ConfigError> {
        if !self.wss_enforcement.enabled || self.server.tls.is_some() {
            return Ok(());
        }
        if listen.ip().is_loopback() || !self.server.trusted_proxies.is_empty() {
            return Ok(());
        }
        Err(ConfigError::invalid(
            "server.tls",
            format!(
                "wss_enforcement.enabled is true and {listen} is not loopback: configure server.tls, \
                 list the TLS proxy in server.trusted_proxies, or set wss_enforcement.enabled: false"
            ),
        ))
    }
}

fn num(key: &str, v: i64, lo: i64, hi: i64) -> Result<i64, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::invalid(key, format!("must be {lo}..={hi}")))
    }
}

fn count(key: &str, v: i64) -> Result<usize, ConfigError> {
    num(key, v, 1, MAX_LIMIT).map(|v| usize::try_from(v).unwrap_or(usize::MAX))
}

fn count32(key: &str, v: i64) -> Result<u32, ConfigError> {
    num(key, v, 1, MAX_LIMIT).map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

fn secs(key: &str, v: i64, lo: i64, hi: i64, unit: u64) -> Result<Duration, ConfigError> {
    num(key, v, lo, hi).map(|v| Duration::from_secs(u64::try_from(v).unwrap_or(0) * unit))
}

fn addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.trim().parse().map_err(|_| {
        ConfigError::invalid(key, format!("`{s}` is not an address like 127.0.0.1:8080"))
    })
}

/// Parses a list of CIDRs or bare addresses.
pub fn nets(key: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| {
                    ConfigError::invalid(key, format!("`{s}` is not a CIDR or an IP address"))
                })
        })
        .collect()
}

fn url(key: &str, s: Option<String>) -> Result<Option<String>, ConfigError> {
    match s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(u) if u.contains("://") && !u.contains(char::is_whitespace) => Ok(Some(u)),
        Some(_) => Err(ConfigError::invalid(
            key,
            "must be an absolute URL like https://host",
        )),
    }
}

pub(super) fn validate(r: RawConfig) -> Result<Config, ConfigError> {
    let s = &r.server;
    let server = Server {
        listen: addr("server.listen", &s.listen)?,
        tls: s.tls.as_ref().map(|t| Tls {
            cert: PathBuf::from(&t.cert),
            key: PathBuf::from(&t.key),
        }),
        redirect_listen: s
            .redirect_listen
            .as_deref()
            .map(|a| addr("server.redirect_listen", a))
            .transpose()?,
        trusted_proxies: nets("server.trusted_proxies", &s.trusted_proxies)?,
        public_url: url("server.public_url", s.public_url.clone())?,
        header_timeout: secs(
            "server.header_timeout_seconds",
            s.header_timeout_seconds,
            1,
            3600,
            1,
        )?,
        request_timeout: secs(
            "server.request_timeout_seconds",
            s.request_timeout_seconds,
            1,
            86_400,
            1,
        )?,
        max_header_bytes: usize::try_from(num(
            "server.max_header_bytes",
            s.max_header_bytes,
            8192,
            MAX_LIMIT,
        )?)
        .unwrap_or(8192),
        shutdown_grace: secs(
            "server.shutdown_grace_seconds",
            s.shutdown_grace_seconds,
            1,
            3600,
            1,
        )?,
        idle_timeout: secs(
            "server.idle_timeout_seconds",
            s.idle_timeout_seconds,
            1,
            86_400,
            1,
        )?,
        max_tcp_connections_per_ip: count(
            "server.max_tcp_connections_per_ip",
            s.max_tcp_connections_per_ip,
        )?,
        max_tcp_connections: match num(
            "server.max_tcp_connections",
            s.max_tcp_connections,
            0,
            MAX_LIMIT,
        )? {
            0 => None,
            n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        },
    };
    if server.redirect_listen.is_some() && server.tls.is_none() {
        return Err(ConfigError::invalid(
            "server.redirect_listen",
            "needs server.tls (it redirects to https)",
        ));
    }
    let w = &r.wss_enforcement;
    let allowed_protocols: Vec<String> = w
        .allowed_protocols
        .iter()
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    if let Some(bad) = allowed_protocols
        .iter()
        .find(|p| !matches!(p.as_str(), "wss" | "https" | "ws" | "http"))
    {
        return Err(ConfigError::invalid(
            "wss_enforcement.allowed_protocols",
            format!("`{bad}` is not one of wss, https, ws, http"),
        ));
    }
    let k = &r.key_rotation;
    let a = &r.access_validation;
    if !a.validate_all_grants {
        // Kept in the file format because the origin configuration has it;
        // turning grant checks off is not something Warden offers.
        return Err(ConfigError::invalid(
            "access_validation.validate_all_grants",
            "false is not supported: Warden always checks every grant a route requires; remove the key or set it to true",
        ));
    }
    let sa = &r.suspicious_activity;
    let wh = &r.webhooks;
    let leeway = secs("webhooks.leeway_seconds", wh.leeway_seconds, 0, 3600, 1)?;
    let min_replay = LIVEKIT_WEBHOOK_TTL_SECS + wh.leeway_seconds;
    if wh.replay_window_seconds <= min_replay {
        return Err(ConfigError::invalid(
            "webhooks.replay_window_seconds",
            format!(
                "must exceed LiveKit's {LIVEKIT_WEBHOOK_TTL_SECS} s signature lifetime plus webhooks.leeway_seconds ({min_replay})"
            ),
        ));
    }
    let rt = &r.realtime;
    let lg = &r.logging;
    let al = &r.alerts;
    let st = &r.storage;
    let lk = &r.livekit;
    let cfg = Config {
        server,
        wss_enforcement: WssEnforcement {
            enabled: w.enabled,
            allowed_protocols,
            redirect_http_to_https: w.redirect_http_to_https,
        },
        key_rotation: KeyRotation {
            enabled: k.enabled,
            rotation_interval: secs(
                "key_rotation.rotation_interval_hours",
                k.rotation_interval_hours,
                1,
                87_600,
                3600,
            )?,
            overlap_period: secs(
                "key_rotation.overlap_period_minutes",
                k.overlap_period_minutes,
                1,
                525_600,
                60,
            )?,
            auto_rotation: k.auto_rotation,
        },
        access_validation: AccessValidation {
            strict_mode: a.strict_mode,
            log_access_attempts: a.log_access_attempts,
            max_token_bytes: usize::try_from(num(
                "access_validation.max_token_bytes",
                a.max_token_bytes,
                256,
                MAX_LIMIT,
            )?)
            .unwrap_or(8192),
        },
        suspicious_activity: SuspiciousActivity {
            max_failed_attempts: u32::try_from(num(
                "suspicious_activity.max_failed_attempts",
                sa.max_failed_attempts,
                1,
                MAX_LIMIT,
            )?)
            .unwrap_or(5),
            failure_window: secs(
                "suspicious_activity.failure_window_minutes",
                sa.failure_window_minutes,
                1,
                525_600,
                60,
            )?,
            lockout_duration: secs(
                "suspicious_activity.lockout_duration_minutes",
                sa.lockout_duration_minutes,
                1,
                525_600,
                60,
            )?,
            rate_limit_per_minute: count32(
                "suspicious_activity.rate_limit_per_minute",
                sa.rate_limit_per_minute,
            )?,
            unusual_usage_threshold: count(
                "suspicious_activity.unusual_usage_threshold",
                sa.unusual_usage_threshold,
            )? as u64,
            allowlist: nets("suspicious_activity.allowlist", &sa.allowlist)?,
            blocklist: nets("suspicious_activity.blocklist", &sa.blocklist)?,
            ipv6_prefix_length: u8::try_from(num(
                "suspicious_activity.ipv6_prefix_length",
                sa.ipv6_prefix_length,
                1,
                128,
            )?)
            .unwrap_or(64),
            key_failure_clients: count32(
                "suspicious_activity.key_failure_clients",
                sa.key_failure_clients,
            )?,
            max_tracked_clients: usize::try_from(num(
                "suspicious_activity.max_tracked_clients",
                sa.max_tracked_clients,
                100,
                MAX_LIMIT,
            )?)
            .unwrap_or(100_000),
        },
        webhooks: Webhooks {
            allowed_ips: nets("webhooks.allowed_ips", &wh.allowed_ips)?,
            rate_limit_per_minute: count32(
                "webhooks.rate_limit_per_minute",
                wh.rate_limit_per_minute,
            )?,
            max_body_bytes: count("webhooks.max_body_bytes", wh.max_body_bytes)?,
            replay_window: secs(
                "webhooks.replay_window_seconds",
                wh.replay_window_seconds,
                1,
                31_536_000,
                1,
            )?,
            leeway,
            max_json_depth: usize::try_from(num(
                "webhooks.max_json_depth",
                wh.max_json_depth,
                4,
                1024,
            )?)
            .unwrap_or(64),
        },
        realtime: Realtime {
            max_connections: count("realtime.max_connections", rt.max_connections)?,
            max_connections_per_ip: count(
                "realtime.max_connections_per_ip",
                rt.max_connections_per_ip,
            )?,
            heartbeat: secs(
                "realtime.heartbeat_seconds",
                rt.heartbeat_seconds,
                1,
                3600,
                1,
            )?,
            max_connection_age: secs(
                "realtime.max_connection_age_hours",
                rt.max_connection_age_hours,
                1,
                8760,
                3600,
            )?,
            batch_interval: Duration::from_millis(num(
                "realtime.batch_interval_ms",
                rt.batch_interval_ms,
                1,
                60_000,
            )? as u64),
            max_batch_size: usize::try_from(num(
                "realtime.max_batch_size",
                rt.max_batch_size,
                1,
                MAX_LIMIT,
            )?)
            .unwrap_or(50),
            history_size: count("realtime.history_size", rt.history_size)?,
            history_retention_hours: u32::try_from(num(
                "realtime.history_retention_hours",
                rt.history_retention_hours,
                1,
                876_000,
            )?)
            .unwrap_or(168),
            hash_identities: rt.hash_identities,
            client_queue_size: usize::try_from(num(
                "realtime.client_queue_size",
                rt.client_queue_size,
                2,
                MAX_LIMIT,
            )?)
            .unwrap_or(1024),
            write_timeout: secs(
                "realtime.write_timeout_seconds",
                rt.write_timeout_seconds,
                1,
                3600,
                1,
            )?,
        },
        logging: Logging {
            mask_sensitive_data: lg.mask_sensitive_data,
            log_level: match lg.log_level.trim().to_ascii_lowercase().as_str() {
                l @ ("trace" | "debug" | "info" | "warn" | "error") => l.to_owned(),
                "warning" => "warn".to_owned(),
                _ => {
                    return Err(ConfigError::invalid(
                        "logging.log_level",
                        "must be TRACE, DEBUG, INFO, WARN or ERROR",
                    ));
                }
            },
            format: match lg.format.trim().to_ascii_lowercase().as_str() {
                "auto" => LogFormat::Auto,
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::invalid(
                        "logging.format",
                        "must be auto, text or json",
                    ));
                }
            },
            audit_log_retention_days: u32::try_from(num(
                "logging.audit_log_retention_days",
                lg.audit_log_retention_days,
                1,
                36_500,
            )?)
            .unwrap_or(90),
            security_log_file: PathBuf::from(&lg.security_log_file),
            security_log_max_bytes: num(
                "logging.security_log_max_bytes",
                lg.security_log_max_bytes,
                4096,
                MAX_LIMIT,
            )? as u64,
            security_log_retention_days: u32::try_from(num(
                "logging.security_log_retention_days",
                lg.security_log_retention_days,
                1,
                36_500,
            )?)
            .unwrap_or(90),
        },
        alerts: Alerts {
            webhook_url: url("alerts.webhook_url", al.webhook_url.clone())?,
            signing_secret: al
                .signing_secret
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| Secret::new(s.clone())),
            min_severity: al.min_severity.parse().map_err(|_| {
                ConfigError::invalid(
                    "alerts.min_severity",
                    "must be low, medium, high or critical",
                )
            })?,
            allowed_private_targets: nets(
                "alerts.allowed_private_targets",
                &al.allowed_private_targets,
            )?,
            dedupe_window: secs(
                "alerts.dedupe_window_seconds",
                al.dedupe_window_seconds,
                1,
                86_400,
                1,
            )?,
            queue_size: count("alerts.queue_size", al.queue_size)?,
        },
        storage: Storage {
            backend: match st.backend.trim().to_ascii_lowercase().as_str() {
                "sqlite" => Backend::Sqlite,
                "redis" => Backend::Redis,
                _ => {
                    return Err(ConfigError::invalid(
                        "storage.backend",
                        "must be sqlite or redis",
                    ));
                }
            },
            path: PathBuf::from(&st.path),
            redis_url: st
                .redis_url
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(|s| Secret::new(s.clone())),
            redis_ca_file: st
                .redis_ca_file
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        },
        livekit: Livekit {
            keys_file: PathBuf::from(&lk.keys_file),
            api_url: url("livekit.api_url", lk.api_url.clone())?,
            reconcile_interval: secs(
                "livekit.reconcile_interval_seconds",
                lk.reconcile_interval_seconds,
                1,
                86_400,
                1,
            )?,
        },
        env_keys: EnvKeys::default(),
        source: None,
        effective: serde_norway::Value::Null,
    };
    if cfg.storage.backend == Backend::Redis && cfg.storage.redis_url.is_none() {
        return Err(ConfigError::invalid(
            "storage.redis_url",
            "required when storage.backend is redis",
        ));
    }
    if let Some(u) = cfg.storage.redis_url.as_ref() {
        let scheme = u.expose().split("://").next().unwrap_or("");
        if !matches!(scheme, "redis" | "rediss" | "redis+unix" | "unix") {
            return Err(ConfigError::invalid(
                "storage.redis_url",
                "must be a redis:// or rediss:// URL",
            ));
        }
    }
    if cfg.storage.redis_ca_file.is_some()
        && !cfg
            .storage
            .redis_url
            .as_ref()
            .is_some_and(|u| u.expose().starts_with("rediss://"))
    {
        return Err(ConfigError::invalid(
            "storage.redis_ca_file",
            "applies to a rediss:// storage.redis_url only",
        ));
    }
    Ok(cfg)
}
