//! The one bounded ring of frames shared by every subscriber, and the list
//! of subscribers waiting for the next frame.
//!
//! The ring is both the resume history and the live queue: a subscriber is
//! only a cursor (the next seq it wants) into it, so an idle or slow
//! subscriber holds no frames of its own and memory cannot grow with a
//! client that stops reading. Seqs in the ring are consecutive; the oldest
//! is `head + 1 - frames.len()`. A subscriber whose cursor has been
//! overwritten, or who is more than `client_queue_size` frames behind, is
//! lagging and gets cut (never skipped in silence).
//!
//! Waiting subscribers park their `Waker` in a slab slot under the same lock
//! that guards the frames, so a publish can never slip between "nothing to
//! read" and "registered": no lost wake-up. A publish empties the whole slab
//! and bumps `generation`, which invalidates every subscriber's slot index at
//! once; a subscriber checks the generation before reusing its slot.
//!
//! A subscriber that receives exactly one room waits on that room alone: its
//! waker is parked in the room's own slab, which only a frame of that room
//! (or closing) empties, so an event wakes the subscribers that can receive
//! it and not every subscriber of every room. Such a subscriber's cursor
//! stays where it parked while other rooms' frames go by, so for it lag
//! counts only its room's frames, and a cursor overwritten by other rooms'
//! frames moves up to the oldest frame held — unless a frame of its room was
//! dropped after the cursor (the ring records, per room with such
//! subscribers, the last dropped seq), which is real lag and gets the cut.
//!
//! The head seq and the generation are mirrored in atomics so that the
//! common "still nothing new, still parked with the same waker" poll takes no
//! lock: a read that catches up parks at once, and the poll after it (the one
//! that returns `Pending`) only checks the atomics. Both are written under the
//! lock before the wakers are taken, so a publish either is seen by the check
//! or finds the waker parked — never neither.
//!
//! A cluster can move to a new epoch (its shared history was lost): the ring
//! then starts over at seq 1 and its `era` goes up; a cursor of an older era
//! is cut with a reset whatever its position, so none waits silently for
//! seqs it will never get. A cut says why: `history_lost` for an older era,
//! `cluster_gap` for a cursor before frames that never reached this node,
//! `slow_consumer` otherwise.

mod ring;
mod slab;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use bytes::Bytes;

use super::ResetReason;
use super::frame::{Filter, Frame};
use ring::{Ring, RoomWaiters};

/// The ring behind its lock, with the lock-free mirror of head and generation.
pub(super) struct History {
    ring: Mutex<Ring>,
    head: AtomicU64,
    generation: AtomicU64,
    /// The ring's era, readable without its lock (written under it).
    era: AtomicU64,
}

/// A subscriber's place in the ring.
#[derive(Debug)]
pub(super) struct Cursor {
    /// Next seq to read.
    pub(super) next: u64,
    /// First seq published after the subscription began: frames before it
    /// are replay and do not count as lag.
    pub(super) live_from: u64,
    /// The one room this subscriber receives, if it is one (see module docs).
    room: Option<Box<str>>,
    /// Parked waker slot and the generation of its slab (0 = none).
    slot: u32,
    slot_generation: u64,
    /// The ring's generation when last parked (for the lock-free check).
    parked_at: u64,
    /// A clone of the parked waker, to tell without the lock that it still fits.
    parked: Option<Waker>,
    /// The ring's era when this cursor was registered.
    era: u64,
}

/// Limits a read obeys.
pub(super) struct ReadLimits<'a> {
    pub(super) filter: &'a Filter,
    pub(super) max_batch: usize,
    pub(super) max_lag: u64,
}

/// What a read found.
pub(super) enum Read {
    /// Frames, concatenated (`count` of them).
    Data(Bytes, u64),
    /// Nothing yet; the waker is parked.
    Empty,
    /// The cursor fell behind, or its history is gone: cut this subscriber.
    Lagged(ResetReason),
    /// The hub closed and everything has been read.
    Closed,
}

