//! The stream reader: every node's way of receiving every event.
//!
//! At start, [`preload`] applies the newest `history_size` entries so the
//! local ring holds the shared history before the node serves. Then [`run`]
//! loops on `XREAD BLOCK` from the last stream id applied — a reader that was
//! cut off catches up from there, never skips — and hands each entry to the
//! hub under the cluster's seq. The reader is also the heartbeat of the
//! `redis` health check: it answers at least once per [`BLOCK`], and after
//! any failure the node is reported healthy again only once it has
//! reconnected, restored the epoch and seq ([`super::scripts::RESTORE`]) and
//! read again.

use std::time::Duration;

use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use super::{Cluster, ClusterError, scripts, wire};
use crate::hub::{Applied, Hub};
use crate::store::Redis;

/// Longest `XREAD BLOCK`.
const BLOCK: Duration = Duration::from_millis(1000);

/// Most entries per read.
const BATCH: usize = 512;

/// Backoff between failed reads.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Applies the newest `history` entries to `hub`; returns the stream id to read after.
pub(super) fn preload(
    redis: &Redis,
    conn: &mut redis::Connection,
    hub: &Hub,
    history: usize,
) -> Result<String, ClusterError> {
    let reply: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(scripts::EVENTS)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(history)
        .query(conn)
        .map_err(|e| redis.error(&e))?;
    let last = reply
        .ids
        .first()
        .map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
    for entry in reply.ids.iter().rev() {
        apply(hub, entry);
    }
    Ok(last)
}

/// Hands one stream entry to the hub.
fn apply(hub: &Hub, entry: &StreamId) -> Option<Applied> {
    let seq: u64 = entry.get("seq")?;
    let ts: i64 = entry.get("ts").unwrap_or(0);
    let json: String = entry.get("ev")?;
    let Some(event) = wire::decode(&json) else {
        tracing::error!(stream.id = %entry.id, "unreadable event in the shared stream; skipped");
        return None;
    };
    let applied = hub.publish_at(seq, event, ts);
    if applied == Applied::AfterGap {
        tracing::warn!(
            seq,
            "events missing from the shared stream: subscribers behind them were reset"
        );
    }
    Some(applied)
}

/// Reads the shared stream until `stop` turns true (see the module docs).
pub(super) async fn run(
    cluster: Cluster,
    mut last_id: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let redis = &cluster.inner.redis;
    let mut conn = match redis.manager(BLOCK + Duration::from_secs(2)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the shared stream reader");
            return;
        }
    };
    let hub = &cluster.inner.parts.hub;
    let mut backoff = MIN_BACKOFF;
    let mut restore = false;
    loop {
        let read = tokio::select! {
            r = read(&mut conn, &last_id) => r,
            () = super::stopped(&mut stop) => return,
        };
        let result = match read {
            Ok(entries) if restore => restore_state(&cluster, &mut conn).await.map(|()| entries),
            other => other,
        };
        match result {
            Ok(entries) => {
                restore = false;
                backoff = MIN_BACKOFF;
                cluster.note_ok();
                for entry in &entries {
                    apply(hub, entry);
                    last_id.clone_from(&entry.id);
                }
            }
            Err(e) => {
                cluster.note_error(&redis.error(&e).to_string());
                restore = true;
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = super::stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn read(
    conn: &mut redis::aio::ConnectionManager,
    last_id: &str,
) -> redis::RedisResult<Vec<StreamId>> {
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(BATCH)
        .arg("BLOCK")
        .arg(u64::try_from(BLOCK.as_millis()).unwrap_or(1000))
        .arg("STREAMS")
        .arg(scripts::EVENTS)
        .arg(last_id)
        .query_async(conn)
        .await?;
    Ok(reply
        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
        .unwrap_or_default())
}

/// Puts back the epoch and raises the seq to this node's head (Redis may have lost both).
async fn restore_state(
    cluster: &Cluster,
    conn: &mut redis::aio::ConnectionManager,
) -> redis::RedisResult<()> {
    let inner = &cluster.inner;
    let epoch: String = redis::Script::new(scripts::RESTORE)
        .key(scripts::EPOCH)
        .key(scripts::SEQ)
        .arg(&inner.epoch)
        .arg(inner.parts.hub.head())
        .invoke_async(conn)
        .await?;
    if epoch != inner.epoch {
        cluster.epoch_mismatch(&epoch);
    }
    Ok(())
}
