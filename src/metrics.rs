//! Operational metrics, rendered for `GET /metrics`.
//!
//! [`Metrics`] is a cheap `Clone` handle (every metric inside is an `Arc`)
//! that the other components increment. It is built on `prometheus-client`
//! (the official Prometheus Rust client: atomics, no global registry) and
//! renders the OpenMetrics text format, which Prometheus scrapes as is.
//!
//! Invariant: label values are bounded. Every method takes a `&'static str`
//! or an [`EventType`], so no request-controlled string can become a label
//! (which would let a client grow the series set without bound).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::audit::EventType;

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Label = [(&'static str, &'static str); 1];

/// Latency buckets in seconds: 0.5 ms to 2.5 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Handle to every metric Warden exports.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    /// Last totals copied from the hub and guard counters (see [`Metrics::sync_totals`]).
    synced: std::sync::Mutex<[u64; 7]>,
    registry: Registry,
    webhooks: Family<Label, Counter>,
    sse_connections: Gauge,
    sse_refusals: Family<Label, Counter>,
    deliveries: Counter,
    slow_consumer_cuts: Counter,
    replay_resets: Counter,
    webhook_to_enqueue: Histogram,
    webhook_lag: Histogram,
    enqueue_to_write: Histogram,
    lockouts: Counter,
    history_commits: Counter,
    history_stored: Counter,
    rate_limit_hits: Family<Label, Counter>,
    security_events: Family<Label, Counter>,
    audit_dropped: Counter,
    audit_write_failures: Counter,
    alerts: Family<Label, Counter>,
    cluster_data_loss: Family<Label, Counter>,
    cluster_epoch_changes: Counter,
    cluster_seq_conflicts: Counter,
    tcp_connections: Gauge,
    tcp_refusals: Family<Label, Counter>,
    sse_cuts: Family<Label, Counter>,
    client_identity: Family<Label, Counter>,
}

