//! The stream reader: every node's way of receiving every event.
//!
//! At start, [`preload`] applies the newest `history_size` entries so the
//! local ring holds the shared history before the node serves. Then [`run`]
//! loops on `XREAD BLOCK` from the last stream id applied — a reader that was
//! cut off catches up from there, never skips — and hands each entry to the
//! hub under the cluster's seq. The reader is also the heartbeat of the
//! `redis` health check: it answers at least once per [`BLOCK`] (a
//! webhook's successful append reports Redis reachable at once, too).
//!
//! The reader alone moves the hub to a new epoch, so a node's ids change
//! epoch at one point of its stream. It runs [`scripts::CHECK`] after any
//! failure, whenever a read comes back empty (every [`BLOCK`] when idle),
//! when a publish asks it to, and when it reads a seq it had already applied
//! with other content ([`Applied::Conflict`]: logged, counted, never
//! dropped in silence). If Redis lost data the check starts a new epoch; if
//! another node already did, it only reports it; either way the hub moves
//! ([`crate::hub::Hub::move_to_epoch`]) and the reader starts over from the
//! beginning of the new epoch's stream. Each entry carries its epoch, so an
//! entry of a newer epoch is never applied under the old one.

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

/// Where a reader starts in a stream it has not read yet.
const START: &str = "0-0";

/// Applies the newest `history` entries of `epoch` to `hub`; returns the
/// stream id to read after.
pub(super) fn preload(
    redis: &Redis,
    conn: &mut redis::Connection,
    hub: &Hub,
    epoch: &str,
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
        .map_or_else(|| START.to_owned(), |e| e.id.clone());
    // An entry of another epoch (the cluster moved since the epoch was
    // read) is left to the reader, whose first check moves the hub.
    for entry in reply.ids.iter().rev() {
        apply(hub, entry, epoch);
    }
    Ok(last)
}

/// What became of one stream entry.
enum Step {
    /// Applied, or nothing to apply (unreadable, or a re-read).
    Done,
    /// The entry belongs to another epoch: not applied.
    OtherEpoch,
    /// A seq already applied with other content: not applied.
    Conflict(u64),
}

/// Hands one stream entry to the hub, if it belongs to `epoch`.
fn apply(hub: &Hub, entry: &StreamId, epoch: &str) -> Step {
    // Entries written before epochs were recorded per entry belong to the current one.
    if entry.get::<String>("ep").is_some_and(|ep| ep != epoch) {
        return Step::OtherEpoch;
    }
    let (Some(seq), Some(json)) = (entry.get::<u64>("seq"), entry.get::<String>("ev")) else {
        tracing::error!(stream.id = %entry.id, "incomplete entry in the shared stream; skipped");
        return Step::Done;
    };
    let ts: i64 = entry.get("ts").unwrap_or(0);
    let Some(event) = wire::decode(&json) else {
        tracing::error!(stream.id = %entry.id, "unreadable event in the shared stream; skipped");
        return Step::Done;
    };
    match hub.publish_at(seq, event, ts) {
        Applied::AfterGap => {
            tracing::warn!(
                seq,
                "events missing from the shared stream: subscribers behind them were reset (cluster_gap)"
            );
            Step::Done
        }
        Applied::Conflict => Step::Conflict(seq),
        Applied::Appended | Applied::Stale => Step::Done,
    }
}

/// Reads the shared stream until `stop` turns true (see the module docs).
pub(super) async fn run(
    cluster: Cluster,
    mut last_id: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let inner = &cluster.inner;
    let mut conn = match inner.redis.manager(BLOCK + Duration::from_secs(2)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the shared stream reader");
            return;
        }
    };
    let mut backoff = MIN_BACKOFF;
    // Redis may have lost data since the last read: check before trusting
    // one. Not yet: the preload has just read it.
    let mut verify = false;
    loop {
        let read = tokio::select! {
            r = read(&mut conn, &last_id) => Some(r),
            // A publish found another epoch, or started one: check now.
            () = inner.recheck.notified() => None,
            () = super::stopped(&mut stop) => return,
        };
        let result = match read {
            Some(Ok(entries)) if !entries.is_empty() && !verify => Ok(entries),
            // Idle, asked, or back after a failure: did Redis keep its data?
            Some(Ok(_)) | None => check(&cluster, &last_id, false).await.map(|moved| {
                if moved {
                    last_id = START.to_owned();
                }
                // Entries read with the check are read again: the check
                // may have moved the hub, and `last_id` with it.
                Vec::new()
            }),
            Some(Err(e)) => Err(inner.redis.error(&e).into()),
        };
        let entries = match result {
            Ok(entries) => entries,
            Err(e) => {
                cluster.note_error(&e.to_string());
                verify = true;
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = inner.recheck.notified() => {}
                    () = super::stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        verify = false;
        backoff = MIN_BACKOFF;
        cluster.note_ok();
        if let Err(e) = apply_all(&cluster, &entries, &mut last_id).await {
            cluster.note_error(&e.to_string());
            verify = true;
        }
    }
}

/// Applies `entries` in order, advancing `last_id`; stops at an entry of
/// another epoch or a conflict, after moving the hub (so the rest is read
/// again from the start of the new epoch's stream).
async fn apply_all(
    cluster: &Cluster,
    entries: &[StreamId],
    last_id: &mut String,
) -> Result<(), ClusterError> {
    let hub = &cluster.inner.parts.hub;
    let epoch = hub.epoch();
    for entry in entries {
        let conflict = match apply(hub, entry, &epoch) {
            Step::Done => {
                last_id.clone_from(&entry.id);
                continue;
            }
            Step::OtherEpoch => false,
            Step::Conflict(seq) => {
                tracing::error!(
                    seq,
                    stream.id = %entry.id,
                    cluster.epoch = %epoch,
                    "the shared stream issued a seq this node had already sent with other content (redis lost acknowledged data): not applied; moving the cluster to a new epoch"
                );
                cluster.inner.parts.metrics.cluster_seq_conflict();
                true
            }
        };
        // Unless the check fails (then this entry is read again), the hub
        // has moved and the new epoch's stream is read from its start.
        if check(cluster, last_id, conflict).await? {
            *last_id = START.to_owned();
            return Ok(());
        }
        // Redis is in this very epoch: the entry was not written by a node
        // of this version. Reading it again would not change that.
        tracing::error!(stream.id = %entry.id, "entry of another epoch in the shared stream; skipped");
        last_id.clone_from(&entry.id);
    }
    Ok(())
}

/// Runs [`scripts::CHECK`] and moves the hub if the cluster is in another
/// epoch now (started by this call or another node); true if it moved.
async fn check(cluster: &Cluster, last_id: &str, conflict: bool) -> Result<bool, ClusterError> {
    let inner = &cluster.inner;
    let (epoch, head) = inner.parts.hub.position();
    let mut conn = inner.conn.clone();
    let (theirs, cause): (String, String) = cluster
        .timed(
            redis::Script::new(scripts::CHECK)
                .key(scripts::EPOCH)
                .key(scripts::SEQ)
                .key(scripts::EVENTS)
                .key(scripts::PEPPER)
                .arg(&epoch)
                .arg(head)
                .arg(last_id)
                .arg(super::epoch::new_epoch())
                .arg(inner.pepper.secret().expose())
                .arg(if conflict { "1" } else { "0" })
                .invoke_async(&mut conn),
        )
        .await?;
    if !cause.is_empty() && cause != "moved" {
        cluster.data_lost(&theirs, &cause);
    }
    if theirs == epoch {
        return Ok(false);
    }
    cluster.move_to(&theirs);
    Ok(true)
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
