//! `webhooks`: which sources may post LiveKit webhooks, how large, how often.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::field;

const SECTION: &str = "webhooks";

/// LiveKit's webhook signature lifetime, seconds.
pub const LIVEKIT_WEBHOOK_TTL_SECS: i64 = 300;

/// `webhooks` as written.
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

impl TryFrom<RawWebhooks> for Webhooks {
    type Error = ConfigError;

    fn try_from(r: RawWebhooks) -> Result<Self, ConfigError> {
        let leeway = field!(r.leeway_seconds).secs(0, 3600)?;
        // A replayed body must still be remembered when its signature expires.
        let replay = field!(r.replay_window_seconds);
        let min_replay = LIVEKIT_WEBHOOK_TTL_SECS + r.leeway_seconds;
        if replay.value <= min_replay {
            return Err(replay.invalid(format!(
                "must exceed LiveKit's {LIVEKIT_WEBHOOK_TTL_SECS} s signature lifetime plus webhooks.leeway_seconds ({min_replay})"
            )));
        }
        Ok(Self {
            allowed_ips: field!(r.allowed_ips).nets()?,
            rate_limit_per_minute: field!(r.rate_limit_per_minute).count()?,
            max_body_bytes: field!(r.max_body_bytes).count()?,
            replay_window: replay.secs(1, 31_536_000)?,
            leeway,
            max_json_depth: field!(r.max_json_depth).range(4, 1024)?,
        })
    }
}
