//! The configuration as written: every section, as YAML gives it.
//!
//! Deserialised from the defaults merged with the file and the environment,
//! so every key is present; `deny_unknown_fields` makes a misspelt key an
//! error that names its path. Numbers are read as `i64` so that a negative
//! value gets a range message rather than a type error. Each section's raw
//! struct sits next to the typed section it becomes (`config/<section>.rs`).

use serde::{Deserialize, Serialize};

use super::access_validation::RawAccess;
use super::alerts::RawAlerts;
use super::key_rotation::RawKeyRotation;
use super::livekit::RawLivekit;
use super::logging::RawLogging;
use super::realtime::RawRealtime;
use super::server::RawServer;
use super::storage::RawStorage;
use super::suspicious_activity::RawSuspicious;
use super::webhooks::RawWebhooks;
use super::wss_enforcement::RawWss;

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
