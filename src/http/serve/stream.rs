//! HTTP/2 event streams bound like HTTP/1 ones.
//!
//! hyper runs each HTTP/2 stream as its own task and polls a response body
//! only when the stream has flow-control window. A client that never opens
//! its window (or shrinks it with SETTINGS) therefore freezes its stream: the
//! body is never polled again, so neither its queue bound, nor the token's
//! expiry, nor `max_connection_age`, nor a revocation can end it, and TCP is
//! healthy (the client acknowledges everything), so the kernel's
//! `TCP_USER_TIMEOUT` does not either. It would hold its SSE slot forever.
//!
//! So every stream task is spawned through [`StreamExec`], wrapped in
//! [`Watched`], with a per-stream [`StreamSlot`] reachable from the handler
//! (a task-local, see [`current`]). The event stream handler arms the slot
//! with a [`Probe`]: its end (token expiry or maximum age, jittered) and its
//! lifeline (revocation). After each poll of the stream, the wrapper checks:
//!
//! - **stalled**: the last poll of the stream did not end with the body
//!   waiting for events — it either produced data that hyper could not send
//!   yet or was not polled at all (no window). A stall that lasts
//!   `realtime.write_timeout_seconds` cuts the stream, as a write that takes
//!   that long cuts an HTTP/1 client. The client is more than a window
//!   behind, so the queue bound (`realtime.client_queue_size`, checked when
//!   the body is next polled) would cut it too; the deadline is what fires;
//! - **ended**: past the stream's end (plus [`END_GRACE`], so that a stream
//!   that can still be written ends cleanly by itself first), or revoked.
//!
//! Cutting drops the stream's task: h2 resets the stream (`RST_STREAM
//! CANCEL`), the body and its admission permit are dropped, and the SSE
//! connection gauge goes down. The checks cost two atomic operations per
//! poll and a timer reset only when a stall begins or ends.

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::task::futures::TaskLocalFuture;
use tokio::time::{Instant, Sleep};

use crate::app::LifeWatch;
use crate::metrics::Metrics;

/// Time a stream past its end is given to end by itself before it is cut.
pub const END_GRACE: Duration = Duration::from_secs(1);

tokio::task_local! {
    static STREAM: Arc<StreamSlot>;
}

/// The stream slot of the HTTP/2 stream this code runs in, if it runs in one.
pub fn current() -> Option<Arc<StreamSlot>> {
    STREAM.try_with(Arc::clone).ok()
}

/// One HTTP/2 stream's watch, armed by the event stream handler.
#[derive(Debug, Default)]
pub struct StreamSlot {
    probe: OnceLock<Arc<Probe>>,
}

impl StreamSlot {
    /// Arms the watch: the stream ends at `ends_at` or when `life` ends.
    /// Returns the probe the response body reports its polls to.
    pub fn arm(&self, ends_at: Instant, life: LifeWatch, metrics: Metrics) -> Arc<Probe> {
        self.probe
            .get_or_init(|| {
                Arc::new(Probe {
                    ends_at,
                    life,
                    metrics,
                    last: AtomicU8::new(UNPOLLED),
                })
            })
            .clone()
    }
}

const UNPOLLED: u8 = 0;
const WAITING: u8 = 1;
const PRODUCED: u8 = 2;

/// What the response body tells the watch.
pub struct Probe {
    ends_at: Instant,
    life: LifeWatch,
    metrics: Metrics,
    last: AtomicU8,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("ends_at", &self.ends_at)
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// The body was polled: `produced` when it returned data (which hyper may
    /// not be able to send), false when it is waiting for events or ended.
    pub fn polled(&self, produced: bool) {
        let v = if produced { PRODUCED } else { WAITING };
        self.last.store(v, Ordering::Relaxed);
    }
}

/// Spawns hyper's HTTP/2 stream tasks, each [`Watched`].
#[derive(Clone, Copy, Debug)]
pub(super) struct StreamExec {
    pub(super) write_timeout: Duration,
}

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let slot = Arc::new(StreamSlot::default());
        tokio::spawn(Watched {
            fut: Box::pin(STREAM.scope(slot.clone(), fut)),
            slot,
            write_timeout: self.write_timeout,
            stalled_since: None,
            timer: None,
        });
    }
}

/// A stream task that is cut when its stream stalls, ends or is revoked.
struct Watched<F: Future> {
    fut: Pin<Box<TaskLocalFuture<Arc<StreamSlot>, F>>>,
    slot: Arc<StreamSlot>,
    write_timeout: Duration,
    stalled_since: Option<Instant>,
    /// The timer and the deadline it is set to.
    timer: Option<(Pin<Box<Sleep>>, Instant)>,
}

impl<F: Future> Future for Watched<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if let Some(p) = this.slot.probe.get() {
            p.last.store(UNPOLLED, Ordering::Relaxed);
        }
        if this.fut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        let Some(probe) = this.slot.probe.get().cloned() else {
            return Poll::Pending;
        };
        if probe.life.is_ended() {
            probe.metrics.sse_cut("revoked");
            return Poll::Ready(());
        }
        if probe.last.load(Ordering::Relaxed) == WAITING {
            this.stalled_since = None;
        } else if this.stalled_since.is_none() {
            this.stalled_since = Some(Instant::now());
        }
        let end = probe.ends_at + END_GRACE;
        let stall = this.stalled_since.map(|s| s + this.write_timeout);
        let deadline = stall.map_or(end, |s| s.min(end));
        let (timer, at) = this
            .timer
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep_until(deadline)), deadline));
        if *at != deadline {
            timer.as_mut().reset(deadline);
            *at = deadline;
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        let reason = if stall.is_some_and(|s| s <= end) {
            "stalled"
        } else {
            "expired"
        };
        tracing::debug!(reason, "HTTP/2 event stream cut");
        probe.metrics.sse_cut(reason);
        Poll::Ready(())
    }
}