impl Cursor {
    /// A cursor that reads from `next`, live from `live_from`, for `filter`.
    pub(super) fn new(next: u64, live_from: u64, filter: &Filter) -> Self {
        Self {
            next,
            live_from,
            room: filter.single_room().map(Box::from),
            slot: 0,
            slot_generation: 0,
            parked_at: 0,
            parked: None,
            era: 0,
        }
    }
}

impl History {
    /// An empty history holding at most `capacity` frames.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(Ring::new(capacity)),
            head: AtomicU64::new(0),
            generation: AtomicU64::new(1),
            era: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        // Nothing panics while the lock is held and every update leaves the
        // ring consistent, so a poisoned lock still guards valid data.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends the frame for `seq`, after the head: `head + 1`, or further
    /// on after a gap in a cluster's sequence, when every frame held is
    /// dropped and every cursor before the gap is cut with a reset (never a
    /// silent gap). Returns the parked subscribers, to be woken once the
    /// caller has released its own lock.
    #[must_use = "parked subscribers must be woken"]
    pub(super) fn push_at(&self, seq: u64, frame: Frame) -> Wakers {
        let mut ring = self.lock();
        if seq > ring.head + 1 {
            ring.skip_to(seq - 1);
        }
        let room = frame
            .room
            .as_deref()
            .and_then(|r| ring.rooms.get_mut(r))
            .map(RoomWaiters::take);
        ring.push(frame);
        self.head.store(ring.head, Ordering::Release);
        let mut wakers = self.take_waiters(&mut ring);
        wakers.0.extend(room.into_iter().flatten());
        wakers
    }

    /// Puts back frames restored from the journal: `frames` are the
    /// consecutive seqs ending at `head` (before any subscriber exists).
    pub(super) fn restore(&self, head: u64, frames: Vec<Frame>) {
        let mut ring = self.lock();
        ring.frames.clear();
        ring.head = head.saturating_sub(frames.len() as u64);
        for frame in frames {
            ring.push(frame);
        }
        ring.head = head;
        self.head.store(ring.head, Ordering::Release);
    }

    /// Stamps a new subscription with the ring's era and counts its room
    /// (call under the hub's model lock, like every push and restart, so
    /// that the era is the one its position belongs to and the room's
    /// eviction record covers every frame after the cursor).
    pub(super) fn register(&self, cursor: &mut Cursor) {
        cursor.era = self.era.load(Ordering::Acquire);
        if let Some(room) = &cursor.room {
            let mut ring = self.lock();
            ring.rooms.entry(room.clone()).or_default().subscribers += 1;
        }
    }

    /// Stamps a cursor that starts over (after a cut it survives) with the
    /// current era; call under the hub's model lock.
    pub(super) fn restamp(&self, cursor: &mut Cursor) {
        cursor.era = self.era.load(Ordering::Acquire);
    }

    /// Drops every frame and starts over before seq 1 in a new era (a
    /// cluster's new epoch): every cursor registered so far is cut with a
    /// `history_lost` reset on its next read, and woken for it.
    #[must_use = "parked subscribers must be woken"]
    pub(super) fn restart(&self) -> Wakers {
        let mut ring = self.lock();
        ring.frames.clear();
        ring.head = 0;
        ring.gap_end = 0;
        ring.era += 1;
        self.era.store(ring.era, Ordering::Release);
        for room in ring.rooms.values_mut() {
            room.last_evicted = 0;
        }
        self.head.store(0, Ordering::Release);
        self.take_all_waiters(&mut ring)
    }

    /// Replaces every held frame for which `f` returns new bytes (same seq and
    /// room); returns how many. For erasure: a resumed stream no longer replays them.
    pub(super) fn rewrite(&self, mut f: impl FnMut(&[u8]) -> Option<Bytes>) -> u64 {
        let mut ring = self.lock();
        let mut n = 0;
        for frame in &mut ring.frames {
            if let Some(bytes) = f(&frame.bytes) {
                frame.bytes = bytes;
                n += 1;
            }
        }
        n
    }

