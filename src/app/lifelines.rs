//! Live access by key: every open SSE stream holds a [`Lifeline`] filed under
//! the key id that signed its token, so that revoking a key ends its streams.
//!
//! A stream files its task's waker when it opens (the task that will poll
//! its body: hyper's connection or stream task, or the direct pump), and
//! checks its lifeline each time it is polled (one relaxed load), so a
//! revocation reaches an idle stream at once instead of at its next event.
//! [`Lifelines::sweep`] runs every second (see [`sweep_task`]): it asks the
//! key ring which of the filed key ids still verify and ends the streams of
//! the others — a key revoked by the CLI, by a rotation step, removed from
//! the key file, or a retiring key past its overlap. The same pass drops
//! unused tickets of those keys (a ticket is also re-checked when redeemed).
//!
//! Memory: the streams of one key share one entry; each stream costs one
//! waker slot in it (16 bytes) and a pointer, no allocation of its own — it
//! is paid by every idle connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::Duration;

/// How often filed streams are checked against the key ring.
pub const SWEEP: Duration = Duration::from_secs(1);

/// The open streams of one key.
#[derive(Debug, Default)]
struct KeyLife {
    ended: AtomicBool,
    parked: Mutex<Parked>,
}

/// The wakers of a key's streams, by slot.
#[derive(Debug, Default)]
struct Parked {
    wakers: Vec<Option<Waker>>,
    free: Vec<u32>,
}

impl KeyLife {
    /// Streams filed under this key.
    fn open(&self) -> usize {
        let p = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        p.wakers.len() - p.free.len()
    }

    fn end(&self) {
        self.ended.store(true, Ordering::Relaxed);
        let wakers: Vec<Waker> = {
            let mut p = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
            p.wakers.iter_mut().filter_map(Option::take).collect()
        };
        for w in wakers {
            w.wake();
        }
    }
}

/// One stream's link to its key: ended when the key stops verifying.
#[derive(Debug)]
pub struct Lifeline {
    key: Arc<KeyLife>,
    slot: u32,
}

impl Lifeline {
    /// True once the key that signed the stream's token no longer verifies.
    pub fn is_ended(&self) -> bool {
        self.key.ended.load(Ordering::Relaxed)
    }

    /// A handle that only tells whether the lifeline ended (for the HTTP/2 stream watch).
    pub fn watch(&self) -> LifeWatch {
        LifeWatch(self.key.clone())
    }
}

impl Drop for Lifeline {
    fn drop(&mut self) {
        let mut p = self
            .key
            .parked
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = p.wakers.get_mut(self.slot as usize) {
            *w = None;
            p.free.push(self.slot);
        }
    }
}

/// See [`Lifeline::watch`].
#[derive(Clone, Debug)]
pub struct LifeWatch(Arc<KeyLife>);

impl LifeWatch {
    /// True once the stream's key no longer verifies.
    pub fn is_ended(&self) -> bool {
        self.0.ended.load(Ordering::Relaxed)
    }
}

/// Open streams by the key id that signed their token.
#[derive(Debug, Default)]
pub struct Lifelines {
    by_key: Mutex<HashMap<Box<str>, Arc<KeyLife>>>,
}

impl Lifelines {
    /// Files a new stream under `key_id`; `waker` is woken when it ends.
    pub fn register(&self, key_id: &str, waker: &Waker) -> Lifeline {
        let key = self
            .by_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key_id.into())
            .or_default()
            .clone();
        let slot = {
            let mut p = key.parked.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = match p.free.pop() {
                Some(slot) => slot,
                None => {
                    p.wakers.push(None);
                    u32::try_from(p.wakers.len() - 1).unwrap_or(u32::MAX)
                }
            };
            if let Some(w) = p.wakers.get_mut(slot as usize) {
                *w = Some(waker.clone());
            }
            slot
        };
        Lifeline { key, slot }
    }

    /// Ends the streams of every filed key for which `verifies` is false,
    /// and forgets keys without streams; returns how many streams were ended.
    pub fn sweep(&self, verifies: impl Fn(&str) -> bool) -> usize {
        let mut ended = Vec::new();
        self.by_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, key| {
                if Arc::strong_count(key) == 1 {
                    return false;
                }
                if verifies(id) {
                    return true;
                }
                ended.push(key.clone());
                false
            });
        // Woken outside the map's lock: a woken stream may run at once.
        let mut streams = 0;
        for key in ended {
            streams += key.open();
            key.end();
        }
        streams
    }

    /// Streams filed.
    pub fn len(&self) -> usize {
        self.by_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|k| k.open())
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
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let a1 = lines.register("A", &waker);
        let a2 = lines.register("A", &waker);
        let b = lines.register("B", &waker);
        let watch = a1.watch();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines.sweep(|_| true), 0);
        assert!(!a1.is_ended());
        assert_eq!(lines.sweep(|k| k != "A"), 2);
        assert!(a1.is_ended() && a2.is_ended() && watch.is_ended() && !b.is_ended());
        assert_eq!(
            count.0.load(Ordering::Relaxed),
            2,
            "each parked waker is woken"
        );
        assert_eq!(lines.len(), 1);
        drop(b);
        assert_eq!(lines.sweep(|_| true), 0);
        assert!(lines.is_empty(), "keys without streams are forgotten");
    }

    #[test]
    fn slots_are_reused_and_a_stream_is_a_pointer_and_a_slot() {
        assert!(std::mem::size_of::<Lifeline>() <= 16);
        let lines = Lifelines::default();
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let a = lines.register("A", &waker);
        let b = lines.register("A", &waker);
        let slot = a.slot;
        drop(a);
        let c = lines.register("A", &waker);
        assert_eq!(c.slot, slot);
        assert_ne!(b.slot, c.slot);
    }
}
