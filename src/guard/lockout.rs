//! Failed-authentication lockouts (fail2ban-like) and credential-stuffing
//! detection, as pure state machines over `now_ms`.
//!
//! Per client:
//! - Only 401s count (the caller never reports a 403 denial here).
//! - The failure times within `failure_window` are kept exactly (at most
//!   `max_failed_attempts` of them). When they reach `max_failed_attempts`
//!   the client is locked out for `lockout_duration`: the request that made
//!   the last failure is still answered 401, the next one is refused. Locking
//!   clears the failures, so the client starts afresh when the lockout ends.
//! - A success does not clear failures: otherwise anyone holding one valid
//!   token could interleave it with unlimited guesses.
//! - `SUSPICIOUS_LOGIN` fires when the failures in the window first reach
//!   `ceil(max_failed_attempts / 2)` (at most once per window);
//!   `MULTIPLE_FAILED_AUTH` once per lockout; `IP_BLOCKED` once per lockout,
//!   at the first refused request.
//! - Allowlisted clients are never locked out; their failures are still
//!   counted, and reaching the limit raises `MULTIPLE_FAILED_AUTH` (once per
//!   window) with `locked: false`.
//!
//! Per key id: the distinct clients failing against it within the window;
//! reaching `key_failure_clients` raises `MULTIPLE_FAILED_AUTH` once per
//! window. It never locks anything: a key id is not a secret, and an
//! attacker must not be able to lock LiveKit's correctly signed webhooks out.

use super::client::ClientKey;

/// Most distinct clients remembered per key id (caps `key_failure_clients`).
pub const MAX_KEY_FAILURE_CLIENTS: usize = 1024;

/// The lockout settings, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    /// Failures in the window that lock a client out (≥ 1).
    pub max_failures: u32,
    /// Window in which failures count.
    pub window_ms: i64,
    /// How long a lockout lasts.
    pub lockout_ms: i64,
}

impl Rules {
    /// Failures that raise `SUSPICIOUS_LOGIN`: half the limit, rounded up.
    pub(crate) fn suspicious_at(&self) -> u32 {
        self.max_failures.div_ceil(2).max(1)
    }
}

/// A client's failures and lockout.
#[derive(Debug, Default)]
pub(crate) struct LockState {
    failures: Vec<i64>,
    locked_until_ms: i64,
    blocked_reported: bool,
    suspicious_reported_ms: Option<i64>,
    alerted_ms: Option<i64>,
}

/// What one recorded failure led to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// Failures in the window, this one included.
    pub failures: u32,
    /// First burst: record `SUSPICIOUS_LOGIN`.
    pub suspicious: bool,
    /// The client is (now or already) locked out until then.
    pub locked_until_ms: Option<i64>,
    /// This failure started the lockout: record `MULTIPLE_FAILED_AUTH`.
    pub newly_locked: bool,
    /// An allowlisted client reached the limit: record `MULTIPLE_FAILED_AUTH` (not locked).
    pub allowlisted_alert: bool,
}

impl LockState {
    /// The end of the active lockout, if one is active at `now_ms`.
    pub(crate) fn locked_until(&self, now_ms: i64) -> Option<i64> {
        (now_ms < self.locked_until_ms).then_some(self.locked_until_ms)
    }