    /// Drops frames from the oldest end while `old` says they are expired
    /// (retention); a cursor before them is then cut like one that lagged.
    /// Returns how many.
    pub(super) fn expire(&self, mut old: impl FnMut(&[u8]) -> bool) -> u64 {
        let mut ring = self.lock();
        let mut n = 0;
        while ring.frames.front().is_some_and(|f| old(&f.bytes)) {
            let seq = ring.oldest();
            if let Some(f) = ring.frames.pop_front()
                && let Some(room) = f.room.as_deref().and_then(|r| ring.rooms.get_mut(r))
            {
                room.last_evicted = seq;
            }
            n += 1;
        }
        n
    }

    /// The data of every held frame for which `f` is true, oldest first.
    pub(super) fn frames_where(&self, mut f: impl FnMut(&[u8]) -> bool) -> Vec<Bytes> {
        let ring = self.lock();
        ring.frames
            .iter()
            .filter(|fr| f(&fr.bytes))
            .map(|fr| fr.bytes.clone())
            .collect()
    }

    /// The bytes of the frame held for `seq`, if it is still held.
    pub(super) fn frame_bytes(&self, seq: u64) -> Option<Bytes> {
        let ring = self.lock();
        let offset = usize::try_from(seq.checked_sub(ring.oldest())?).ok()?;
        ring.frames.get(offset).map(|f| f.bytes.clone())
    }

    /// Marks the history closed and wakes every parked subscriber.
    pub(super) fn close(&self) {
        let wakers = {
            let mut ring = self.lock();
            ring.closed = true;
            self.take_all_waiters(&mut ring)
        };
        wakers.wake();
    }

    /// Every parked subscriber: the shared slab and every room's.
    fn take_all_waiters(&self, ring: &mut Ring) -> Wakers {
        let rooms: Vec<Option<Waker>> = ring
            .rooms
            .values_mut()
            .flat_map(RoomWaiters::take)
            .collect();
        let mut wakers = self.take_waiters(ring);
        wakers.0.extend(rooms);
        wakers
    }

    fn take_waiters(&self, ring: &mut Ring) -> Wakers {
        let generation = ring.waiters.generation + 1;
        let taken = ring.waiters.take(generation);
        self.generation.store(generation, Ordering::Release);
        Wakers(taken)
    }

    /// Reads what is available at `cursor`, or parks `waker` if nothing is.
    pub(super) fn read(&self, cursor: &mut Cursor, limits: &ReadLimits<'_>, waker: &Waker) -> Read {
        let still_parked = cursor.next > self.head.load(Ordering::Acquire)
            && cursor.parked_at == self.generation.load(Ordering::Acquire)
            && cursor.parked.as_ref().is_some_and(|p| p.will_wake(waker));
        if still_parked {
            return Read::Empty;
        }
        self.lock().read(cursor, limits, waker)
    }

    /// Oldest seq still held (`head + 1` when empty).
    pub(super) fn oldest(&self) -> u64 {
        self.lock().oldest()
    }

    /// Frees a departing subscriber's slot so churn cannot grow the slab,
    /// and its room's count.
    pub(super) fn unpark(&self, cursor: &Cursor) {
        if cursor.room.is_some() {
            self.lock().leave(cursor);
        } else if cursor.slot_generation == self.generation.load(Ordering::Acquire) {
            self.lock().waiters.unpark(cursor);
        }
    }

    /// True once closed.
    pub(super) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Rooms with single-room subscribers, for tests.
    #[cfg(test)]
    pub(super) fn rooms_tracked(&self) -> usize {
        self.lock().rooms.len()
    }

    /// Slots in the waiter slab (parked or free), for tests.
    #[cfg(test)]
    pub(super) fn parked_slots(&self) -> usize {
        self.lock().waiters.len()
    }
}

/// Subscribers taken off the slab, woken outside every lock so that they
/// do not queue on one (and a publisher does not hold one while waking 10 000).
pub(super) struct Wakers(Vec<Option<Waker>>);

impl Wakers {
    /// Wakes them all.
    pub(super) fn wake(self) {
        for waker in self.0.into_iter().flatten() {
            waker.wake();
        }
    }
}
