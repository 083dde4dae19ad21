//! The guard's authentication entry points: failures (lockouts, credential
//! stuffing), successes (per-key usage), admin unblock and the blocked list.
//! The rules themselves are in `lockout.rs`.

use std::net::IpAddr;

use super::client::{ClientKey, is_in};
use super::state::key_id as cut_key_id;
use super::types::{Blocked, FailureOutcome};
use super::{Guard, SharedUpdate, usage};
use crate::audit::{EventType, Severity};
use crate::clock::rfc3339_ms;

impl Guard {
    /// Records a failed authentication (a 401 — never a 403 denial) from `ip`,
    /// against `key_id` when the credential named one, for `identity` (already
    /// hashed) when known. May lock the client out; never locks a key.
    pub fn record_auth_failure(
        &self,
        ip: IpAddr,
        key_id: Option<&str>,
        identity: Option<&str>,
    ) -> FailureOutcome {
        let (ip, key, now) = self.subject(ip);
        let inner = &self.inner;
        let rules = inner.settings.rules;
        let allowlisted = is_in(ip, &inner.settings.allowlist);
        inner.counters.bump(&inner.counters.auth_failures);
        let step = inner.clients.upsert(&key, now, |c| {
            c.lock.record_failure(now, rules, allowlisted)
        });
        let with_ids = |kind, severity| {
            let mut e = self
                .event(kind, severity, ip, key)
                .detail("failures", step.failures);
            if let Some(h) = identity {
                e = e.identity(h);
            }
            if let Some(k) = key_id {
                e = e.key(cut_key_id(k));
            }
            e.detail("window_minutes", rules.window_ms / 60_000)
        };
        if step.suspicious {
            self.emit(with_ids(EventType::SuspiciousLogin, Severity::Medium));
        }
        if step.newly_locked {
            inner.counters.bump(&inner.counters.lockouts);
            let until = step.locked_until_ms.map(rfc3339_ms).unwrap_or_default();
            let event =
                with_ids(EventType::MultipleFailedAuth, Severity::High).detail("reason", "lockout");
            self.emit(event.detail("locked", true).detail("until", until));
        }
        if step.allowlisted_alert {
            let event = with_ids(EventType::MultipleFailedAuth, Severity::High)
                .detail("reason", "allowlisted_client");
            self.emit(event.detail("locked", false));
        }
        if let Some(k) = key_id {
            self.key_failure(cut_key_id(k), ip, key, now);
        }
        if !allowlisted {
            self.share(SharedUpdate::Failure {
                client: key,
                at_ms: now,
            });
        }
        FailureOutcome {
            failures_in_window: step.failures,
            locked_until_ms: step.locked_until_ms,
            newly_locked: step.newly_locked,
            allowlisted,
        }
    }

    fn key_failure(&self, key_id: &str, ip: IpAddr, client: ClientKey, now: i64) {
        let s = &self.inner.settings;
        let (window, threshold) = (s.rules.window_ms, s.key_failure_clients);
        let hit = self.inner.keys.upsert(key_id, now, |k| {
            k.failures.record(client, now, window, threshold)
        });
        if let Some(distinct) = hit {
            // Credential stuffing: alert loudly, block nothing (see lockout.rs).
            let event = self
                .event(EventType::MultipleFailedAuth, Severity::High, ip, client)
                .key(key_id);
            let event = event
                .detail("reason", "failures_against_key")
                .detail("distinct_clients", distinct);
            self.emit(
                event
                    .detail("window_minutes", window / 60_000)
                    .detail("locked", false),
            );
        }
    }

    /// Records a successful authentication; counts the key's usage for
    /// `UNUSUAL_API_USAGE`. Does not clear the client's failures (see lockout.rs).
    pub fn record_auth_success(&self, ip: IpAddr, key_id: Option<&str>) {
        let Some(k) = key_id else { return };
        let (ip, client, now) = self.subject(ip);
        let k = cut_key_id(k);
        let rule = self.client_rule();
        if let Some(anomaly) = self.inner.keys.upsert(k, now, |s| s.usage.hit(now, rule)) {
            self.inner.counters.bump(&self.inner.counters.anomalies);
            let event = self
                .event(EventType::UnusualApiUsage, Severity::High, ip, client)
                .key(k);
            self.emit(anomaly.details(event.detail("subject", "key")));
        }
    }

    /// The library entry point of the original API: a thin wrapper over
    /// [`Guard::record_auth_success`] and [`Guard::record_auth_failure`].
    pub fn record_auth_attempt(
        &self,
        ip: IpAddr,
        success: bool,
        identity: Option<&str>,
    ) -> Option<FailureOutcome> {
        if success {
            self.record_auth_success(ip, None);
            None
        } else {
            Some(self.record_auth_failure(ip, None, identity))
        }
    }

    /// Failed authentications of `ip`'s client within the failure window
    /// (allowlisted clients included; 0 right after a lockout starts).
    pub fn failure_count(&self, ip: IpAddr) -> u32 {
        let (_, key, now) = self.subject(ip);
        let rules = self.inner.settings.rules;
        self.inner
            .clients
            .get_mut(&key, |c| c.lock.failures(now, rules))
            .unwrap_or(0)
    }

    /// Lifts the lockout of `ip`'s client (admin action) and forgets its
    /// failures; true if a lockout was active. The static blocklist is config
    /// and cannot be lifted here.
    pub fn unblock(&self, ip: IpAddr) -> bool {
        let (_, key, now) = self.subject(ip);
        self.share(SharedUpdate::Unblock { client: key });
        self.inner
            .clients
            .get_mut(&key, |c| c.lock.unlock(now))
            .unwrap_or(false)
    }

    /// Clients locked out now, soonest release first (the static blocklist
    /// is config and not listed). Visits every tracked client: for status
    /// pages, not for the request path.
    pub fn blocked(&self) -> Vec<Blocked> {
        let now = self.inner.clock.now_ms();
        let mut out = Vec::new();
        self.inner.clients.for_each(|k, c| {
            if let Some(until_ms) = c.lock.locked_until(now) {
                out.push(Blocked {
                    client: k.to_string(),
                    until_ms,
                });
            }
        });
        out.sort_by(|a, b| (a.until_ms, &a.client).cmp(&(b.until_ms, &b.client)));
        out
    }

    pub(super) fn client_rule(&self) -> super::anomaly::Rule {
        usage::client_rule(self.inner.settings.usage_threshold)
    }
}
