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
use prometheus_client::registry::Registry;

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
    registry: Registry,
    webhooks: Family<Label, Counter>,
    sse_connections: Gauge,
    sse_refusals: Family<Label, Counter>,
    deliveries: Counter,
    slow_consumer_cuts: Counter,
    replay_resets: Counter,
    webhook_to_enqueue: Histogram,
    enqueue_to_write: Histogram,
    lockouts: Counter,
    rate_limit_hits: Family<Label, Counter>,
    security_events: Family<Label, Counter>,
    audit_dropped: Counter,
    audit_write_failures: Counter,
    alerts: Family<Label, Counter>,
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
        let webhooks = Family::<Label, Counter>::default();
        r.register("webhooks", "Webhook requests by result", webhooks.clone());
        let sse_connections = Gauge::default();
        r.register(
            "sse_connections",
            "Open SSE connections",
            sse_connections.clone(),
        );
        let sse_refusals = Family::<Label, Counter>::default();
        r.register(
            "sse_refusals",
            "SSE connections refused, by reason",
            sse_refusals.clone(),
        );
        let deliveries = Counter::default();
        r.register(
            "deliveries",
            "Events written to SSE clients",
            deliveries.clone(),
        );
        let slow_consumer_cuts = Counter::default();
        r.register(
            "slow_consumer_cuts",
            "SSE clients cut off for falling behind",
            slow_consumer_cuts.clone(),
        );
        let replay_resets = Counter::default();
        r.register(
            "replay_resets",
            "Resumes that could not be served from history (event: reset)",
            replay_resets.clone(),
        );
        let webhook_to_enqueue = Histogram::new(LATENCY_BUCKETS);
        r.register(
            "webhook_to_enqueue_seconds",
            "Webhook received to event queued",
            webhook_to_enqueue.clone(),
        );
        let enqueue_to_write = Histogram::new(LATENCY_BUCKETS);
        r.register(
            "enqueue_to_write_seconds",
            "Event queued to written to an SSE client",
            enqueue_to_write.clone(),
        );
        let lockouts = Counter::default();
        r.register("lockouts", "Clients locked out", lockouts.clone());
        let rate_limit_hits = Family::<Label, Counter>::default();
        r.register(
            "rate_limit_hits",
            "Requests refused by a rate limit, by scope",
            rate_limit_hits.clone(),
        );
        let security_events = Family::<Label, Counter>::default();
        r.register(
            "security_events",
            "Security events recorded, by type",
            security_events.clone(),
        );
        let audit_dropped = Counter::default();
        r.register(
            "audit_dropped",
            "Security events dropped because the audit queue was full",
            audit_dropped.clone(),
        );
        let audit_write_failures = Counter::default();
        r.register(
            "audit_write_failures",
            "Security events the audit store could not write",
            audit_write_failures.clone(),
        );
        let alerts = Family::<Label, Counter>::default();
        r.register("alerts", "Security alerts by outcome", alerts.clone());
        let inner = Inner {
            registry: r,
            webhooks,
            sse_connections,
            sse_refusals,
            deliveries,
            slow_consumer_cuts,
            replay_resets,
            webhook_to_enqueue,
            enqueue_to_write,
            lockouts,
            rate_limit_hits,
            security_events,
            audit_dropped,
            audit_write_failures,
            alerts,
        };
        Self {
            inner: Arc::new(inner),
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
