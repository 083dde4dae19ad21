//! Start-up: connect, agree on the epoch and the pepper, load the shared
//! history into the hub, connect the guard (see [`super`] for the design).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use super::{
    COMMAND_TIMEOUT, Cluster, ClusterError, Health, Inner, Settings, fanout, locks, scripts,
};
use crate::audit::Audit;
use crate::clock::Clock;
use crate::config::Config;
use crate::guard::Guard;
use crate::hub::Hub;
use crate::pepper::Pepper;
use crate::store::Redis;

/// Start-up, first half: connected, with the shared epoch and pepper (which
/// the hub and the webhook receiver need before they exist).
pub struct Boot {
    redis: Redis,
    conn: redis::Connection,
    epoch: String,
    pepper: Pepper,
    settings: Settings,
}

impl std::fmt::Debug for Boot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Boot")
            .field("redis", &self.redis)
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// The components the cluster feeds and consults.
#[derive(Clone)]
pub struct Parts {
    /// The local hub (fed by the stream reader).
    pub hub: Hub,
    /// The local guard (shares failures, imposes shared lockouts).
    pub guard: Guard,
    /// Where cluster-decided lockouts and replays are recorded.
    pub audit: Audit,
    /// The time source of every window.
    pub clock: Clock,
}

impl Boot {
    /// Connects to `storage.redis_url` and agrees on the epoch and the pepper
    /// (`local` is offered; the first node's wins). Blocks briefly: call it at start.
    pub fn connect(cfg: &Config, local: &Pepper) -> Result<Self, ClusterError> {
        let url = cfg.storage.redis_url.as_ref().ok_or(ClusterError::NoUrl)?;
        let redis = Redis::open(url, cfg.storage.redis_ca_file.as_deref())?;
        let mut conn = redis.connect_blocking(Duration::from_secs(5))?;
        let candidate = format!("{:08x}", rand::rng().random::<u32>());
        let epoch: String = set_nx_get(&redis, &mut conn, scripts::EPOCH, &candidate)?;
        let pepper = set_nx_get(&redis, &mut conn, scripts::PEPPER, local.secret().expose())?;
        tracing::info!(redis = %redis.masked_url(), cluster.epoch = %epoch, "joined the cluster");
        Ok(Self {
            redis,
            conn,
            epoch,
            pepper: Pepper::new(pepper),
            settings: Settings::from_config(cfg),
        })
    }

    /// The cluster's epoch (for [`Hub::with_epoch`]).
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The cluster's pepper.
    pub fn pepper(&self) -> Pepper {
        self.pepper.clone()
    }

    /// Loads the shared history into `parts.hub`, connects the guard, and
    /// returns the running handle (its tasks start with [`Cluster::spawn`]).
    /// Must be called within a Tokio runtime.
    pub fn start(mut self, parts: Parts) -> Result<Cluster, ClusterError> {
        let last_id = fanout::preload(
            &self.redis,
            &mut self.conn,
            &parts.hub,
            self.settings.history_size,
        )?;
        let conn = self.redis.manager(COMMAND_TIMEOUT)?;
        let (tx, rx) = tokio::sync::mpsc::channel(locks::QUEUE);
        parts.guard.set_shared_sink(locks::sink(tx));
        parts.guard.enable_shared_rates();
        Ok(Cluster {
            inner: Arc::new(Inner {
                redis: self.redis,
                conn,
                epoch: self.epoch,
                settings: self.settings,
                parts,
                health: Mutex::new(Health {
                    reachable: true,
                    detail: String::new(),
                }),
                node_id: format!("{:016x}", rand::rng().random::<u64>()),
                lease_since: Mutex::new(None),
                pending: Mutex::new(Some((last_id, rx))),
            }),
        })
    }
}

/// `SET key candidate NX`, then the value that won.
fn set_nx_get(
    redis: &Redis,
    conn: &mut redis::Connection,
    key: &str,
    candidate: &str,
) -> Result<String, ClusterError> {
    redis::cmd("SET")
        .arg(key)
        .arg(candidate)
        .arg("NX")
        .exec(conn)
        .map_err(|e| redis.error(&e))?;
    let value: Option<String> = redis::cmd("GET")
        .arg(key)
        .query(conn)
        .map_err(|e| redis.error(&e))?;
    value.ok_or_else(|| ClusterError::Reply {
        url: redis.masked_url().to_owned(),
        what: "GET",
    })
}
