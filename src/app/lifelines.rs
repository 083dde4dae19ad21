//! Live access by key: every open SSE stream holds a [`Lifeline`] filed under
//! the key id that signed its token, so that revoking a key ends its streams.
//!
//! A stream checks its lifeline each time it is polled (one relaxed load) and
//! parks its task's waker in it, so a revocation reaches an idle stream at
//! once instead of at its next event. [`Lifelines::sweep`] runs every second
//! (see [`sweep_task`]): it asks the key ring which of the filed key ids
//! still verify and ends the streams of the others — a key revoked by the
//! CLI, by a rotation step, removed from the key file, or a retiring key past
//! its overlap. The same pass drops unused tickets of those keys (a ticket is
//! also re-checked when it is redeemed). Memory: one entry per open stream,
//! dropped entries pruned by the sweep.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::Waker;
use std::time::Duration;

/// How often filed streams are checked against the key ring.
pub const SWEEP: Duration = Duration::from_secs(1);

/// One stream's link to its key: ended when the key stops verifying.
#[derive(Debug, Default)]
pub struct Lifeline {
    ended: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Lifeline {
    /// True once the key that signed the stream's token no longer verifies.
    pub fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    /// Parks `waker` to be woken when the lifeline ends. `last` is the
    /// caller's copy of what it parked before: the lock is taken only when
    /// the waker changed (for a task, almost never).
    pub fn park(&self, waker: &Waker, last: &mut Option<Waker>) {
        if last.as_ref().is_some_and(|w| w.will_wake(waker)) {
            return;
        }
        *self.waker.lock().unwrap_or_else(PoisonError::into_inner) = Some(waker.clone());
        *last = Some(waker.clone());
    }

    fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Open streams by the key id that signed their token.
#[derive(Debug, Default)]
pub struct Lifelines {
    by_key: Mutex<HashMap<Box<str>, Vec<Weak<Lifeline>>>>,
}

impl Lifelines {
    /// Files a new stream under `key_id`.
    pub fn register(&self, key_id: &str) -> Arc<Lifeline> {
        let line = Arc::new(Lifeline::default());
        self.by_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key_id.into())
            .or_default()
            .push(Arc::downgrade(&line));
        line
    }

    /// Ends the streams of every filed key for which `verifies` is false,
    /// and forgets streams that have ended; returns how many were ended.
    pub fn sweep(&self, verifies: impl Fn(&str) -> bool) -> usize {
        let mut ended = Vec::new();
        {
            let mut map = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
            map.retain(|key, lines| {
                lines.retain(|l| l.strong_count() > 0);
                if lines.is_empty() {
                    return false;
                }
                if verifies(key) {
                    return true;
                }
                ended.append(lines);
                false
            });
        }
        // Woken outside the lock: a woken stream may run on another thread at once.
        let lines: Vec<Arc<Lifeline>> = ended.iter().filter_map(Weak::upgrade).collect();
        for line in &lines {
            line.end();
        }
        lines.len()
    }

    /// Streams filed (ended ones included until the next sweep).
    pub fn len(&self) -> usize {
        self.by_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(Vec::len)
            .sum()
    }

    /// True when no stream is filed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every [`SWEEP`], ends the streams and drops the unused tickets whose key
/// no longer verifies, until `stop` turns true.
pub async fn sweep_task(state: super::AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = state.clock.now_ms();
        let verifies = |key: &str| state.keys.verifying_secret(key, now).is_some();
        let streams = state.lifelines.sweep(verifies);
        let tickets = state.tickets.revoke_unless(verifies);
        if streams + tickets > 0 {
            tracing::info!(
                sse.ended = streams,
                tickets.dropped = tickets,
                "ended access signed by a key that no longer verifies"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_sweep_ends_only_the_streams_of_keys_that_stopped_verifying() {
        let lines = Lifelines::default();
        let a1 = lines.register("A");
        let a2 = lines.register("A");
        let b = lines.register("B");
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut last = None;
        a1.park(&waker, &mut last);
        a1.park(&waker, &mut last);
        assert_eq!(lines.sweep(|_| true), 0);
        assert!(!a1.is_ended());
        assert_eq!(lines.sweep(|k| k != "A"), 2);
        assert!(a1.is_ended() && a2.is_ended() && !b.is_ended());
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            1,
            "the parked waker is woken"
        );
        assert_eq!(lines.len(), 1);
        drop(b);
        assert_eq!(lines.sweep(|_| true), 0);
        assert!(lines.is_empty(), "dropped streams are forgotten");
    }
}
