//! The ring itself, behind `History`'s lock: frames, head, the parked
//! wakers (one [`Slab`] shared by every cursor, one per room with
//! single-room cursors) and the read that serves a cursor.

use std::collections::{HashMap, VecDeque};
use std::task::Waker;

use bytes::{Bytes, BytesMut};

use super::slab::Slab;
use super::{Cursor, Read, ReadLimits};
use crate::hub::ResetReason;
use crate::hub::frame::Frame;

/// Frames, head seq, closed flag and parked wakers.
pub(super) struct Ring {
    pub(super) frames: VecDeque<Frame>,
    capacity: usize,
    /// Last seq pushed (0 before the first publish).
    pub(super) head: u64,
    pub(super) closed: bool,
    /// Cursors that receive more than one room; its generation is bumped
    /// whenever it is emptied.
    pub(super) waiters: Slab,
    /// Rooms with single-room subscribers: their waiters and eviction record.
    pub(super) rooms: HashMap<Box<str>, RoomWaiters>,
    /// Source of room slab generations (unique, never 0).
    room_generations: u64,
    /// Bumped by `History::restart`: cursors of an older era are cut.
    pub(super) era: u64,
    /// Last seq of the latest gap (frames that never reached this ring; 0: none).
    pub(super) gap_end: u64,
}

/// The single-room subscribers of one room.
#[derive(Default)]
pub(super) struct RoomWaiters {
    /// Subscriptions scoped to this room (the entry goes with the last).
    pub(super) subscribers: usize,
    /// Seq of the last frame of this room dropped from the ring (0: none).
    pub(super) last_evicted: u64,
    /// Parked wakers; generation 0 once emptied (every slot void) until
    /// the next park takes a fresh one.
    slab: Slab,
}

impl RoomWaiters {
    /// Every parked waker of the room, taken.
    pub(super) fn take(&mut self) -> Vec<Option<Waker>> {
        self.slab.take(0)
    }
}

impl Ring {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            frames: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            head: 0,
            closed: false,
            waiters: Slab::new(1),
            rooms: HashMap::new(),
            room_generations: 0,
            era: 0,
            gap_end: 0,
        }
    }

    /// Oldest seq held (`head + 1` when empty).
    pub(super) fn oldest(&self) -> u64 {
        self.head + 1 - self.frames.len() as u64
    }

    /// Drops every frame held and moves the head to `head`: seqs up to it
    /// never reached this ring (a gap in a cluster's sequence). The gap may
    /// hold frames of any room: every room's cursors before it lag.
    pub(super) fn skip_to(&mut self, head: u64) {
        self.frames.clear();
        for room in self.rooms.values_mut() {
            room.last_evicted = head;
        }
        self.head = head;
        self.gap_end = head;
    }

    /// Appends `frame` as seq `head + 1`, dropping the oldest when full.
    pub(super) fn push(&mut self, frame: Frame) {
        if self.frames.len() == self.capacity {
            let seq = self.oldest();
            if let Some(old) = self.frames.pop_front()
                && let Some(room) = old.room.as_deref().and_then(|r| self.rooms.get_mut(r))
            {
                room.last_evicted = seq;
            }
        }
        self.frames.push_back(frame);
        self.head += 1;
    }

    /// Reads what is available at `cursor`; parks `waker` once caught up.
    pub(super) fn read(
        &mut self,
        cursor: &mut Cursor,
        limits: &ReadLimits<'_>,
        waker: &Waker,
    ) -> Read {
        if cursor.era != self.era {
            return Read::Lagged(ResetReason::HistoryLost);
        }
        if cursor.next < self.oldest() {
            match cursor.room.as_deref().and_then(|r| self.rooms.get(r)) {
                // Only other rooms' frames were dropped after this cursor.
                Some(room) if room.last_evicted < cursor.next => cursor.next = self.oldest(),
                _ => return Read::Lagged(self.cut_reason(cursor)),
            }
        }
        if self.lag(cursor, limits) > limits.max_lag {
            return Read::Lagged(self.cut_reason(cursor));
        }
        let mut first: Option<Bytes> = None;
        let mut more: Option<BytesMut> = None;
        let mut count = 0u64;
        // `next >= oldest` was checked above, so the offset is in range.
        let start = usize::try_from(cursor.next - self.oldest()).unwrap_or(usize::MAX);
        for frame in self.frames.range(start..) {
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
        let caught_up = cursor.next > self.head;
        match (&more, &first) {
            (None, None) if self.closed => return Read::Closed,
            // Parking now, while the lock is held anyway, lets the next poll
            // (the one that finds nothing) skip the lock.
            // After close nothing parks, so no slot matches the final
            // generation and every later read takes the lock and sees `closed`.
            _ if caught_up && !self.closed => self.park(cursor, waker),
            _ => {}
        }
        match (more, first) {
            (Some(buf), _) => Read::Data(buf.freeze(), count),
            (None, Some(one)) => Read::Data(one, count),
            (None, None) => Read::Empty,
        }
    }

    /// Why a lagging cursor is cut: it still wants a seq that never reached
    /// this ring (a gap), or it was too slow.
    fn cut_reason(&self, cursor: &Cursor) -> ResetReason {
        if cursor.next <= self.gap_end {
            ResetReason::ClusterGap
        } else {
            ResetReason::SlowConsumer
        }
    }

    /// Unread live frames this cursor is behind by: every frame, or for a
    /// single-room cursor the frames of its room (it parks past the others).
    fn lag(&self, cursor: &Cursor, limits: &ReadLimits<'_>) -> u64 {
        let from = cursor.next.max(cursor.live_from);
        if cursor.room.is_none() {
            return (self.head + 1).saturating_sub(from);
        }
        let skip = usize::try_from(from.saturating_sub(self.oldest())).unwrap_or(usize::MAX);
        // Counting stops just past the limit: only "over or not" matters.
        let limit = usize::try_from(limits.max_lag).unwrap_or(usize::MAX);
        self.frames
            .range(skip.min(self.frames.len())..)
            .filter(|f| limits.filter.admits(f.room.as_deref()))
            .take(limit.saturating_add(1))
            .count() as u64
    }

    /// Parks `waker` in the cursor's slot: its room's slab for a single-room
    /// cursor, the shared one otherwise.
    fn park(&mut self, cursor: &mut Cursor, waker: &Waker) {
        cursor.parked_at = self.waiters.generation;
        if let Some(room) = cursor.room.as_deref()
            && let Some(room) = self.rooms.get_mut(room)
        {
            if room.slab.generation == 0 {
                self.room_generations += 1;
                room.slab.generation = self.room_generations;
            }
            return room.slab.park(cursor, waker);
        }
        self.waiters.park(cursor, waker);
    }

    /// A single-room subscriber leaves: its slot, and the room's count.
    pub(super) fn leave(&mut self, cursor: &Cursor) {
        let Some(name) = cursor.room.as_deref() else {
            return self.waiters.unpark(cursor);
        };
        let Some(room) = self.rooms.get_mut(name) else {
            return;
        };
        room.slab.unpark(cursor);
        room.subscribers = room.subscribers.saturating_sub(1);
        if room.subscribers == 0 {
            self.rooms.remove(name);
        }
    }
}
