//! Operational metrics, rendered for `GET /metrics`.
//!
//! [`Metrics`] is a cheap `Clone` handle that the other components count
//! into; figures that a component already keeps (the hub's and the guard's
//! counters, the key ring, the alert queue, Redis) are read at scrape time
//! from [`Readings`] instead of being copied on their hot paths.
//!
//! Why our own exposition writer (`expo`) rather than a client library:
//! every family here has a label set known at compile time, so a family is
//! an array of atomics (`family`) — every series exists at zero from the
//! first scrape (so `rate()` and `increase()` alerts work before the first
//! event), counting is one relaxed add with no lock, hash or allocation,
//! and no request-controlled string can ever become a label value. It also
//! writes both formats Prometheus reads (text 0.0.4 for `Accept:
//! text/plain`, OpenMetrics 1.0.0 when asked for), which
//! `prometheus-client` does not.
//!
//! Invariants: label values are bounded (methods take a `&'static str` that
//! must be one of the family's listed values, an [`EventType`], or a route
//! template from [`ROUTES`]); no metric carries a secret, a token, an
//! identity, a client address or a key id.

mod expo;
mod family;
mod process;
mod render;

use std::sync::Arc;
use std::time::Duration;

pub use self::expo::Format;
use self::expo::Writer;
use self::family::{Buckets, Counter, Gauge, Histogram, Labelled, buckets};
use crate::guard::GuardStats;
use crate::hub::HubStats;
use crate::security::EventType;

/// The routes counted by `warden_http_requests_total`: the router's route
/// templates (never a raw path), and `other` for a request no route matched.
pub const ROUTES: &[&str] = &[
    "/",
    "/api/auth/session",
    "/api/auth/sse-token",
    "/api/events",
    "/api/rooms",
    "/api/security/events",
    "/api/security/health",
    "/api/security/ingestion",
    "/api/security/status",
    "/api/security/subjects/erase",
    "/api/security/subjects/export",
    "/api/security/timeline",
    "/api/security/unblock",
    "/assets/{file}",
    "/health",
    "/metrics",
    "/webhooks/livekit",
    "other",
];

/// Status classes of `warden_http_requests_total`.
const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// Webhook results: the 200 answers, then every error code the route can answer.
const WEBHOOK_RESULTS: &[&str] = &[
    "accepted",
    "duplicate",
    "ignored",
    "unauthorized",
    "forbidden",
    "blocked",
    "locked_out",
    "rate_limited",
    "ingestion_paused",
    "body_too_large",
    "body_unreadable",
    "malformed_body",
    "invalid_event",
    "storage_unavailable",
    "cluster_unavailable",
    "other",
];

/// Why an SSE connection was refused.
pub const SSE_REFUSALS: &[&str] = &[
    "global_limit",
    "per_ip_limit",
    "rate_limited",
    "blocked",
    "locked_out",
    "unauthorized",
    "forbidden",
    "other",
];

/// Rate-limit scopes, in the order of [`GuardStats::rate_limited_by_policy`].
const RATE_LIMIT_SCOPES: [&str; 3] = ["api", "webhook", "sse"];

/// Latency buckets in seconds: 0.5 ms to 2.5 s.
const LATENCY: Buckets = buckets![
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5
];
/// HTTP request buckets: 0.5 ms to 10 s (fewer: one series per route).
const HTTP: Buckets = buckets![
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5, 10.0
];
/// Webhook lag buckets (LiveKit gives up on a webhook at about 30 s).
const LAG: Buckets = buckets![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0];

/// Handle to every metric Warden counts itself.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    webhooks: Labelled,
    webhook_lag: Histogram,
    webhook_to_enqueue: Histogram,
    sse_connections: Gauge,
    sse_refusals: Labelled,
    sse_cuts: Labelled,
    tcp_connections: Gauge,
    tcp_refusals: Labelled,
    client_identity: Labelled,
    security_events: Labelled,
    audit_dropped: Counter,
    audit_write_failures: Counter,
    alerts: Labelled,
    cluster_data_loss: Labelled,
    cluster_epoch_changes: Counter,
    cluster_seq_conflicts: Counter,
    /// Per route (as [`ROUTES`]), per status class.
    http_requests: Box<[[Counter; 4]]>,
    /// Per route.
    http_durations: Box<[Histogram]>,
}

/// Figures other components keep, read for one scrape.
#[derive(Clone, Debug, Default)]
pub struct Readings {
    /// The hub's counters and room state.
    pub hub: HubStats,
    /// The guard's counters.
    pub guard: GuardStats,
    /// The key ring.
    pub keys: KeyReadings,
    /// Alerts waiting to be delivered (0 when alerts are not configured).
    pub alert_queue: usize,
    /// Redis reachable: `None` on a single node (no Redis).
    pub redis_up: Option<bool>,
}

/// The key ring, aggregated (no key id becomes a label).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KeyReadings {
    /// Keys by state: active, retiring, revoked.
    pub by_state: [u64; 3],
    /// Age of the oldest active key Warden owns (environment keys have no age).
    pub oldest_active_age_seconds: Option<f64>,
    /// An active owned key is past its rotation interval.
    pub rotation_due: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The `type` values of `warden_security_events_total`: every [`EventType`].
fn event_types() -> &'static [&'static str] {
    static TYPES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    TYPES.get_or_init(|| EventType::ALL.iter().map(|t| t.as_str()).collect())
}

