//! Several Warden nodes behaving as one, through Redis (`storage.backend: redis`).
//!
//! What is shared, and how:
//! - **Fan-out and history.** The node that receives a webhook does not
//!   publish it locally: one Lua script ([`scripts::PUBLISH`]) checks the
//!   event id (`SET … NX PX replay_window`), takes the next seq (`INCR`) and
//!   appends the verified, normalised event to one stream (`XADD MAXLEN ~
//!   history_size`), atomically; LiveKit gets its 200 only after that. Every
//!   node — the receiving one included — runs a reader (`XREAD BLOCK` from
//!   the last stream id it applied) that feeds its hub with the cluster's seq
//!   ([`crate::hub::Hub::publish_at`]). So the ids `<epoch>-<seq>` are the
//!   same on every node, per-room (indeed global) order is the stream's
//!   order, and each node's ring holds the same history: `Last-Event-ID`
//!   from node A resumes on node B with no gap and no duplicate. A node that
//!   starts later loads the newest `history_size` entries before it serves.
//!   Streams rather than pub/sub: a reader that was disconnected catches up
//!   from its last id instead of losing what was published meanwhile.
//! - **Dedupe** is the same script: an id is remembered only together with
//!   its event, so a delivery whose append failed (503) is retried by
//!   LiveKit — to any node — and goes through; a retry after success is a
//!   duplicate on every node.
//! - **Lockouts** ([`locks`]): each counted failure (a 401) is also counted in
//!   Redis ([`scripts::FAILURE`]); reaching `max_failed_attempts` across all
//!   nodes writes the client into a sorted set of lockouts, which every node
//!   polls every 500 ms and imposes locally (views converge within a second).
//!   An admin unblock on one node lifts the lockout everywhere.
//! - **Rate limits** ([`rates`]): `suspicious_activity.rate_limit_per_minute`
//!   (per client on `/api/*`, SSE connects included) and
//!   `webhooks.rate_limit_per_minute` (per source) hold for all nodes
//!   together, without a Redis round trip on the request path. Each node
//!   keeps its own limiter and counts what it admits; every 250 ms one script
//!   adds those counts to a per-client counter for the current minute (fixed
//!   windows on the Unix epoch) and returns every client over its limit on
//!   any node, which this node then refuses with 429 until the minute ends
//!   (`Retry-After` and `RateLimit` headers as for a local refusal). Views
//!   converge within about half a second. The SSE connection rate stays per
//!   node.
//! - **Room reconciliation** ([`reconciler`]): nodes with `livekit.api_url`
//!   compete for a lease in Redis; only its holder asks LiveKit for the
//!   truth, and its `reconciled` changes are appended to the shared stream
//!   like a webhook's events, so every node applies them with the same id.
//! - **Keys** are not in Redis: all nodes point `livekit.keys_file` at one
//!   shared key file (the file livekit-server reads too, so operators already
//!   distribute it), and each node's key watcher reloads it within 2 s. A
//!   rotation or revocation made on any node — or with the CLI — is honoured
//!   by all; the file's lock makes concurrent updates safe. Secret material
//!   never enters Redis, so Redis holds nothing that can sign.
//! - **The pepper** is the same on every node, so identity hashes are too.
//!   It is kept where Redis losing its data cannot take it: beside the
//!   shared key file (`<key file>.pepper`, which every node already reads and
//!   Warden already writes beside), in each node's data directory, and in
//!   Redis for nodes without the shared directory ([`boot`] says which one
//!   wins; the reader puts it back into Redis after a loss). It protects
//!   hashes shown to dashboards, not access, and whoever reads Redis reads
//!   the events.
//! - **Audit** stays per node: each node keeps its own SQLite hash chain and
//!   `warden audit verify` checks that node's chain.
//!
//! When Redis is unreachable: nodes keep serving SSE, tokens and the API
//! from local state with node-local limits and lockouts (cluster-wide rate
//! refusals already decided run to the end of their window); webhooks are
//! answered 503 with `Retry-After` (LiveKit retries 5xx), so no event is
//! acknowledged without being in the shared stream; signature checks are
//! local and unchanged; the `redis` health check reports `degraded`; the
//! connections reconnect with backoff; the first webhook appended again
//! reports Redis healthy at once. Redis is required at start: a node that
//! cannot reach it refuses to start and says why.
//!
//! When Redis loses data, the cluster moves to a new epoch: see [`epoch`].

mod boot;
mod epoch;
mod erase;
mod fanout;
mod health;
mod locks;
mod rates;
mod reconciler;
mod scripts;
mod wire;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::config::Config;
use crate::event::Event;
use crate::store::{Redis, RedisError};
use crate::webhook::replay::BodyDigest;

pub use boot::{Boot, Parts};
use health::COMMAND_TIMEOUT;
pub use health::Health;
pub use reconciler::{LEASE_RENEW, LEASE_TTL};

/// Cluster errors (masked: never a password).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `storage.redis_url` is missing.
    #[error("storage.backend is redis but storage.redis_url is not set")]
    NoUrl,
    /// Redis refused, failed or could not be reached.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// Redis did not answer in time.
    #[error("redis at {url}: no answer within {ms} ms")]
    Timeout {
        /// The masked URL.
        url: String,
        /// The wait.
        ms: u128,
    },
    /// Redis answered something the scripts never return.
    #[error("redis at {url}: unexpected reply to {what}")]
    Reply {
        /// The masked URL.
        url: String,
        /// Which command.
        what: &'static str,
    },
    /// The cluster moved to a new epoch and this node has not followed yet.
    #[error("redis at {url}: the cluster is moving to a new epoch; retry")]
    Moving {
        /// The masked URL.
        url: String,
    },
}

