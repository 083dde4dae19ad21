//! One subscriber's SSE byte stream.
//!
//! A `Subscription` is polled by the HTTP body: each poll returns everything
//! already available (up to `max_batch_size` frames) in one `Bytes`, so writes
//! coalesce only while the previous write is pending and an idle subscriber
//! gets each event as soon as it is published. No task per subscriber: the
//! state is a cursor, a filter and one timer that serves both the heartbeat
//! and the end of the stream (token expiry or maximum age).

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
    /// Fires at the next heartbeat or at `ends_at`, whichever is first.
    timer: Pin<Box<Sleep>>,
    last_write: Instant,
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
            last_write: now,
            ends_at,
            start,
            done: false,
        }
    }

    /// How this subscription began (for logs and metrics).
    pub fn start(&self) -> Start {
        self.start
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
        let mut ring = self.shared.lock_ring();
        ring.read(&mut self.cursor, &limits, cx.waker())
    }

    fn finish(&mut self) -> Poll<Option<Result<Bytes, std::convert::Infallible>>> {
        self.done = true;
        Poll::Ready(None)
    }

    fn emit(
        &mut self,
        bytes: Bytes,
        now: Instant,
    ) -> Poll<Option<Result<Bytes, std::convert::Infallible>>> {
        self.last_write = now;
        Poll::Ready(Some(Ok(bytes)))
    }
}

impl Stream for Subscription {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let now = Instant::now();
        if let Some(prelude) = this.prelude.take() {
            return this.emit(prelude, now);
        }
        if now >= this.ends_at {
            return this.finish();
        }
        let read = this.read(cx);
        let stats = &this.shared.stats;
        match read {
            Read::Data(bytes, count) => {
                stats.delivered_frames.fetch_add(count, Ordering::Relaxed);
                return this.emit(bytes, now);
            }
            Read::Lagged => {
                stats.slow_consumer_cuts.fetch_add(1, Ordering::Relaxed);
                stats.resets.fetch_add(1, Ordering::Relaxed);
                this.done = true;
                // The reset frame is the last item; the stream ends on the next poll.
                return Poll::Ready(Some(Ok(frame::reset_frame(ResetReason::SlowConsumer))));
            }
            Read::Closed => return this.finish(),
            Read::Empty => {}
        }
        let heartbeat_at = this.last_write + this.shared.settings.heartbeat;
        if now >= heartbeat_at {
            stats.heartbeats.fetch_add(1, Ordering::Relaxed);
            return this.emit(frame::PING, now);
        }
        let wake_at = heartbeat_at.min(this.ends_at);
        if this.timer.deadline() != wake_at {
            // Moving a tokio timer later is an atomic store, not a wheel operation.
            this.timer.as_mut().reset(wake_at);
        }
        if this.timer.as_mut().poll(cx).is_ready() {
            // The deadline passed between reading the clock and polling: go round again.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared
            .stats
            .subscribers
            .fetch_sub(1, Ordering::Relaxed);
        self.shared.lock_ring().unpark(&self.cursor);
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
