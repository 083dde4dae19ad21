//! Outgoing security alerts: Standard Webhooks signed POSTs.
//!
//! [`Alerter::enqueue`] never waits: it drops a burst duplicate (same type
//! and source within `alerts.dedupe_window`), pushes onto a bounded queue
//! (the oldest alert goes when it is full) and wakes [`Alerter::run`], the
//! one task that delivers, in order. A delivery is retried on network errors,
//! 5xx and 429 with exponential backoff and jitter, at most
//! [`RetryPolicy::tries`] times. Every attempt re-resolves the host, checks
//! the SSRF rule ([`super::target`]) and pins the connection to the checked
//! address; redirects and proxies are off, so nothing else is ever reached.
//!
//! Signature (Standard Webhooks): `webhook-id` (the event id, stable across
//! retries), `webhook-timestamp` (Unix seconds), `webhook-signature:
//! v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`, where the key is the
//! base64 part of the `whsec_…` secret.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use ipnet::IpNet;
use rand::{Rng, RngCore};
use reqwest::Url;
use serde::Serialize;
use tokio::sync::Notify;

use super::StoredEvent;
pub use super::alert_error::AlertError;
pub use super::signing::SigningKey;
use super::target::resolve_checked;
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;

/// How deliveries are retried.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (first included).
    pub tries: u32,
    /// Delay before the first retry; doubled each time.
    pub base: Duration,
    /// Longest delay.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            tries: 6,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1-based): `base·2^(attempt-1)`, at least
    /// `retry_after`, capped, plus up to 50 % jitter so many senders do not retry in step.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let d = exp.max(retry_after.unwrap_or_default()).min(self.cap);
        let jitter_ms = rand::rng().random_range(0..=u64::try_from(d.as_millis() / 2).unwrap_or(0));
        d + Duration::from_millis(jitter_ms)
    }
}

/// Delivery state, for the health check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AlertStatus {
    /// Alerts waiting.
    pub queued: usize,
    /// Alerts delivered.
    pub sent: u64,
    /// Alerts given up on.
    pub failed: u64,
    /// When the last delivery succeeded (Unix ms).
    pub last_success_ms: Option<i64>,
    /// Why the last delivery failed, if it did after the last success.
    pub last_error: Option<String>,
}

struct Alert {
    id: String,
    body: Vec<u8>,
}

/// The alert sender: a cheap `Clone` handle over the queue.
#[derive(Clone)]
pub struct Alerter {
    inner: Arc<Shared>,
}

struct Shared {
    url: Url,
    allowed: Vec<IpNet>,
    key: SigningKey,
    clock: Clock,
    metrics: Metrics,
    queue_size: usize,
    dedupe_ms: i64,
    queue: Mutex<VecDeque<Alert>>,
    notify: Notify,
    dedupe: Mutex<HashMap<(String, String), i64>>,
    retry: Mutex<RetryPolicy>,
    status: Mutex<AlertStatus>,
}

impl fmt::Debug for Alerter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alerter")
            .field("host", &self.inner.url.host_str())
            .finish_non_exhaustive()
    }
}