/// What [`Cluster::publish`] did with a verified event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Appended to the shared stream under this seq.
    New(u64),
    /// Already processed (LiveKit's retry, possibly to another node).
    Retry,
    /// Already processed with another body: recorded as `WEBHOOK_REPLAY`.
    Replay,
}

/// Settings taken from the configuration.
#[derive(Debug, Clone, Copy)]
struct Settings {
    history_size: usize,
    replay_window_ms: i64,
    max_failures: u32,
    failure_window_ms: i64,
    lockout_ms: i64,
}

impl Settings {
    fn from_config(cfg: &Config) -> Self {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let sa = &cfg.suspicious_activity;
        Self {
            history_size: cfg.realtime.history_size.max(1),
            replay_window_ms: ms(cfg.webhooks.replay_window),
            max_failures: sa.max_failed_attempts.max(1),
            failure_window_ms: ms(sa.failure_window),
            lockout_ms: ms(sa.lockout_duration),
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// The running cluster membership: a cheap `Clone` handle.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Redis,
    conn: ConnectionManager,
    settings: Settings,
    parts: Parts,
    /// The pepper, put back into Redis by the reader if Redis lost it.
    pepper: crate::pepper::Pepper,
    health: Mutex<Health>,
    /// Asks the reader to check Redis's epoch now (and ends its backoff).
    recheck: tokio::sync::Notify,
    /// The hub's epoch, sent by the reader each time it moves.
    epoch_tx: tokio::sync::watch::Sender<String>,
    /// This node's id for leases (random per start).
    node_id: String,
    /// When this node last took or renewed the reconciler lease.
    lease_since: Mutex<Option<std::time::Instant>>,
    /// The reader's start and the guard queue, taken by [`Cluster::spawn`].
    pending: Mutex<
        Option<(
            String,
            tokio::sync::mpsc::Receiver<crate::guard::SharedUpdate>,
        )>,
    >,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("redis", &self.inner.redis)
            .field("epoch", &self.epoch())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The cluster's epoch, as this node's hub has it.
    pub fn epoch(&self) -> String {
        self.inner.parts.hub.epoch()
    }

    /// Starts the stream reader, the lockout and the rate-limit sharing; they stop when
    /// `stop` turns true. Only the first call starts anything.
    pub fn spawn(&self, stop: tokio::sync::watch::Receiver<bool>) {
        let pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some((last_id, rx)) = pending else {
            return;
        };
        tokio::spawn(fanout::run(self.clone(), last_id, stop.clone()));
        tokio::spawn(locks::run(self.clone(), rx, stop.clone()));
        tokio::spawn(rates::run(self.clone(), stop));
    }

    /// Dedupes and appends a verified event to the shared stream (see the
    /// module docs); every node's reader then broadcasts it. An error means
    /// the event is not queued: answer 503 so LiveKit retries. A
    /// [`Published::Replay`] is recorded by the caller (`ingest`).
    pub async fn publish(
        &self,
        event: &Event,
        body: BodyDigest,
    ) -> Result<Published, ClusterError> {
        let (_, seq, seen) = self
            .append(event, &wire::encode(event), &hex::encode(body))
            .await?;
        Ok(match seen {
            0 => Published::New(seq),
            1 => Published::Retry,
            _ => Published::Replay,
        })
    }

    /// Runs [`scripts::PUBLISH`] for `event` (`json` its wire form):
    /// `(epoch, seq, seen)`. If the cluster moved to a new epoch this node
    /// has not followed yet, nothing is published until it has (at most
    /// [`MOVE_WAIT`]; then an error, and LiveKit retries).
    async fn append(
        &self,
        event: &Event,
        json: &str,
        digest_hex: &str,
    ) -> Result<(String, u64, u8), ClusterError> {
        for _ in 0..3 {
            let (epoch, head) = self.inner.parts.hub.position();
            let (theirs, seq, status, cause) = self
                .run_publish(event, json, digest_hex, &epoch, head)
                .await?;
            if status == 3 {
                self.await_move(&epoch).await?;
                continue;
            }
            if !cause.is_empty() {
                self.data_lost(&theirs, &cause);
            }
            return Ok((theirs, seq, status));
        }
        Err(ClusterError::Moving {
            url: self.inner.redis.masked_url().to_owned(),
        })
    }

    /// One [`scripts::PUBLISH`] call from this node's `epoch` and `head`.
    async fn run_publish(
        &self,
        event: &Event,
        json: &str,
        digest_hex: &str,
        epoch: &str,
        head: u64,
    ) -> Result<(String, u64, u8, String), ClusterError> {
        let inner = &self.inner;
        let s = inner.settings;
        let mut invocation = scripts::PUBLISH_SCRIPT.prepare_invoke();
        invocation
            .key(scripts::EPOCH)
            .key(scripts::SEQ)
            .key(scripts::EVENTS)
            .key(scripts::seen_key(&event.id))
            .arg(epoch)
            .arg(head)
            .arg(s.history_size)
            .arg(inner.parts.clock.now_ms())
            .arg(json)
            .arg(digest_hex)
            .arg(s.replay_window_ms.max(1))
            .arg(epoch::new_epoch());
        let mut conn = inner.conn.clone();
        let reply = self
            .timed(invocation.invoke_async(&mut conn))
            .await
            .inspect_err(|e| self.note_error(&e.to_string()))?;
        if self.note_ok() {
            // Redis is back: the reader need not sit out its backoff.
            inner.recheck.notify_one();
        }
        Ok(reply)
    }
}
