//! Room reconciliation in a cluster (see [`crate::livekit`] for what it does).
//!
//! Exactly one node reconciles at a time: the one holding a lease in Redis
//! ([`scripts::LEASE`]: `SET NX PX` when free, `PEXPIRE` when held, one
//! script so the check and the change are atomic). Nodes with
//! `livekit.api_url` try to take or renew it every [`LEASE_RENEW`]; it lasts
//! [`LEASE_TTL`], so when its holder dies another node takes over within
//! that time, and at once when the holder stops cleanly (it gives the lease
//! back). A node counts itself the holder only for half the TTL after its
//! last successful renewal, so a holder cut off from Redis stops before
//! anyone else can start.
//!
//! The reconciler's events go through the shared stream like a webhook's
//! ([`Cluster::publish_own`]): every node broadcasts them with the same
//! cluster id, so a client resumes from them on any node.

use std::time::{Duration, Instant};

use super::{Cluster, ClusterError, scripts, wire};
use crate::event::Event;

/// How often the lease is taken or renewed.
pub const LEASE_RENEW: Duration = Duration::from_secs(1);

/// How long the lease lasts without renewal (the takeover time after a crash).
pub const LEASE_TTL: Duration = Duration::from_secs(10);

impl Cluster {
    /// Takes the reconciler lease if it is free, or renews it if this node
    /// holds it; true when this node holds it now.
    pub async fn hold_reconciler_lease(&self) -> Result<bool, ClusterError> {
        let inner = &self.inner;
        let asked = Instant::now();
        let mut conn = inner.conn.clone();
        let held: u8 = self
            .timed(
                redis::Script::new(scripts::LEASE)
                    .key(scripts::RECONCILER)
                    .arg(&inner.node_id)
                    .arg(u64::try_from(LEASE_TTL.as_millis()).unwrap_or(10_000))
                    .invoke_async(&mut conn),
            )
            .await
            .inspect_err(|_| self.drop_lease())?;
        let mut since = inner
            .lease_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *since = (held == 1).then_some(asked);
        Ok(held == 1)
    }

    /// Gives the lease back if this node holds it (at shutdown).
    pub async fn release_reconciler_lease(&self) {
        self.drop_lease();
        let mut conn = self.inner.conn.clone();
        let released: Result<u8, _> = self
            .timed(
                redis::Script::new(scripts::RELEASE)
                    .key(scripts::RECONCILER)
                    .arg(&self.inner.node_id)
                    .invoke_async(&mut conn),
            )
            .await;
        if let Err(e) = released {
            tracing::debug!(error = %e, "reconciler lease not released; it expires by itself");
        }
    }

    /// True while this node holds the reconciler lease (renewed within half its TTL).
    pub fn reconciles(&self) -> bool {
        self.inner
            .lease_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() < LEASE_TTL / 2)
    }

    fn drop_lease(&self) {
        *self
            .inner
            .lease_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// Appends an event Warden made itself (a `reconciled` change) to the
    /// shared stream; every node's reader then broadcasts it. Returns its seq.
    pub async fn publish_own(&self, event: &Event) -> Result<u64, ClusterError> {
        let json = wire::encode(event);
        let digest = crate::webhook::replay::digest(json.as_bytes());
        let (_, seq, seen) = self.append(event, &json, &hex::encode(digest)).await?;
        if seen != 0 {
            // Ids are made of a time and a sid: only a repeat of this very change.
            tracing::debug!(event.id = %event.id, "reconciled change already published");
        }
        Ok(seq)
    }
}
