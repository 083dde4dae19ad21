//! One subscriber's SSE byte stream.
//!
//! A `Subscription` is polled by the HTTP body: each poll returns everything
//! already available (up to `max_batch_size` frames) in one `Bytes`, so writes
//! coalesce only while the previous write is pending and an idle subscriber
//! gets each event as soon as it is published. No task per subscriber: the
//! state is a cursor, a filter and one timer that serves both the heartbeat
//! and the end of the stream (token expiry or maximum age).
//!
//! Heartbeat: the timer cuts time into `heartbeat` windows; a window in which
//! nothing was written ends with `: ping`. Tracking "wrote in this window"
//! instead of the time of the last write keeps clock reads and timer resets
//! off the per-event path (a clock read per delivery was a fifth of the
//! fan-out cost); the price is that a ping can come up to two heartbeats
//! after the last event rather than exactly one.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use super::frame::{self, Filter};
use super::history::{Cursor, Read, ReadLimits};
use super::{ResetReason, Shared};

/// How a subscription began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// No last id: the stream starts with a snapshot.
    Snapshot,
    /// The last id was found: the stream replays what followed it.
    Resumed,
    /// The last id was refused: the stream starts with `reset` and a snapshot.
    Reset(ResetReason),
}

/// A subscriber's stream of SSE bytes (see the module docs of [`crate::hub`]).
pub struct Subscription {
    shared: Arc<Shared>,
    cursor: Cursor,
    filter: Filter,
    /// Bytes to send before anything from the ring (snapshot, reset).
    prelude: Option<Bytes>,
    /// Fires at the end of each heartbeat window or at `ends_at`, whichever is first.
    timer: Pin<Box<Sleep>>,
    /// Something was written in the current heartbeat window (no ping due).
    wrote: bool,
    ends_at: Instant,
    start: Start,
    done: bool,
}

impl Subscription {
    pub(super) fn new(
        shared: Arc<Shared>,
        cursor: Cursor,
        filter: Filter,
        prelude: Option<Bytes>,
        ends_at: Instant,
        start: Start,
    ) -> Self {
        let now = Instant::now();
        let first_tick = ends_at.min(now + shared.settings.heartbeat);
        shared.stats.subscribers.fetch_add(1, Ordering::Relaxed);
        Self {
            shared,
            cursor,
            filter,
            prelude,
            timer: Box::pin(tokio::time::sleep_until(first_tick)),
            wrote: false,
            ends_at,
            start,
            done: false,
        }
    }

    /// How this subscription began (for logs and metrics).
    pub fn start(&self) -> Start {
        self.start
    }

    /// When the stream ends by itself (token expiry or maximum age, jittered).
    pub fn ends_at(&self) -> Instant {
        self.ends_at
    }

    /// The seq of the next frame this subscription will look at.
    pub fn next_seq(&self) -> u64 {
        self.cursor.next
    }

    fn read(&mut self, cx: &Context<'_>) -> Read {
        let settings = &self.shared.settings;
        let limits = ReadLimits {
            filter: &self.filter,
            max_batch: settings.max_batch_size,
            max_lag: settings.client_queue_size as u64,
        };
        self.shared
            .history
            .read(&mut self.cursor, &limits, cx.waker())
    }

    fn finish(&mut self) -> Poll<Option<Result<Bytes, std::convert::Infallible>>> {
        self.done = true;
        Poll::Ready(None)
    }

    fn emit(&mut self, bytes: Bytes) -> Poll<Option<Result<Bytes, std::convert::Infallible>>> {
        self.wrote = true;
        Poll::Ready(Some(Ok(bytes)))
    }

    /// The timer fired: end the stream, or re-arm it and say whether a ping is due.
    fn tick(&mut self) -> Option<Poll<Option<Result<Bytes, std::convert::Infallible>>>> {
        let now = Instant::now();
        if now >= self.ends_at {
            return Some(self.finish());
        }
        let next = self.ends_at.min(now + self.shared.settings.heartbeat);
        self.timer.as_mut().reset(next);
        if std::mem::take(&mut self.wrote) {
            return None;
        }
        self.shared.stats.heartbeats.fetch_add(1, Ordering::Relaxed);
        Some(Poll::Ready(Some(Ok(frame::PING))))
    }
}

impl Stream for Subscription {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(prelude) = this.prelude.take() {
            // Not counted as a write: the first window's ping goes out one
            // heartbeat after connecting.
            return Poll::Ready(Some(Ok(prelude)));
        }
        // Polling the timer first (it fires at the end of the stream at the
        // latest) keeps a frame from going out after the token expired, and
        // costs no clock read: the clock is read only when the timer fires.
        while this.timer.as_mut().poll(cx).is_ready() {
            if let Some(out) = this.tick() {
                return out;
            }
        }
        let read = this.read(cx);
        let stats = &this.shared.stats;
        match read {
            Read::Data(bytes, count) => {
                stats.delivered_frames.fetch_add(count, Ordering::Relaxed);
                this.emit(bytes)
            }
            Read::Lagged(ResetReason::SlowConsumer) => {
                stats.slow_consumer_cuts.fetch_add(1, Ordering::Relaxed);
                stats.resets.fetch_add(1, Ordering::Relaxed);
                this.done = true;
                // The reset frame is the last item; the stream ends on the next poll.
                Poll::Ready(Some(Ok(frame::reset_frame(ResetReason::SlowConsumer))))
            }
            Read::Lagged(reason) => {
                // The cluster's doing (a gap, a lost history): reset, fresh
                // snapshot, and the stream goes on.
                stats.resets.fetch_add(1, Ordering::Relaxed);
                let hub = super::Hub {
                    shared: Arc::clone(&this.shared),
                };
                let bytes = hub.start_over(&mut this.cursor, &this.filter, reason);
                this.emit(bytes)
            }
            Read::Closed => this.finish(),
            Read::Empty => Poll::Pending,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared
            .stats
            .subscribers
            .fetch_sub(1, Ordering::Relaxed);
        self.shared.history.unpark(&self.cursor);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("next_seq", &self.cursor.next)
            .field("start", &self.start)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
