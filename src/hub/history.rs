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

use std::collections::VecDeque;
use std::task::Waker;

use bytes::{Bytes, BytesMut};

use super::frame::{Filter, Frame};

/// Frames, head seq, closed flag and parked wakers.
pub(super) struct Ring {
    frames: VecDeque<Frame>,
    capacity: usize,
    /// Last seq pushed (0 before the first publish).
    head: u64,
    closed: bool,
    waiters: Vec<Option<Waker>>,
    free: Vec<u32>,
    /// Bumped whenever `waiters` is emptied; slots of older generations are void.
    generation: u64,
}

/// A subscriber's place in the ring.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cursor {
    /// Next seq to read.
    pub(super) next: u64,
    /// First seq published after the subscription began: frames before it
    /// are replay and do not count as lag.
    pub(super) live_from: u64,
    /// Parked waker slot and the generation it belongs to (0 = none).
    slot: u32,
    slot_generation: u64,
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
    /// The cursor fell behind: cut this subscriber.
    Lagged,
    /// The hub closed and everything has been read.
    Closed,
}

impl Cursor {
    /// A cursor that reads from `next`, live from `live_from`.
    pub(super) fn new(next: u64, live_from: u64) -> Self {
        Self {
            next,
            live_from,
            slot: 0,
            slot_generation: 0,
        }
    }
}

impl Ring {
    /// An empty ring holding at most `capacity` frames.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            frames: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            head: 0,
            closed: false,
            waiters: Vec::new(),
            free: Vec::new(),
            generation: 1,
        }
    }

    /// Oldest seq still held (`head + 1` when empty).
    pub(super) fn oldest(&self) -> u64 {
        self.head + 1 - self.frames.len() as u64
    }

    /// Appends the frame for seq `head + 1` and returns the wakers to wake
    /// (the caller wakes them after releasing the lock).
    pub(super) fn push(&mut self, frame: Frame) -> Vec<Option<Waker>> {
        if self.frames.len() == self.capacity {
            self.frames.pop_front();
        }
        self.frames.push_back(frame);
        self.head += 1;
        self.take_waiters()
    }

    /// Drops every frame and moves the head to `head` (a gap in a cluster's
    /// sequence): every cursor before it is now lagging and gets cut with a
    /// reset, never a silent gap. Returns the wakers to wake.
    pub(super) fn skip_to(&mut self, head: u64) -> Vec<Option<Waker>> {
        self.frames.clear();
        self.head = head;
        self.take_waiters()
    }

    /// Marks the ring closed and returns every parked waker.
    pub(super) fn close(&mut self) -> Vec<Option<Waker>> {
        self.closed = true;
        self.take_waiters()
    }

    fn take_waiters(&mut self) -> Vec<Option<Waker>> {
        self.free.clear();
        self.generation += 1;
        std::mem::take(&mut self.waiters)
    }

    /// Reads what is available at `cursor`, or parks `waker` if nothing is.
    pub(super) fn read(
        &mut self,
        cursor: &mut Cursor,
        limits: &ReadLimits<'_>,
        waker: &Waker,
    ) -> Read {
        if cursor.next < self.oldest() {
            return Read::Lagged;
        }
        let unread_live = (self.head + 1).saturating_sub(cursor.next.max(cursor.live_from));
        if unread_live > limits.max_lag {
            return Read::Lagged;
        }
        let mut first: Option<Bytes> = None;
        let mut more: Option<BytesMut> = None;
        let mut count = 0u64;
        // `next >= oldest` was checked above, so the offset is in range.
        let start = usize::try_from(cursor.next - self.oldest()).unwrap_or(usize::MAX);
        for frame in self.frames.iter().skip(start) {
            if count as usize >= limits.max_batch {
                break;
            }
            cursor.next += 1;
            if !limits.filter.admits(frame.room.as_deref()) {
                continue;
            }
            count += 1;
            match (&first, &mut more) {
                (None, _) => first = Some(frame.bytes.clone()),
                (Some(f), None) => {
                    let mut buf = BytesMut::with_capacity(f.len() * 4);
                    buf.extend_from_slice(f);
                    buf.extend_from_slice(&frame.bytes);
                    more = Some(buf);
                }
                (Some(_), Some(buf)) => buf.extend_from_slice(&frame.bytes),
            }
        }
        match (more, first) {
            (Some(buf), _) => Read::Data(buf.freeze(), count),
            (None, Some(one)) => Read::Data(one, count),
            (None, None) if self.closed => Read::Closed,
            (None, None) => {
                self.park(cursor, waker);
                Read::Empty
            }
        }
    }

    /// Parks `waker` in the cursor's slot, reusing it while its generation holds.
    fn park(&mut self, cursor: &mut Cursor, waker: &Waker) {
        if cursor.slot_generation == self.generation {
            if let Some(Some(parked)) = self.waiters.get_mut(cursor.slot as usize) {
                if !parked.will_wake(waker) {
                    parked.clone_from(waker);
                }
                return;
            }
        }
        let waker = Some(waker.clone());
        let slot = match self.free.pop() {
            Some(slot) => {
                self.waiters[slot as usize] = waker;
                slot
            }
            None => {
                self.waiters.push(waker);
                // More than 4 billion parked subscribers cannot exist (connection caps).
                u32::try_from(self.waiters.len() - 1).unwrap_or(u32::MAX)
            }
        };
        cursor.slot = slot;
        cursor.slot_generation = self.generation;
    }

    /// Frees a departing subscriber's slot so churn cannot grow the slab.
    pub(super) fn unpark(&mut self, cursor: &Cursor) {
        if cursor.slot_generation == self.generation {
            if let Some(parked) = self.waiters.get_mut(cursor.slot as usize) {
                if parked.take().is_some() {
                    self.free.push(cursor.slot);
                }
            }
        }
    }

    /// Slots in the waiter slab (parked or free), for tests.
    #[cfg(test)]
    pub(super) fn parked_slots(&self) -> usize {
        self.waiters.len()
    }

    /// True once closed.
    pub(super) fn is_closed(&self) -> bool {
        self.closed
    }
}