impl Metrics {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Self {
        let inner = Inner {
            webhooks: Labelled::new("result", WEBHOOK_RESULTS),
            webhook_lag: Histogram::new(LAG),
            webhook_to_enqueue: Histogram::new(LATENCY),
            sse_connections: Gauge::default(),
            sse_refusals: Labelled::new("reason", SSE_REFUSALS),
            sse_cuts: Labelled::new("reason", &["revoked", "stalled", "expired"]),
            tcp_connections: Gauge::default(),
            tcp_refusals: Labelled::new("reason", &["per_ip_limit", "total_limit", "fd_exhausted"]),
            client_identity: Labelled::new("outcome", &["forwarding_ignored", "unknown_client"]),
            security_events: Labelled::new("type", event_types()),
            audit_dropped: Counter::default(),
            audit_write_failures: Counter::default(),
            alerts: Labelled::new(
                "outcome",
                &["sent", "failed", "refused", "deduplicated", "dropped"],
            ),
            cluster_data_loss: Labelled::new(
                "cause",
                &[
                    "epoch_missing",
                    "seq_behind",
                    "stream_behind",
                    "seq_conflict",
                    "other",
                ],
            ),
            cluster_epoch_changes: Counter::default(),
            cluster_seq_conflicts: Counter::default(),
            http_requests: ROUTES.iter().map(|_| Default::default()).collect(),
            http_durations: ROUTES.iter().map(|_| Histogram::new(HTTP)).collect(),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// One webhook request with its `result`: `accepted`, `duplicate`,
    /// `ignored`, or the error code it was answered with.
    pub fn webhook(&self, result: &'static str) {
        self.inner.webhooks.inc(result);
    }

    /// One HTTP request: its matched route template (`None`: no route
    /// matched), status and time to the response head (for the SSE stream:
    /// to the stream's start).
    pub fn http_request(&self, route: Option<&str>, status: u16, elapsed: Duration) {
        let r = route
            .and_then(|t| ROUTES.iter().position(|r| *r == t))
            .unwrap_or(ROUTES.len() - 1);
        let class = match status {
            0..300 => 0,
            300..400 => 1,
            400..500 => 2,
            _ => 3,
        };
        self.inner.http_requests[r][class].add(1);
        self.inner.http_durations[r].observe(elapsed);
    }

    /// An SSE connection opened (`+1`) or closed (`-1`).
    pub fn sse_connection(&self, delta: i64) {
        self.inner.sse_connections.add(delta);
    }

    /// An SSE connection refused for `reason` (one of [`SSE_REFUSALS`]).
    pub fn sse_refusal(&self, reason: &'static str) {
        self.inner.sse_refusals.inc(reason);
    }

    /// A TCP connection accepted (`+1`) or closed (`-1`).
    pub fn tcp_connection(&self, delta: i64) {
        self.inner.tcp_connections.add(delta);
    }

    /// A TCP connection closed at accept for `reason` (`per_ip_limit`, `total_limit`, `fd_exhausted`).
    pub fn tcp_refusal(&self, reason: &'static str) {
        self.inner.tcp_refusals.inc(reason);
    }

    /// An SSE stream ended by the server for `reason` (`revoked`, `stalled`, `expired`).
    pub fn sse_cut(&self, reason: &'static str) {
        self.inner.sse_cuts.inc(reason);
    }

    /// This node found that Redis lost data it had seen (`cause`: `epoch_missing`,
    /// `seq_behind`, `stream_behind`, `seq_conflict`) and started a new epoch.
    pub fn cluster_data_loss(&self, cause: &'static str) {
        self.inner.cluster_data_loss.inc(cause);
    }

    /// This node moved to a new cluster epoch.
    pub fn cluster_epoch_change(&self) {
        self.inner.cluster_epoch_changes.add(1);
    }

    /// A seq read twice from the shared stream with other content.
    pub fn cluster_seq_conflict(&self) {
        self.inner.cluster_seq_conflicts.add(1);
    }

    /// How old a webhook's event was when it arrived, in ms (a sender clock
    /// ahead of ours counts as 0).
    pub fn webhook_lag(&self, lag_ms: i64) {
        let ms = u64::try_from(lag_ms).unwrap_or(0);
        self.inner.webhook_lag.observe(Duration::from_millis(ms));
    }

    /// Time from a webhook's arrival to its event being queued on the hub.
    pub fn webhook_to_enqueue(&self, d: Duration) {
        self.inner.webhook_to_enqueue.observe(d);
    }

    /// A security event recorded (counted by the audit module; others need not call it).
    pub fn security_event(&self, kind: EventType) {
        self.inner.security_events.inc(kind.as_str());
    }

    /// A security event dropped because the audit queue was full.
    pub fn audit_dropped(&self) {
        self.inner.audit_dropped.add(1);
    }

    /// A security event the audit store failed to write.
    pub fn audit_write_failure(&self) {
        self.inner.audit_write_failures.add(1);
    }

    /// An alert outcome: `sent`, `failed`, `refused`, `deduplicated`, `dropped`.
    pub fn alert(&self, outcome: &'static str) {
        self.inner.alerts.inc(outcome);
    }

    /// A request whose client was not given as expected: `forwarding_ignored`
    /// or `unknown_client` (see `guard/forwarding.rs`).
    pub fn client_identity(&self, outcome: &'static str) {
        self.inner.client_identity.inc(outcome);
    }

    /// Security events dropped so far (for the health check).
    pub fn audit_dropped_count(&self) -> u64 {
        self.inner.audit_dropped.get()
    }

    /// The exposition of every metric in `format` (served with
    /// [`Format::content_type`]), with `readings` for the figures kept elsewhere.
    pub fn render(&self, format: Format, readings: &Readings) -> String {
        let mut w = Writer::new(format);
        render::all(&mut w, &self.inner, readings, process::read().as_ref());
        w.finish()
    }
}

#[cfg(test)]
mod tests;