/// Registers `metric` under `name` and returns the handle kept by [`Metrics`].
fn reg<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("warden");
        let r = &mut r;
        let inner = Inner {
            synced: std::sync::Mutex::new([0; 7]),
            webhooks: reg(
                r,
                "webhooks",
                "Webhook requests by result",
                Family::default(),
            ),
            sse_connections: reg(
                r,
                "sse_connections",
                "Open SSE connections",
                Gauge::default(),
            ),
            sse_refusals: reg(
                r,
                "sse_refusals",
                "SSE connections refused, by reason",
                Family::default(),
            ),
            deliveries: reg(
                r,
                "deliveries",
                "Events written to SSE clients",
                Counter::default(),
            ),
            slow_consumer_cuts: reg(
                r,
                "slow_consumer_cuts",
                "SSE clients cut off for falling behind",
                Counter::default(),
            ),
            replay_resets: reg(
                r,
                "replay_resets",
                "Resumes that could not be served from history (event: reset)",
                Counter::default(),
            ),
            webhook_lag: reg(
                r,
                "webhook_lag_seconds",
                "Age of webhook events when they arrive (LiveKit's createdAt to receipt; LiveKit drops them at about 30 s)",
                Histogram::new([0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0]),
            ),
            webhook_to_enqueue: reg(
                r,
                "webhook_to_enqueue_seconds",
                "Webhook received to event queued",
                Histogram::new(LATENCY_BUCKETS),
            ),
            enqueue_to_write: reg(
                r,
                "enqueue_to_write_seconds",
                "Event queued to written to an SSE client",
                Histogram::new(LATENCY_BUCKETS),
            ),
            lockouts: reg(r, "lockouts", "Clients locked out", Counter::default()),
            history_commits: reg(
                r,
                "history_commits",
                "Transactions (one fsync each) that stored events in the embedded history",
                Counter::default(),
            ),
            history_stored: reg(
                r,
                "history_events_stored",
                "Events stored in the embedded history (per commit: events sharing one fsync)",
                Counter::default(),
            ),
            rate_limit_hits: reg(
                r,
                "rate_limit_hits",
                "Requests refused by a rate limit, by scope",
                Family::default(),
            ),
            security_events: reg(
                r,
                "security_events",
                "Security events recorded, by type",
                Family::default(),
            ),
            audit_dropped: reg(
                r,
                "audit_dropped",
                "Security events dropped because the audit queue was full",
                Counter::default(),
            ),
            audit_write_failures: reg(
                r,
                "audit_write_failures",
                "Security events the audit store could not write",
                Counter::default(),
            ),
            alerts: reg(r, "alerts", "Security alerts by outcome", Family::default()),
            cluster_data_loss: reg(
                r,
                "cluster_data_loss",
                "Times this node found that Redis lost data it had seen and started a new epoch, by what showed it",
                Family::default(),
            ),
            cluster_epoch_changes: reg(
                r,
                "cluster_epoch_changes",
                "Times this node moved to a new cluster epoch (every SSE stream reset as history_lost)",
                Counter::default(),
            ),
            cluster_seq_conflicts: reg(
                r,
                "cluster_seq_conflicts",
                "Events read from the shared stream under a seq this node had already sent with other content",
                Counter::default(),
            ),
            tcp_connections: reg(
                r,
                "tcp_connections",
                "Open TCP connections on the listeners",
                Gauge::default(),
            ),
            tcp_refusals: reg(
                r,
                "tcp_refusals",
                "TCP connections closed at accept, by reason (per_ip_limit, total_limit, fd_exhausted)",
                Family::default(),
            ),
            sse_cuts: reg(
                r,
                "sse_cuts",
                "SSE streams ended by the server, by reason (revoked, stalled, expired)",
                Family::default(),
            ),
            client_identity: reg(
                r,
                "client_identity",
                "Requests whose client address was not given as expected: forwarding headers ignored from a peer outside server.trusted_proxies, or a trusted proxy naming no client",
                Family::default(),
            ),
            registry: std::mem::take(r),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Brings the counters that the hub and the guard keep themselves (they
    /// count on their hot paths with plain atomics) up to date before a render:
    /// `[deliveries, slow-consumer cuts, resets, lockouts, rate-limit hits,
    /// history commits, events stored]`, each a total since start.
    pub fn sync_totals(&self, totals: [u64; 7]) {
        let Ok(mut last) = self.inner.synced.lock() else {
            return;
        };
        let delta = |i: usize, last: &mut [u64; 7]| {
            let d = totals[i].saturating_sub(last[i]);
            last[i] = last[i].max(totals[i]);
            d
        };
        self.inner.deliveries.inc_by(delta(0, &mut last));
        self.inner.slow_consumer_cuts.inc_by(delta(1, &mut last));
        self.inner.replay_resets.inc_by(delta(2, &mut last));
        self.inner.lockouts.inc_by(delta(3, &mut last));
        self.inner.history_commits.inc_by(delta(5, &mut last));
        self.inner.history_stored.inc_by(delta(6, &mut last));
        let hits = delta(4, &mut last);
        if hits > 0 {
            self.inner
                .rate_limit_hits
                .get_or_create(&[("scope", "all")])
                .inc_by(hits);
        }
    }

    /// One webhook request with its `result` (e.g. `accepted`, `duplicate`, `invalid_signature`).
    pub fn webhook(&self, result: &'static str) {
        self.inner
            .webhooks
            .get_or_create(&[("result", result)])
            .inc();
    }

    /// An SSE connection opened (`+1`) or closed (`-1`).
    pub fn sse_connection(&self, delta: i64) {
        self.inner.sse_connections.inc_by(delta);
    }

    /// An SSE connection refused for `reason` (e.g. `per_ip_limit`, `global_limit`, `unauthorized`).
    pub fn sse_refusal(&self, reason: &'static str) {
        self.inner
            .sse_refusals
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// A TCP connection accepted (`+1`) or closed (`-1`).
    pub fn tcp_connection(&self, delta: i64) {
        self.inner.tcp_connections.inc_by(delta);
    }

    /// A TCP connection closed at accept for `reason` (`per_ip_limit`, `total_limit`, `fd_exhausted`).
    pub fn tcp_refusal(&self, reason: &'static str) {
        self.inner
            .tcp_refusals
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// An SSE stream ended by the server for `reason` (`revoked`, `stalled`, `expired`).
    pub fn sse_cut(&self, reason: &'static str) {
        self.inner
            .sse_cuts
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// `n` events written to SSE clients.
    pub fn deliveries(&self, n: u64) {
        self.inner.deliveries.inc_by(n);
    }

    /// A slow SSE client cut off.
    pub fn slow_consumer_cut(&self) {
        self.inner.slow_consumer_cuts.inc();
    }

    /// A resume answered with `event: reset`.
    pub fn replay_reset(&self) {
        self.inner.replay_resets.inc();
    }

    /// This node found that Redis lost data it had seen (`cause`: `epoch_missing`,
    /// `seq_behind`, `stream_behind`, `seq_conflict`) and started a new epoch.
    pub fn cluster_data_loss(&self, cause: &'static str) {
        self.inner
            .cluster_data_loss
            .get_or_create(&[("cause", cause)])
            .inc();
    }

    /// This node moved to a new cluster epoch.
    pub fn cluster_epoch_change(&self) {
        self.inner.cluster_epoch_changes.inc();
    }

    /// A seq read twice from the shared stream with other content.
    pub fn cluster_seq_conflict(&self) {
        self.inner.cluster_seq_conflicts.inc();
    }

    /// How old a webhook's event was when it arrived, in ms.
    pub fn webhook_lag(&self, lag_ms: i64) {
        #[allow(clippy::cast_precision_loss)] // milliseconds, far below 2^52
        self.inner.webhook_lag.observe(lag_ms as f64 / 1000.0);
    }

    /// Time from a webhook's arrival to its event being queued on the hub.
    pub fn webhook_to_enqueue(&self, d: Duration) {
        self.inner.webhook_to_enqueue.observe(d.as_secs_f64());
    }

    /// Time from an event being queued to its write to an SSE client.
    pub fn enqueue_to_write(&self, d: Duration) {
        self.inner.enqueue_to_write.observe(d.as_secs_f64());
    }

    /// A client locked out.
    pub fn lockout(&self) {
        self.inner.lockouts.inc();
    }

    /// A request refused by the rate limit of `scope` (e.g. `api`, `webhook`).
    pub fn rate_limit_hit(&self, scope: &'static str) {
        self.inner
            .rate_limit_hits
            .get_or_create(&[("scope", scope)])
            .inc();
    }

    /// A security event recorded (counted by the audit module; others need not call it).
    pub fn security_event(&self, kind: EventType) {
        self.inner
            .security_events
            .get_or_create(&[("type", kind.as_str())])
            .inc();
    }

    /// A security event dropped because the audit queue was full.
    pub fn audit_dropped(&self) {
        self.inner.audit_dropped.inc();
    }

    /// A security event the audit store failed to write.
    pub fn audit_write_failure(&self) {
        self.inner.audit_write_failures.inc();
    }

    /// An alert outcome: `sent`, `failed`, `deduplicated`, `dropped`, `refused`.
    pub fn alert(&self, outcome: &'static str) {
        self.inner
            .alerts
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    /// A request whose client was not given as expected: `forwarding_ignored`
    /// or `unknown_client` (see `guard/forwarding.rs`).
    pub fn client_identity(&self, outcome: &'static str) {
        self.inner
            .client_identity
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    /// Security events dropped so far (for the health check).
    pub fn audit_dropped_count(&self) -> u64 {
        self.inner.audit_dropped.get()
    }

    /// The OpenMetrics text exposition of every metric (serve with [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug in a metric type.
        if encode(&mut out, &self.inner.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }
}

#[cfg(test)]
mod tests;