    /// Failures within the window before `now_ms`.
    pub(crate) fn failures(&self, now_ms: i64, rules: Rules) -> u32 {
        let n = self
            .failures
            .iter()
            .filter(|&&t| now_ms - t < rules.window_ms)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Records one failed authentication at `now_ms`.
    pub(crate) fn record_failure(&mut self, now_ms: i64, rules: Rules, allowlisted: bool) -> Step {
        if let Some(until) = self.locked_until(now_ms) {
            // Raced past the lockout check: already locked, nothing to add.
            return Step {
                locked_until_ms: Some(until),
                ..Step::default()
            };
        }
        self.failures.retain(|&t| now_ms - t < rules.window_ms);
        let max = usize::try_from(rules.max_failures)
            .unwrap_or(usize::MAX)
            .max(1);
        if self.failures.len() >= max {
            self.failures.remove(0); // only reachable when allowlisted
        }
        self.failures.push(now_ms);
        let failures = u32::try_from(self.failures.len()).unwrap_or(u32::MAX);
        let mut step = Step {
            failures,
            ..Step::default()
        };
        if failures >= rules.suspicious_at()
            && !within(self.suspicious_reported_ms, now_ms, rules.window_ms)
        {
            self.suspicious_reported_ms = Some(now_ms);
            step.suspicious = true;
        }
        if failures < rules.max_failures {
            return step;
        }
        if allowlisted {
            step.allowlisted_alert = !within(self.alerted_ms, now_ms, rules.window_ms);
            if step.allowlisted_alert {
                self.alerted_ms = Some(now_ms);
            }
            return step;
        }
        self.locked_until_ms = now_ms.saturating_add(rules.lockout_ms);
        self.failures = Vec::new();
        self.blocked_reported = false;
        self.suspicious_reported_ms = None;
        Step {
            locked_until_ms: Some(self.locked_until_ms),
            newly_locked: true,
            ..step
        }
    }

    /// True the first time a refusal is reported during the current lockout.
    pub(crate) fn take_blocked_report(&mut self) -> bool {
        !std::mem::replace(&mut self.blocked_reported, true)
    }

    /// Locks out until `until_ms` (a lockout decided by the cluster), unless a
    /// later one is active; true if the client was not locked out at `now_ms`.
    pub(crate) fn impose(&mut self, until_ms: i64, now_ms: i64) -> bool {
        let was_free = self.locked_until(now_ms).is_none();
        if until_ms > self.locked_until_ms {
            if was_free {
                self.failures = Vec::new();
                self.blocked_reported = false;
            }
            self.locked_until_ms = until_ms;
        }
        was_free && until_ms > now_ms
    }

    /// Lifts the lockout and forgets the failures; true if one was active.
    pub(crate) fn unlock(&mut self, now_ms: i64) -> bool {
        let was = self.locked_until(now_ms).is_some();
        *self = Self::default();
        was
    }
}

fn within(at: Option<i64>, now_ms: i64, window_ms: i64) -> bool {
    at.is_some_and(|t| now_ms - t < window_ms)
}

/// Distinct clients failing against one key id.
#[derive(Debug, Default)]
pub(crate) struct KeyFailures {
    clients: Vec<(ClientKey, i64)>,
    alerted_ms: Option<i64>,
}

impl KeyFailures {
    /// Records a failure from `client`; returns the number of distinct
    /// clients in the window when that reaches `threshold` and no alert was
    /// raised in this window yet.
    pub(crate) fn record(
        &mut self,
        client: ClientKey,
        now_ms: i64,
        window_ms: i64,
        threshold: u32,
    ) -> Option<usize> {
        self.clients.retain(|&(_, t)| now_ms - t < window_ms);
        let threshold = usize::try_from(threshold)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_KEY_FAILURE_CLIENTS);
        match self.clients.iter_mut().find(|(c, _)| *c == client) {
            Some(seen) => seen.1 = now_ms,
            None => {
                if self.clients.len() >= threshold {
                    self.clients.remove(0);
                }
                self.clients.push((client, now_ms));
            }
        }
        let distinct = self.clients.len();
        if distinct < threshold || within(self.alerted_ms, now_ms, window_ms) {
            return None;
        }
        self.alerted_ms = Some(now_ms);
        Some(distinct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: Rules = Rules {
        max_failures: 5,
        window_ms: 900_000,
        lockout_ms: 900_000,
    };

    #[test]
    fn fifth_failure_locks_and_events_fire_once() {
        let mut s = LockState::default();
        let steps: Vec<Step> = (0..5)
            .map(|i| s.record_failure(1000 + i, RULES, false))
            .collect();
        assert_eq!(
            steps.iter().map(|s| s.failures).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(steps.iter().filter(|s| s.suspicious).count(), 1);
        assert!(steps[2].suspicious, "ceil(5/2) = 3");
        assert!(steps[4].newly_locked && steps[..4].iter().all(|s| s.locked_until_ms.is_none()));
        assert_eq!(s.locked_until(1004), Some(901_004));
        assert_eq!(s.locked_until(901_004), None);
        assert!(s.take_blocked_report() && !s.take_blocked_report());
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let mut s = LockState::default();
        for i in 0..4 {
            s.record_failure(i * 300_000, RULES, false); // 0, 5, 10, 15 min
        }
        // At 15 min the first one (0 min) has left the window: 3 in it, then 4.
        assert_eq!(s.failures(900_000, RULES), 3);
        assert_eq!(s.record_failure(900_001, RULES, false).failures, 4);
    }

    #[test]
    fn allowlisted_is_never_locked_but_counted_and_alerted_once() {
        let mut s = LockState::default();
        let steps: Vec<Step> = (0..20).map(|i| s.record_failure(i, RULES, true)).collect();
        assert!(steps.iter().all(|s| s.locked_until_ms.is_none()));
        assert_eq!(steps.iter().filter(|s| s.allowlisted_alert).count(), 1);
        assert_eq!(s.failures(20, RULES), 5);
    }

    #[test]
    fn key_failures_need_distinct_clients() {
        let mut k = KeyFailures::default();
        let c = |n: u8| ClientKey::V4([10, 0, 0, n]);
        assert!(
            (0..10).all(|t| k.record(c(1), t, 900_000, 3).is_none()),
            "one client is not stuffing"
        );
        assert_eq!(k.record(c(2), 20, 900_000, 3), None);
        assert_eq!(k.record(c(3), 30, 900_000, 3), Some(3));
        assert_eq!(k.record(c(4), 40, 900_000, 3), None, "once per window");
        assert_eq!(
            k.record(c(5), 950_000, 900_000, 3),
            None,
            "old clients left the window"
        );
    }
}
