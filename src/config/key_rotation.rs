//! `key_rotation`: when API keys are due and how long a retiring key verifies.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::field;

const SECTION: &str = "key_rotation";

/// `key_rotation` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKeyRotation {
    pub enabled: bool,
    pub rotation_interval_hours: i64,
    pub overlap_period_minutes: i64,
    pub auto_rotation: bool,
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

impl TryFrom<RawKeyRotation> for KeyRotation {
    type Error = ConfigError;

    fn try_from(r: RawKeyRotation) -> Result<Self, ConfigError> {
        Ok(Self {
            enabled: r.enabled,
            rotation_interval: field!(r.rotation_interval_hours).hours(1, 87_600)?,
            overlap_period: field!(r.overlap_period_minutes).minutes(1, 525_600)?,
            auto_rotation: r.auto_rotation,
        })
    }
}
