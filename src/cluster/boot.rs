//! Start-up: connect, agree on the epoch and the pepper, load the shared
//! history into the hub, connect the guard (see [`super`] for the design).
//!
//! The pepper is chosen in this order: the file beside the shared key file
//! (`<key file>.pepper`), which outlives Redis's data; else the one in
//! Redis (the running cluster's); else this node's own (`<data dir>/pepper`),
//! offered with `SET NX` so concurrent first starts agree. The choice is
//! then written to every place that lacks it — the file beside the key file
//! (created only if absent), this node's data directory, Redis — so nodes
//! started before or after Redis loses its data hash alike.

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
use crate::metrics::Metrics;
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
    /// Where data loss and epoch changes are counted.
    pub metrics: Metrics,
}

impl Boot {
    /// Connects to `storage.redis_url` and agrees on the epoch and the pepper
    /// (see the module docs; `local` is this node's own). Blocks briefly:
    /// call it at start.
    pub fn connect(cfg: &Config, local: &Pepper) -> Result<Self, ClusterError> {
        let url = cfg.storage.redis_url.as_ref().ok_or(ClusterError::NoUrl)?;
        let redis = Redis::open(url, cfg.storage.redis_ca_file.as_deref())?;
        let mut conn = redis.connect_blocking(Duration::from_secs(5))?;
        let epoch: String = set_nx_get(
            &redis,
            &mut conn,
            scripts::EPOCH,
            &super::epoch::new_epoch(),
        )?;
        let pepper = agree_on_pepper(cfg, &redis, &mut conn, local)?;
        tracing::info!(redis = %redis.masked_url(), cluster.epoch = %epoch, "joined the cluster");
        Ok(Self {
            redis,
            conn,
            epoch,
            pepper,
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
            &self.epoch,
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
                settings: self.settings,
                parts,
                pepper: self.pepper,
                health: Mutex::new(Health {
                    reachable: true,
                    detail: String::new(),
                }),
                recheck: tokio::sync::Notify::new(),
                epoch_tx: tokio::sync::watch::Sender::new(self.epoch),
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

/// Chooses the cluster's pepper and writes it where it is missing (see the
/// module docs). Files that cannot be written are reported, not fatal:
/// Redis still carries the pepper, as it did before.
fn agree_on_pepper(
    cfg: &Config,
    redis: &Redis,
    conn: &mut redis::Connection,
    local: &Pepper,
) -> Result<Pepper, ClusterError> {
    let shared = Pepper::beside(&cfg.livekit.keys_file);
    let in_file = Pepper::read(&shared).unwrap_or_else(|e| {
        tracing::warn!(path = %shared.display(), error = %e, "cannot read the pepper beside the key file");
        None
    });
    let in_redis: Option<String> = redis::cmd("GET")
        .arg(scripts::PEPPER)
        .query(conn)
        .map_err(|e| redis.error(&e))?;
    let in_redis = in_redis.map(Pepper::new);
    let pepper = match (in_file, in_redis) {
        (Some(file), Some(theirs)) if file.same_as(&theirs) => file,
        (Some(file), theirs) => {
            if theirs.is_some() {
                tracing::error!(path = %shared.display(), "redis holds another pepper than the file beside the key file; the file's is used and put back in redis");
            }
            redis::cmd("SET")
                .arg(scripts::PEPPER)
                .arg(file.secret().expose())
                .exec(conn)
                .map_err(|e| redis.error(&e))?;
            file
        }
        (None, Some(theirs)) => keep_beside(&shared, theirs),
        (None, None) => {
            let won = set_nx_get(redis, conn, scripts::PEPPER, local.secret().expose())?;
            keep_beside(&shared, Pepper::new(won))
        }
    };
    if !pepper.same_as(local) {
        let own = cfg.data_dir().join("pepper");
        match pepper.replace(&own) {
            Ok(()) => {
                tracing::info!(path = %own.display(), "this node's pepper is now the cluster's")
            }
            Err(e) => {
                tracing::warn!(path = %own.display(), error = %e, "cannot keep the cluster's pepper in the data directory")
            }
        }
    }
    Ok(pepper)
}

/// Creates the file beside the key file with `pepper`; if another node
/// created it first, theirs is the pepper (and Redis gets it at the next
/// check only if it lost its own: the two were the same `SET NX` winner).
fn keep_beside(path: &std::path::Path, pepper: Pepper) -> Pepper {
    match pepper.create(path) {
        Ok(true) => {
            tracing::info!(path = %path.display(), "the cluster's pepper is kept beside the key file");
            pepper
        }
        Ok(false) => match Pepper::read(path) {
            Ok(Some(theirs)) => theirs,
            _ => pepper,
        },
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot keep the pepper beside the key file: a node started while redis has lost its data would make a new one");
            pepper
        }
    }
}
