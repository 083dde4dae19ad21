//! The validated configuration: each section checks itself
//! (`TryFrom<Raw…>` in `config/<section>.rs`); this joins them.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::raw::RawConfig;
use super::{
    AccessValidation, Alerts, ConfigError, EnvKeys, KeyRotation, Livekit, Logging, Realtime,
    Server, Storage, SuspiciousActivity, Webhooks, WssEnforcement,
};

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

/// Every section validated in file order; the first refusal is returned.
/// The environment's keys, the source file and the effective tree are
/// filled in by the loader.
impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;

    fn try_from(r: RawConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            server: r.server.try_into()?,
            wss_enforcement: r.wss_enforcement.try_into()?,
            key_rotation: r.key_rotation.try_into()?,
            access_validation: r.access_validation.try_into()?,
            suspicious_activity: r.suspicious_activity.try_into()?,
            webhooks: r.webhooks.try_into()?,
            realtime: r.realtime.try_into()?,
            logging: r.logging.try_into()?,
            alerts: r.alerts.try_into()?,
            storage: r.storage.try_into()?,
            livekit: r.livekit.try_into()?,
            env_keys: EnvKeys::default(),
            source: None,
            effective: serde_norway::Value::Null,
        })
    }
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
