//! The guard's usage entry points and its statistics: per-client API usage
//! and per-source webhook rate feed the anomaly counters (`anomaly.rs`);
//! [`Guard::stats`] is the snapshot for metrics and status.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Guard;
use super::anomaly::{Rule, WEBHOOK_MIN_VOLUME};
use super::client::ClientKey;
use super::types::GuardStats;
use crate::audit::{EventType, Severity};

/// Longest endpoint name put in an event.
const MAX_ENDPOINT_LEN: usize = 128;

/// Monotonic counters since start.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub rate_limited: AtomicU64,
    /// Rate-limit refusals per policy (indexed by `Policy as usize`).
    pub rate_limited_by_policy: [AtomicU64; super::policy::Policy::COUNT],
    pub refused_blocked: AtomicU64,
    pub refused_locked: AtomicU64,
    pub auth_failures: AtomicU64,
    pub lockouts: AtomicU64,
    pub anomalies: AtomicU64,
    pub api_requests: AtomicU64,
    pub response_micros: AtomicU64,
}

impl Counters {
    /// Adds one.
    pub(crate) fn bump(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Clients and keys: the configured hourly threshold, and a baseline jump
/// needs at least a tenth of it.
pub(crate) fn client_rule(threshold: u64) -> Rule {
    Rule {
        threshold: Some(threshold),
        min_volume: (threshold / 10).max(1),
    }
}

/// Webhook sources: no absolute threshold, only a jump of at least
/// [`WEBHOOK_MIN_VOLUME`] an hour above the source's baseline.
const WEBHOOK_RULE: Rule = Rule {
    threshold: None,
    min_volume: WEBHOOK_MIN_VOLUME,
};

impl Guard {
    /// Records one handled API request: `endpoint` is the matched route
    /// pattern (never the raw URI — it may hold a token), `response_time` how
    /// long it took. Raises `UNUSUAL_API_USAGE` (alert only) when the client
    /// passes `unusual_usage_threshold` requests in an hour or jumps far above
    /// its own baseline (the rule is in `anomaly.rs`).
    pub fn record_api_usage(&self, endpoint: &str, ip: IpAddr, response_time: Duration) {
        let (ip, key, now) = self.subject(ip);
        let c = &self.inner.counters;
        c.bump(&c.api_requests);
        let micros = u64::try_from(response_time.as_micros()).unwrap_or(u64::MAX);
        c.response_micros.fetch_add(micros, Ordering::Relaxed);
        let rule = self.client_rule();
        if let Some(anomaly) = self
            .inner
            .clients
            .upsert(&key, now, |s| s.api_usage.hit(now, rule))
        {
            c.bump(&c.anomalies);
            let endpoint: String = endpoint.chars().take(MAX_ENDPOINT_LEN).collect();
            let event = self.event(EventType::UnusualApiUsage, Severity::High, ip, key);
            self.emit(
                anomaly.details(
                    event
                        .detail("subject", "client")
                        .detail("endpoint", endpoint),
                ),
            );
        }
    }

    /// Counts an admitted webhook delivery from `ip` for the per-source rate anomaly.
    pub(super) fn count_webhook(&self, ip: IpAddr, key: ClientKey, now: i64) {
        if let Some(anomaly) = self
            .inner
            .clients
            .upsert(&key, now, |s| s.webhook_usage.hit(now, WEBHOOK_RULE))
        {
            let c = &self.inner.counters;
            c.bump(&c.anomalies);
            let event = self.event(EventType::UnusualApiUsage, Severity::High, ip, key);
            self.emit(anomaly.details(event.detail("subject", "webhook_source")));
        }
    }

    /// A snapshot for metrics and status. Counting active lockouts visits
    /// every tracked client (shard by shard), so call it per scrape, not per request.
    pub fn stats(&self) -> GuardStats {
        let inner = &self.inner;
        let now = inner.clock.now_ms();
        let mut active_lockouts = 0;
        inner
            .clients
            .for_each(|_, c| active_lockouts += usize::from(c.lock.locked_until(now).is_some()));
        let c = &inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GuardStats {
            tracked_clients: inner.clients.len(),
            max_tracked_clients: inner.clients.capacity(),
            tracked_keys: inner.keys.len(),
            active_lockouts,
            lockouts_total: get(&c.lockouts),
            auth_failures_total: get(&c.auth_failures),
            rate_limited_total: get(&c.rate_limited),
            rate_limited_by_policy: c.rate_limited_by_policy.each_ref().map(get),
            blocked_total: get(&c.refused_blocked),
            locked_out_total: get(&c.refused_locked),
            anomalies_total: get(&c.anomalies),
            evictions_total: inner.clients.evicted() + inner.keys.evicted(),
            api_requests_total: get(&c.api_requests),
            api_response_micros_total: get(&c.response_micros),
            approx_memory_bytes: inner.clients.approx_bytes() + inner.keys.approx_bytes(),
        }
    }
}
