//! Repeated identical denials, counted instead of written one by one.
//!
//! A dashboard or script that retries a refused request every few seconds
//! would otherwise append one `UNAUTHORIZED_ACCESS` entry per attempt to the
//! hash chain and bury everything else. The chain is append-only, so the
//! counting happens before an event is appended: the first of a run is
//! written as usual; identical ones from the same client within the window
//! after it are only counted; once the window is over, one summary entry
//! (the same event plus `count`, `first_seen` and `last_seen` of the repeats)
//! is written. Never lost: a run that is still open at shutdown is written
//! by [`super::Audit::close`], and when too many runs are open at once, new
//! ones are written one by one rather than dropped.
//!
//! "Identical" means every field but the time: type, severity, client
//! address, key id, hashed identity and every detail (the route and the
//! reason among them). Only the denial types in [`COALESCED`] are counted.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{EventType, NewEvent};
use crate::clock::rfc3339_ms;

/// The event types whose identical repeats are counted.
pub const COALESCED: [EventType; 1] = [EventType::UnauthorizedAccess];

/// How long after the first of a run its repeats are counted.
pub const WINDOW_MS: i64 = 60_000;

/// Runs kept open at once; past this, new runs are not counted (written one by one).
const MAX_RUNS: usize = 10_000;

/// One run: the first event, and the repeats counted since.
struct Run {
    event: NewEvent,
    started_ms: i64,
    repeats: u64,
    first_ms: i64,
    last_ms: i64,
}

impl Run {
    /// The summary entry of the repeats, if there were any.
    fn summary(self) -> Option<NewEvent> {
        (self.repeats > 0).then(|| {
            self.event
                .detail("count", self.repeats)
                .detail("first_seen", rfc3339_ms(self.first_ms))
                .detail("last_seen", rfc3339_ms(self.last_ms))
                .detail("window_seconds", WINDOW_MS / 1000)
        })
    }
}

/// What to append for an offered event.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    /// Summaries of runs whose window is over, to append first (oldest run first).
    pub summaries: Vec<NewEvent>,
    /// Whether the offered event itself is appended (false: it was counted).
    pub write: bool,
}

/// The open runs, keyed by the event's content.
#[derive(Default)]
pub struct Coalescer {
    runs: Mutex<Runs>,
}

struct Runs {
    open: HashMap<String, Run>,
    /// The earliest end of an open run's window (`i64::MAX` when none): sweeps before it are free.
    next_due_ms: i64,
}

impl Default for Runs {
    fn default() -> Self {
        Self {
            open: HashMap::new(),
            next_due_ms: i64::MAX,
        }
    }
}

impl Coalescer {
    /// Decides what to append for `event` at `now_ms`: events of other types
    /// always pass; a repeat within its run's window is counted instead.
    pub fn offer(&self, event: &NewEvent, now_ms: i64) -> Verdict {
        let Ok(mut runs) = self.runs.lock() else {
            return Verdict {
                summaries: Vec::new(),
                write: true,
            };
        };
        let summaries = runs.take_due(now_ms);
        if !COALESCED.contains(&event.kind) {
            return Verdict {
                summaries,
                write: true,
            };
        }
        let Some(key) = key_of(event) else {
            return Verdict {
                summaries,
                write: true,
            };
        };
        if let Some(run) = runs.open.get_mut(&key) {
            if run.repeats == 0 {
                run.first_ms = now_ms;
            }
            run.repeats += 1;
            run.last_ms = now_ms;
            return Verdict {
                summaries,
                write: false,
            };
        }
        if runs.open.len() < MAX_RUNS {
            let run = Run {
                event: event.clone(),
                started_ms: now_ms,
                repeats: 0,
                first_ms: now_ms,
                last_ms: now_ms,
            };
            runs.next_due_ms = runs.next_due_ms.min(now_ms + WINDOW_MS);
            runs.open.insert(key, run);
        }
        Verdict {
            summaries,
            write: true,
        }
    }

