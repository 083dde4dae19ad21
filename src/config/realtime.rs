//! `realtime`: the SSE stream's connection caps, heartbeat, batching and history.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::{MAX_LIMIT, field};

const SECTION: &str = "realtime";

/// `realtime` as written.
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
    /// The longest an event may be held back to share a write with others.
    /// Warden meets any bound by construction: it never waits to batch; a
    /// write carries only the events already queued when the previous write
    /// finished (at most `max_batch_size`), so an idle client gets each event
    /// at once. Kept (and range-checked) so that configurations written for
    /// the origin service, which set it, still load.
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

impl TryFrom<RawRealtime> for Realtime {
    type Error = ConfigError;

    fn try_from(r: RawRealtime) -> Result<Self, ConfigError> {
        Ok(Self {
            max_connections: field!(r.max_connections).count()?,
            max_connections_per_ip: field!(r.max_connections_per_ip).count()?,
            heartbeat: field!(r.heartbeat_seconds).secs(1, 3600)?,
            max_connection_age: field!(r.max_connection_age_hours).hours(1, 8760)?,
            batch_interval: field!(r.batch_interval_ms).millis(1, 60_000)?,
            max_batch_size: field!(r.max_batch_size).count()?,
            history_size: field!(r.history_size).count()?,
            history_retention_hours: field!(r.history_retention_hours).range(1, 876_000)?,
            hash_identities: r.hash_identities,
            client_queue_size: field!(r.client_queue_size).range(2, MAX_LIMIT)?,
            write_timeout: field!(r.write_timeout_seconds).secs(1, 3600)?,
        })
    }
}
