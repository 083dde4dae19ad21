//! The refusals: the blocklist, lockouts and rate limits, each counted and
//! reported once as a security event (see the deduplication rules in the
//! module docs of `guard.rs`).

use std::net::IpAddr;
use std::time::Duration;

use super::client::{ClientKey, is_in};
use super::limits::{self, Limiter, RateInfo};
use super::{Guard, Refusal, RefusalKind};
use crate::audit::{EventType, Severity};

impl Guard {
    pub(super) fn refuse_blocked(
        &self,
        ip: IpAddr,
        key: ClientKey,
        now: i64,
    ) -> Result<(), Refusal> {
        self.refuse_blocklisted(ip, key, now)?;
        match self.locked_until(key, now) {
            Some(until) => Err(self.locked_out(ip, key, now, until)),
            None => Ok(()),
        }
    }

    /// The static blocklist (`IP_BLOCKED` once per `lockout_duration`).
    pub(super) fn refuse_blocklisted(
        &self,
        ip: IpAddr,
        key: ClientKey,
        now: i64,
    ) -> Result<(), Refusal> {
        let inner = &self.inner;
        if !is_in(ip, &inner.settings.blocklist) {
            return Ok(());
        }
        inner.counters.bump(&inner.counters.refused_blocked);
        let dedupe_ms = inner.settings.rules.lockout_ms;
        let report = inner.clients.upsert(&key, now, |c| {
            let due = c.blocked_reported_ms == 0 || now - c.blocked_reported_ms >= dedupe_ms;
            if due {
                c.blocked_reported_ms = now;
            }
            due
        });
        if report {
            self.emit(
                self.event(EventType::IpBlocked, Severity::Medium, ip, key)
                    .detail("reason", "blocklist"),
            );
        }
        Err(Refusal::new(RefusalKind::Blocked))
    }

    /// The end of `key`'s lockout, if it is locked out at `now`.
    pub(super) fn locked_until(&self, key: ClientKey, now: i64) -> Option<i64> {
        self.inner
            .clients
            .get_mut(&key, |c| c.lock.locked_until(now))
            .flatten()
    }

    /// A refusal for a lockout until `until`: counted, `IP_BLOCKED` once per
    /// lockout, `Retry-After` the time left.
    pub(super) fn locked_out(&self, ip: IpAddr, key: ClientKey, now: i64, until: i64) -> Refusal {
        let inner = &self.inner;
        inner.counters.bump(&inner.counters.refused_locked);
        let report = inner
            .clients
            .get_mut(&key, |c| c.lock.take_blocked_report())
            .unwrap_or(false);
        if report {
            let event = self
                .event(EventType::IpBlocked, Severity::Medium, ip, key)
                .detail("reason", "lockout");
            self.emit(event.detail("until", crate::clock::rfc3339_ms(until)));
        }
        let retry = limits::ceil_secs(Duration::from_millis(
            u64::try_from(until - now).unwrap_or(0),
        ))
        .max(1);
        Refusal {
            retry_after_secs: Some(retry),
            ..Refusal::new(RefusalKind::LockedOut)
        }
    }

    /// The rate limit of `limiter`'s policy: first a refusal the cluster
    /// decided (the client's requests on all nodes together are over the
    /// limit), then this node's own limiter; an admitted request is counted
    /// for the cluster.
    pub(super) fn limit(
        &self,
        limiter: &Limiter,
        ip: IpAddr,
        key: ClientKey,
        now: i64,
    ) -> Result<RateInfo, Refusal> {
        let rates = &self.inner.rates;
        if let Some(until) = rates.limited_until(&key, limiter.policy(), now) {
            let wait = Duration::from_millis(u64::try_from(until - now).unwrap_or(0));
            return Err(self.rate_limited(limiter, limiter.refusal(wait), ip, key, now, true));
        }
        match limiter.check(&key) {
            Ok(info) => {
                rates.count(&key, limiter.policy());
                Ok(info)
            }
            Err(limited) => Err(self.rate_limited(limiter, limited, ip, key, now, false)),
        }
    }

    /// Counts a rate-limit refusal, records `RATE_LIMIT_EXCEEDED` once per
    /// client, policy and window, and builds the refusal.
    pub(super) fn rate_limited(
        &self,
        limiter: &Limiter,
        limited: limits::Limited,
        ip: IpAddr,
        key: ClientKey,
        now: i64,
        cluster: bool,
    ) -> Refusal {
        let inner = &self.inner;
        inner.counters.bump(&inner.counters.rate_limited);
        let slot = limiter.policy() as usize;
        inner
            .counters
            .bump(&inner.counters.rate_limited_by_policy[slot]);
        let window_ms =
            i64::try_from(limited.info.window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let due = inner.clients.upsert(&key, now, |c| {
            let last = &mut c.rate_reported_ms[slot];
            let due = *last == 0 || now - *last >= window_ms;
            if due {
                *last = now;
            }
            due
        });
        if due {
            let info = &limited.info;
            let event = self
                .event(EventType::RateLimitExceeded, Severity::Medium, ip, key)
                .detail("policy", info.policy_name)
                .detail("limit", info.limit)
                .detail("window_seconds", info.window_secs);
            self.emit(if cluster {
                event.detail("scope", "cluster")
            } else {
                event
            });
        }
        Refusal {
            retry_after_secs: Some(limited.retry_after_secs),
            rate: Some(limited.info),
            ..Refusal::new(RefusalKind::RateLimited)
        }
    }
}
