//! Lockouts across nodes (see [`crate::guard`]'s `shared` module for the
//! guard's side).
//!
//! Out: the guard's sink puts each failure or unblock on a bounded queue
//! (never blocking a request; when Redis is down and the queue is full,
//! updates are dropped and the node keeps its local lockouts). One task
//! counts them in Redis with [`scripts::FAILURE`]; when the failures of all
//! nodes together reach the limit, the client is locked in the shared set
//! and here at once, and this node — the one that saw the deciding
//! failure — records `MULTIPLE_FAILED_AUTH` (scope `cluster`).
//!
//! In: every [`POLL`] the task reads the active lockouts and imposes them
//! locally; a lockout it imposed earlier that is gone from Redis before its
//! end was lifted by an admin on some node, and is lifted here too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc;

use super::{Cluster, scripts};
use crate::audit::{EventType, NewEvent, Severity};
use crate::clock::rfc3339_ms;
use crate::guard::{ClientKey, SharedSink, SharedUpdate, parse_client_key};

/// Updates queued while Redis is slow or down.
pub(super) const QUEUE: usize = 4096;

/// How often the shared lockouts are read.
pub(super) const POLL: Duration = Duration::from_millis(500);

/// The guard's sink: queue without waiting.
pub(super) fn sink(tx: mpsc::Sender<SharedUpdate>) -> SharedSink {
    Arc::new(move |update| {
        if tx.try_send(update).is_err() {
            tracing::debug!("shared lockout queue full; this update stays node-local");
        }
    })
}

/// Lockouts this node imposed from Redis: client → until (Unix ms).
type Imposed = HashMap<String, i64>;

/// Shares updates and polls lockouts until `stop` turns true.
pub(super) async fn run(
    cluster: Cluster,
    mut rx: mpsc::Receiver<SharedUpdate>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut imposed = Imposed::new();
    loop {
        let result = tokio::select! {
            () = super::stopped(&mut stop) => return,
            Some(update) = rx.recv() => share(&cluster, update, &mut imposed).await,
            _ = tick.tick() => poll(&cluster, &mut imposed).await,
        };
        if let Err(e) = result {
            // The stream reader owns the health check; this only notes the cause.
            tracing::debug!(error = %e, "shared lockouts: redis command failed");
        }
    }
}

async fn share(
    cluster: &Cluster,
    update: SharedUpdate,
    imposed: &mut Imposed,
) -> Result<(), super::ClusterError> {
    let inner = &cluster.inner;
    let mut conn = inner.conn.clone();
    match update {
        SharedUpdate::Failure { client, at_ms } => {
            let s = inner.settings;
            let name = client.to_string();
            let member = format!("{at_ms}-{:016x}", rand::rng().random::<u64>());
            let (_, until, newly): (u64, i64, u8) = cluster
                .timed(
                    redis::Script::new(scripts::FAILURE)
                        .key(scripts::failures_key(&name))
                        .key(scripts::LOCKS)
                        .arg(at_ms)
                        .arg(s.failure_window_ms.max(1))
                        .arg(s.max_failures)
                        .arg(s.lockout_ms.max(1))
                        .arg(&name)
                        .arg(member)
                        .invoke_async(&mut conn),
                )
                .await?;
            if until > 0 {
                let fresh = inner.parts.guard.apply_shared_lockout(client, until);
                imposed.insert(name, until);
                if fresh && newly == 1 {
                    record_lockout(cluster, client, until);
                }
            }
        }
        SharedUpdate::Unblock { client } => {
            let name = client.to_string();
            imposed.remove(&name);
            let mut pipe = redis::pipe();
            pipe.cmd("ZREM").arg(scripts::LOCKS).arg(&name).ignore();
            pipe.cmd("DEL").arg(scripts::failures_key(&name)).ignore();
            cluster.timed(pipe.exec_async(&mut conn)).await?;
        }
    }
    Ok(())
}

async fn poll(cluster: &Cluster, imposed: &mut Imposed) -> Result<(), super::ClusterError> {
    let inner = &cluster.inner;
    let now = inner.parts.clock.now_ms();
    let mut conn = inner.conn.clone();
    let active: Vec<(String, i64)> = cluster
        .timed(
            redis::Script::new(scripts::ACTIVE_LOCKS)
                .key(scripts::LOCKS)
                .arg(now)
                .invoke_async(&mut conn),
        )
        .await?;
    let guard = &inner.parts.guard;
    for (name, until) in &active {
        if let Some(client) = parse_client_key(name) {
            guard.apply_shared_lockout(client, *until);
            imposed.insert(name.clone(), *until);
        }
    }
    imposed.retain(|name, until| {
        if *until <= now || active.iter().any(|(n, _)| n == name) {
            return *until > now;
        }
        // Gone from Redis before its end: lifted by an admin elsewhere.
        if let Some(client) = parse_client_key(name) {
            guard.lift_shared_lockout(client);
        }
        false
    });
    Ok(())
}

fn record_lockout(cluster: &Cluster, client: ClientKey, until: i64) {
    let s = cluster.inner.settings;
    cluster.inner.parts.audit.record(
        NewEvent::new(EventType::MultipleFailedAuth, Severity::High)
            .ip(client.net().addr())
            .detail("client", client.to_string())
            .detail("failures", s.max_failures)
            .detail("window_minutes", s.failure_window_ms / 60_000)
            .detail("reason", "lockout")
            .detail("scope", "cluster")
            .detail("locked", true)
            .detail("until", rfc3339_ms(until)),
    );
}
