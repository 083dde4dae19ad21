//! Moving the cluster to a new epoch when Redis lost data.
//!
//! When Redis loses data (restarted empty, or from an older RDB/AOF state,
//! or a failover to a replica that was behind), ids must not be issued
//! twice: nodes that had read further would already have sent them with
//! other events. The epoch key is the marker: the publish script and the
//! reader's check ([`super::scripts::PUBLISH`], [`super::scripts::CHECK`])
//! treat a missing epoch, a seq below the node's head, a stream ending
//! before the node's last read, or a seq read twice with other content as
//! data loss, and start a new epoch in the same atomic step (stream
//! dropped, seq back to 0). A node publishes only in Redis's epoch: one
//! that has not moved yet waits for its reader to move its hub first
//! ([`super::fanout`]), which resets every stream (`history_lost`) to a
//! fresh snapshot. What no node can see is a node that was behind the
//! restored state publishing before the nodes ahead of it reconnect
//! (possible only with RDB, AOF `everysec` or a failover): its id may name
//! another event on those nodes until they reconnect, within about a
//! second, and move everyone on.

use std::time::Duration;

use super::{Cluster, ClusterError};

/// Longest wait, on the request path, for this node to move to the
/// cluster's new epoch before it publishes again (its reader checks at once
/// when asked, and at the latest after one idle `XREAD BLOCK`).
const MOVE_WAIT: Duration = Duration::from_secs(2);

impl Cluster {
    /// Asks the reader to follow the cluster out of `from` and waits until
    /// the hub has left it.
    pub(super) async fn await_move(&self, from: &str) -> Result<(), ClusterError> {
        self.inner.recheck.notify_one();
        let mut rx = self.inner.epoch_tx.subscribe();
        match tokio::time::timeout(MOVE_WAIT, rx.wait_for(|e| e != from)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(ClusterError::Moving {
                url: self.inner.redis.masked_url().to_owned(),
            }),
        }
    }

    /// This node found that Redis lost data (`cause`) and started `epoch`.
    pub(super) fn data_lost(&self, epoch: &str, cause: &str) {
        tracing::error!(
            cluster.epoch = %epoch,
            cause,
            "redis lost data this node had seen: the cluster moves to a new epoch; every SSE stream gets event: reset (history_lost) and a fresh snapshot"
        );
        self.inner
            .parts
            .metrics
            .cluster_data_loss(loss_cause(cause));
        // The reader moves the hub (it sees the new epoch in the stream too).
        self.inner.recheck.notify_one();
    }

    /// Moves this node's hub to the cluster's `epoch` (the reader's job).
    pub(super) fn move_to(&self, epoch: &str) {
        let hub = &self.inner.parts.hub;
        let before = hub.epoch();
        if before == epoch {
            return;
        }
        hub.move_to_epoch(epoch);
        self.inner.epoch_tx.send_replace(epoch.to_owned());
        self.inner.parts.metrics.cluster_epoch_change();
        tracing::warn!(
            cluster.epoch = %epoch,
            node.previous_epoch = %before,
            "moved to the cluster's new epoch: history dropped, every SSE stream reset (history_lost), ids start over"
        );
    }
}

/// A fresh random epoch, offered to the scripts in case Redis lost its data.
pub(super) fn new_epoch() -> String {
    use rand::Rng;
    format!("{:08x}", rand::rng().random::<u32>())
}

/// The metric label for a data-loss cause a script returned (a bounded set).
fn loss_cause(cause: &str) -> &'static str {
    match cause {
        "epoch_missing" => "epoch_missing",
        "seq_behind" => "seq_behind",
        "stream_behind" => "stream_behind",
        "seq_conflict" => "seq_conflict",
        _ => "other",
    }
}
