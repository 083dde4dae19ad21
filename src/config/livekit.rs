//! `livekit`: the key file shared with livekit-server and its RoomService API.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::field;

const SECTION: &str = "livekit";

/// `livekit` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLivekit {
    pub keys_file: String,
    pub api_url: Option<String>,
    pub reconcile_interval_seconds: i64,
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

impl TryFrom<RawLivekit> for Livekit {
    type Error = ConfigError;

    fn try_from(r: RawLivekit) -> Result<Self, ConfigError> {
        Ok(Self {
            keys_file: PathBuf::from(r.keys_file),
            api_url: field!(r.api_url).url()?,
            reconcile_interval: field!(r.reconcile_interval_seconds).secs(1, 86_400)?,
        })
    }
}
