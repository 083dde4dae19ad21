//! Rate limits across nodes (see [`crate::guard`]'s `shared_rates` module
//! for the guard's side: the request path only counts and looks up).
//!
//! Every [`PUSH`] this task takes the requests the node admitted since the
//! last push and runs [`scripts::RATE`]: the counts go into one counter per
//! client, policy and fixed window (`INCRBY`, expiring after two windows),
//! and a client whose count across all nodes is over its limit is marked in
//! a shared sorted set until its window ends. The same call returns every
//! active mark, which the guard imposes — so a node refuses a client that
//! went over the limit elsewhere even if it has not seen the client since.
//! A push is one round trip (several for more than [`CHUNK`] clients), and
//! all nodes see a new mark within two pushes: views converge within about
//! half a second.
//!
//! When Redis is unreachable a push fails, its counts are dropped (they
//! cannot wait: their window passes) and the node keeps its local limits
//! and the marks it already has until they expire; the stream reader
//! reports the `redis` check degraded and the connection comes back by
//! itself.

use std::time::Duration;

use super::{Cluster, ClusterError, scripts};
use crate::guard::{Policy, RateDelta, parse_client_key};

/// How often counts are pushed and marks read.
pub(super) const PUSH: Duration = Duration::from_millis(250);

/// Clients per script call (bounds how long one call holds Redis).
const CHUNK: usize = 500;

/// Most marks read per push (bounds the reply under an attack from many addresses).
const MAX_MARKS: usize = 10_000;

/// Pushes and reads until `stop` turns true.
pub(super) async fn run(cluster: Cluster, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(PUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = super::stopped(&mut stop) => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = push(&cluster).await {
            // The stream reader owns the health check; this only notes the cause.
            tracing::debug!(error = %e, "shared rate limits: redis command failed; node-local limits only");
        }
    }
}

async fn push(cluster: &Cluster) -> Result<(), ClusterError> {
    let inner = &cluster.inner;
    let guard = &inner.parts.guard;
    let now = inner.parts.clock.now_ms();
    let deltas = guard.take_rate_deltas();
    let mut chunks: Vec<&[RateDelta]> = deltas.chunks(CHUNK).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    let mut marks: Vec<(String, i64)> = Vec::new();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let script = redis::Script::new(scripts::RATE);
        let mut call = script.key(scripts::RATE_LIMITED);
        call.arg(now).arg(u8::from(i == last)).arg(MAX_MARKS);
        for d in chunk {
            let Some(quota) = guard.shared_quota(d.policy) else {
                continue;
            };
            let window_ms = quota.window_ms.max(1);
            let window = now.div_euclid(window_ms);
            let client = d.client.to_string();
            call.key(scripts::rate_key(d.policy.name(), window, &client))
                .arg(d.count)
                .arg(quota.limit)
                .arg(format!("{}|{client}", d.policy.name()))
                .arg((window + 1).saturating_mul(window_ms))
                .arg(window_ms.saturating_mul(2));
        }
        let mut conn = inner.conn.clone();
        marks = cluster.timed(call.invoke_async(&mut conn)).await?;
    }
    let limited: Vec<_> = marks
        .iter()
        .filter_map(|(member, until)| {
            let (policy, client) = member.split_once('|')?;
            let policy = match policy {
                "api" => Policy::Api,
                "webhook" => Policy::Webhook,
                _ => return None,
            };
            Some((parse_client_key(client)?, policy, *until))
        })
        .collect();
    guard.apply_shared_rate_limits(&limited);
    Ok(())
}