    /// Summaries of the runs whose window is over at `now_ms` (they are closed).
    pub fn due(&self, now_ms: i64) -> Vec<NewEvent> {
        self.runs
            .lock()
            .map(|mut r| r.take_due(now_ms))
            .unwrap_or_default()
    }

    /// Closes every run, over or not, and returns their summaries (shutdown).
    pub fn drain(&self) -> Vec<NewEvent> {
        self.due(i64::MAX)
    }

    /// Closes the runs about one of `identities` (hashed) and returns their
    /// summaries: written before that person's erasure, they are erased with
    /// the rest instead of landing after it.
    pub fn drain_about(&self, identities: &[String]) -> Vec<NewEvent> {
        let Ok(mut runs) = self.runs.lock() else {
            return Vec::new();
        };
        let about: Vec<String> = runs
            .open
            .iter()
            .filter(|(_, r)| {
                r.event
                    .identity
                    .as_deref()
                    .is_some_and(|i| identities.iter().any(|n| n == i))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut closed: Vec<Run> = about.iter().filter_map(|k| runs.open.remove(k)).collect();
        closed.sort_by_key(|r| r.started_ms);
        closed.into_iter().filter_map(Run::summary).collect()
    }

    /// Runs open now (for tests and health).
    pub fn open_runs(&self) -> usize {
        self.runs.lock().map(|r| r.open.len()).unwrap_or(0)
    }
}

impl Runs {
    fn take_due(&mut self, now_ms: i64) -> Vec<NewEvent> {
        if self.open.is_empty() || now_ms < self.next_due_ms {
            if self.open.is_empty() {
                self.next_due_ms = i64::MAX;
            }
            return Vec::new();
        }
        let over: Vec<String> = self
            .open
            .iter()
            .filter(|(_, r)| now_ms.saturating_sub(r.started_ms) >= WINDOW_MS)
            .map(|(k, _)| k.clone())
            .collect();
        let mut closed: Vec<Run> = over.iter().filter_map(|k| self.open.remove(k)).collect();
        closed.sort_by_key(|r| r.started_ms);
        self.next_due_ms = self
            .open
            .values()
            .map(|r| r.started_ms.saturating_add(WINDOW_MS))
            .min()
            .unwrap_or(i64::MAX);
        closed.into_iter().filter_map(Run::summary).collect()
    }
}

/// Every field but the time, as one string.
fn key_of(event: &NewEvent) -> Option<String> {
    serde_json::to_string(event).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audit::Severity;
    use crate::clock::Clock;

    const T0: i64 = 1_700_000_000_000;

    fn denial(ip: &str, reason: &str) -> NewEvent {
        NewEvent::new(EventType::UnauthorizedAccess, Severity::Medium)
            .ip(ip.parse().expect("ip"))
            .key("APIkey")
            .detail("route", "/api/events")
            .detail("reason", reason)
    }

    #[test]
    fn the_first_is_written_repeats_are_counted_and_summarised_after_the_window() {
        let clock = Clock::manual(T0);
        let c = Coalescer::default();
        let e = denial("203.0.113.7", "no room");
        assert_eq!(
            c.offer(&e, clock.now_ms()),
            Verdict {
                summaries: vec![],
                write: true
            }
        );
        for _ in 0..20 {
            clock.advance(Duration::from_secs(2));
            let v = c.offer(&e, clock.now_ms());
            assert!(!v.write && v.summaries.is_empty(), "a repeat is counted");
        }
        // 40 s after the first: still inside the window.
        assert!(c.due(clock.now_ms()).is_empty());
        clock.set_ms(T0 + WINDOW_MS - 1);
        assert!(c.due(clock.now_ms()).is_empty(), "one ms before the end");
        clock.set_ms(T0 + WINDOW_MS);
        let summaries = c.due(clock.now_ms());
        assert_eq!(summaries.len(), 1);
        let s = &summaries[0];
        assert_eq!(s.kind, EventType::UnauthorizedAccess);
        assert_eq!(s.source_ip, e.source_ip);
        assert_eq!(s.details["reason"], "no room");
        assert_eq!(s.details["count"], 20);
        assert_eq!(s.details["first_seen"], rfc3339_ms(T0 + 2_000));
        assert_eq!(s.details["last_seen"], rfc3339_ms(T0 + 40_000));
        assert_eq!(c.open_runs(), 0);
        // The run is closed: the next one is written again.
        assert!(c.offer(&e, clock.now_ms()).write);
    }

    #[test]
    fn a_run_without_repeats_leaves_no_summary() {
        let c = Coalescer::default();
        assert!(c.offer(&denial("203.0.113.7", "x"), T0).write);
        assert!(c.due(T0 + WINDOW_MS).is_empty());
        assert_eq!(c.open_runs(), 0);
    }

    #[test]
    fn another_client_reason_or_type_is_not_a_repeat() {
        let c = Coalescer::default();
        assert!(c.offer(&denial("203.0.113.7", "a"), T0).write);
        assert!(c.offer(&denial("203.0.113.8", "a"), T0 + 1).write, "client");
        assert!(c.offer(&denial("203.0.113.7", "b"), T0 + 2).write, "reason");
        let other = NewEvent::new(EventType::RateLimitExceeded, Severity::Medium)
            .ip("203.0.113.7".parse().expect("ip"));
        assert!(c.offer(&other, T0 + 3).write, "type");
        assert!(
            c.offer(&other, T0 + 4).write,
            "types not coalesced always pass"
        );
        assert!(!c.offer(&denial("203.0.113.7", "a"), T0 + 5).write);
        assert_eq!(c.open_runs(), 3);
    }

    #[test]
    fn a_later_offer_writes_the_summary_of_an_expired_run_first() {
        let c = Coalescer::default();
        let e = denial("203.0.113.7", "a");
        c.offer(&e, T0);
        c.offer(&e, T0 + 10);
        c.offer(&e, T0 + 20);
        let v = c.offer(&e, T0 + WINDOW_MS + 5);
        assert!(v.write, "a new run starts with a written event");
        assert_eq!(v.summaries.len(), 1);
        assert_eq!(v.summaries[0].details["count"], 2);
    }

    #[test]
    fn drain_closes_open_runs_so_nothing_is_lost_at_shutdown() {
        let c = Coalescer::default();
        let e = denial("203.0.113.7", "a");
        c.offer(&e, T0);
        c.offer(&e, T0 + 1);
        let left = c.drain();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].details["count"], 1);
        assert_eq!(c.open_runs(), 0);
        assert!(c.drain().is_empty());
    }

    #[test]
    fn an_erasure_closes_the_runs_about_that_person_only() {
        let c = Coalescer::default();
        let alice = denial("203.0.113.7", "a").identity("aaaa1111");
        let bob = denial("203.0.113.7", "a").identity("bbbb2222");
        for e in [&alice, &alice, &bob, &bob] {
            c.offer(e, T0);
        }
        let closed = c.drain_about(&["aaaa1111".to_owned()]);
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].identity.as_deref(), Some("aaaa1111"));
        assert_eq!(c.open_runs(), 1, "bob's run stays open");
        assert!(c.offer(&alice, T0 + 1).write, "alice starts a new run");
    }

    #[test]
    fn past_the_run_cap_new_runs_are_written_one_by_one() {
        let c = Coalescer::default();
        for i in 0..MAX_RUNS {
            let e = denial("203.0.113.7", &i.to_string());
            assert!(c.offer(&e, T0).write);
        }
        let extra = denial("203.0.113.7", "one too many");
        assert!(c.offer(&extra, T0).write);
        assert!(c.offer(&extra, T0 + 1).write, "not counted: never dropped");
        assert_eq!(c.open_runs(), MAX_RUNS);
    }
}