fn install_crypto() {
    static ONCE: Once = Once::new();
    // Another component may have installed it first: either way one is installed.
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Alerter {
    /// A sender to `url` (already checked by [`super::validate_alert_url`]) with the settings of `cfg.alerts`.
    pub fn new(url: Url, cfg: &Config, key: SigningKey, clock: Clock, metrics: Metrics) -> Self {
        install_crypto();
        let shared = Shared {
            url,
            allowed: cfg.alerts.allowed_private_targets.clone(),
            key,
            clock,
            metrics,
            queue_size: cfg.alerts.queue_size,
            dedupe_ms: i64::try_from(cfg.alerts.dedupe_window.as_millis()).unwrap_or(i64::MAX),
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            dedupe: Mutex::new(HashMap::new()),
            retry: Mutex::new(RetryPolicy::default()),
            status: Mutex::new(AlertStatus::default()),
        };
        Self {
            inner: Arc::new(shared),
        }
    }

    /// Replaces the retry policy (tests use short delays).
    pub fn set_retry(&self, policy: RetryPolicy) {
        if let Ok(mut r) = self.inner.retry.lock() {
            *r = policy;
        }
    }

    /// Queues an alert for `event` unless one for its type and source went out within the
    /// dedupe window. Returns whether it was queued. Never blocks on the network.
    pub fn enqueue(&self, event: &StoredEvent) -> bool {
        let source = event
            .event
            .source_ip
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
        let body = serde_json::json!({"type": "security.event", "timestamp": event.timestamp, "data": event});
        self.push(event.event.kind.as_str(), source, event.id.clone(), &body)
    }

    /// Queues the "audit store cannot write" alert (deduplicated like any other).
    pub fn enqueue_store_failure(&self, reason: &str) {
        let id = format!("alert_{:016x}", rand::rng().next_u64());
        let now = crate::clock::rfc3339_ms(self.inner.clock.now_ms());
        let body = serde_json::json!({
            "type": "audit.store_failure",
            "timestamp": now,
            "data": {"severity": "critical", "detail": reason, "timestamp": now},
        });
        self.push("AUDIT_STORE_FAILURE", "-".to_owned(), id, &body);
    }

    fn push(&self, kind: &str, source: String, id: String, body: &serde_json::Value) -> bool {
        let s = &self.inner;
        let now = s.clock.now_ms();
        if let Ok(mut seen) = s.dedupe.lock() {
            let key = (kind.to_owned(), source);
            if seen
                .get(&key)
                .is_some_and(|&at| now.saturating_sub(at) < s.dedupe_ms)
            {
                s.metrics.alert("deduplicated");
                return false;
            }
            if seen.len() >= 10_000 {
                seen.retain(|_, at| now.saturating_sub(*at) < s.dedupe_ms);
            }
            seen.insert(key, now);
        }
        let body = serde_json::to_vec(body).expect("a JSON value always serialises");
        if let Ok(mut q) = s.queue.lock() {
            q.push_back(Alert { id, body });
            while q.len() > s.queue_size {
                q.pop_front();
                s.metrics.alert("dropped");
            }
        }
        s.notify.notify_one();
        true
    }

    /// Alerts waiting now.
    pub fn queued(&self) -> usize {
        self.inner.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Delivery state.
    pub fn status(&self) -> AlertStatus {
        let mut st = self
            .inner
            .status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        st.queued = self.queued();
        st
    }

    /// Delivers queued alerts, one at a time, until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let next = self.inner.queue.lock().ok().and_then(|mut q| q.pop_front());
            match next {
                Some(alert) => tokio::select! {
                    () = &mut shutdown => return,
                    () = self.deliver(alert) => {}
                },
                None => tokio::select! {
                    () = &mut shutdown => return,
                    () = self.inner.notify.notified() => {}
                },
            }
        }
    }

    async fn deliver(&self, alert: Alert) {
        let policy = self.inner.retry.lock().map(|r| *r).unwrap_or_default();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.send_once(&alert).await {
                Ok(()) => return self.settle(None),
                Err(e) => e,
            };
            if !err.retryable() || attempt >= policy.tries {
                tracing::warn!(alert.id = %alert.id, attempts = attempt, error = %err, "security alert not delivered");
                return self.settle(Some(err));
            }
            let retry_after = match &err {
                AlertError::Status { retry_after, .. } => *retry_after,
                _ => None,
            };
            tracing::debug!(alert.id = %alert.id, attempt, error = %err, "security alert failed; retrying");
            tokio::time::sleep(policy.delay(attempt, retry_after)).await;
        }
    }

    fn settle(&self, err: Option<AlertError>) {
        let s = &self.inner;
        let outcome = match &err {
            None => "sent",
            Some(AlertError::Forbidden { .. } | AlertError::Url(_)) => "refused",
            Some(_) => "failed",
        };
        s.metrics.alert(outcome);
        if let Ok(mut st) = s.status.lock() {
            match err {
                None => {
                    st.sent += 1;
                    st.last_success_ms = Some(s.clock.now_ms());
                    st.last_error = None;
                }
                Some(e) => {
                    st.failed += 1;
                    st.last_error = Some(e.to_string());
                }
            }
        }
    }

    async fn send_once(&self, alert: &Alert) -> Result<(), AlertError> {
        let s = &self.inner;
        let addr = resolve_checked(&s.url, &s.allowed).await?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10));
        if let Some(host) = s
            .url
            .host_str()
            .filter(|h| h.parse::<IpAddr>().is_err() && !h.starts_with('['))
        {
            builder = builder.resolve(host, addr);
        }
        let client = builder
            .build()
            .map_err(|e| AlertError::Network(e.without_url().to_string()))?;
        let ts = s.clock.now_secs();
        let resp = client
            .post(s.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &alert.id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", s.key.sign(&alert.id, ts, &alert.body))
            .body(alert.body.clone())
            .send()
            .await
            .map_err(|e| AlertError::Network(e.without_url().to_string()))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(AlertError::Status {
            status: status.as_u16(),
            retry_after,
        })
    }
}
