//! One connection's deadlines outside its requests, on every transport.
//!
//! A [`Track`] follows what hyper does not tell: when the connection was
//! accepted, how many requests (HTTP/1) or streams (HTTP/2) have begun and
//! are still open, since when it has been idle and, on HTTP/1, when the next
//! request head started to arrive. [`drive`] runs the hyper connection beside
//! one deadline computed from it:
//!
//! - no request yet: `accepted + header_timeout` — one deadline from accept
//!   to the first complete request head, TLS handshake, HTTP/2 preface and
//!   first HEADERS included (hyper's own HTTP/1 head timer is off, so the
//!   deadline is never stacked on the time the accept path already spent);
//! - idle (nothing open): `idle_since + idle_timeout`, then a graceful close
//!   (HTTP/2 GOAWAY) that must finish within [`CLOSE_GRACE`];
//! - idle, and the first byte of a new HTTP/1 head arrived: that byte's
//!   time `+ header_timeout` (HTTP/2 talks between requests — pings, window
//!   updates — so only HTTP/1 reads count);
//! - something open: no deadline here (the request timeout, the SSE write
//!   deadline and the stream's own end apply).
//!
//! The hyper service ([`super::svc::Svc`]) counts each request as open
//! from the call until its response body is dropped. [`Tap`] watches the
//! socket's reads, and can hand a plain connection back between requests
//! ([`super::tap::Tap`]).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// How long a graceful close (idle) may take before the socket is dropped.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The timeouts [`drive`] applies.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// Accept → first request head; a new head on an idle HTTP/1 connection.
    pub header: Duration,
    /// Nothing open this long: the connection is closed.
    pub idle: Duration,
}

/// What a connection's deadline is computed from (shared with its requests and its socket).
pub(super) struct Track {
    accepted: Instant,
    /// Requests (or streams) begun.
    begun: AtomicU64,
    /// Begun and not yet finished.
    open: AtomicUsize,
    /// When the connection last became idle, ms after `accepted`.
    idle_since_ms: AtomicU64,
    /// 1 + ms after `accepted` when a new HTTP/1 head began to arrive while idle; 0: none.
    head_started: AtomicU64,
    /// HTTP/1: bytes read while idle start a head.
    reads_start_heads: bool,
    /// The open request's body has been read (or it had none).
    body_done: AtomicBool,
    /// Bytes arrived after the open request's body: a pipelined request
    /// that hyper holds, so the connection may not be handed back.
    pipelined: AtomicBool,
    changed: Notify,
}

/// Why a deadline is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Why {
    NoRequest,
    SlowHead,
    Idle,
}

impl Track {
    pub(super) fn new(accepted: Instant, http1: bool) -> Arc<Self> {
        Arc::new(Self {
            accepted,
            begun: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            reads_start_heads: http1,
            body_done: AtomicBool::new(false),
            pipelined: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    fn ms_since_accept(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request begins; `bodiless`: it has no body to read.
    pub(super) fn begin(self: &Arc<Self>, bodiless: bool) -> Open {
        self.head_started.store(0, Ordering::Relaxed);
        self.body_done.store(bodiless, Ordering::Relaxed);
        self.pipelined.store(false, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::AcqRel);
        self.begun.fetch_add(1, Ordering::Release);
        self.changed.notify_one();
        Open(self.clone())
    }

    /// The open request's body has been read, or will not be.
    pub(super) fn body_done(&self) {
        self.body_done.store(true, Ordering::Relaxed);
    }

    /// Whether hyper is between requests with nothing of the next one read:
    /// at least one request served, none open, no bytes since the last
    /// request's body. Then the connection can be taken back from hyper
    /// without losing a byte (see [`super::tap::Tap`]).
    pub(super) fn between_requests(&self) -> bool {
        self.begun.load(Ordering::Acquire) > 0
            && self.open.load(Ordering::Acquire) == 0
            && !self.pipelined.load(Ordering::Relaxed)
    }

    /// Bytes arrived on an HTTP/1 connection: if it was idle, a head began.
    pub(super) fn bytes_read(&self) {
        if self.open.load(Ordering::Acquire) > 0 && self.body_done.load(Ordering::Relaxed) {
            self.pipelined.store(true, Ordering::Relaxed);
        }
        if self.reads_start_heads
            && self.open.load(Ordering::Acquire) == 0
            && self.begun.load(Ordering::Acquire) > 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started
                .store(self.ms_since_accept() + 1, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }

    /// The deadline now, if any.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Why)> {
        let ms = Duration::from_millis;
        if self.begun.load(Ordering::Acquire) == 0 {
            return Some((self.accepted + limits.header, Why::NoRequest));
        }
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.head_started.load(Ordering::Relaxed) {
            0 => {
                let idle = self.idle_since_ms.load(Ordering::Relaxed);
                Some((self.accepted + ms(idle) + limits.idle, Why::Idle))
            }
            t => Some((self.accepted + ms(t - 1) + limits.header, Why::SlowHead)),
        }
    }
}

/// A request or stream in progress; finished when dropped.
pub(super) struct Open(Arc<Track>);

impl Drop for Open {
    fn drop(&mut self) {
        let t = &self.0;
        t.idle_since_ms
            .store(t.ms_since_accept(), Ordering::Relaxed);
        t.open.fetch_sub(1, Ordering::AcqRel);
        t.changed.notify_one();
    }
}

/// Runs `conn` until it ends (its output), its deadline passes (see the
/// module docs) or it has drained after `drain` started (`None`).
/// `graceful` starts hyper's graceful close.
pub(super) async fn drive<C: Future>(
    mut conn: Pin<&mut C>,
    graceful: impl Fn(Pin<&mut C>),
    track: &Track,
    limits: Limits,
    drain: &mut DrainWatch,
) -> Option<C::Output> {
    let mut closing: Option<Instant> = None;
    let mut draining = false;
    loop {
        let at = closing.or_else(|| track.deadline(&limits).map(|(at, _)| at));
        tokio::select! {
            biased;
            out = &mut conn => return Some(out),
            () = track.changed.notified() => {}
            () = sleep_until(at) => {
                if closing.is_some() {
                    return None;
                }
                // Re-checked: a request may have begun since the timer was set.
                match track.deadline(&limits) {
                    Some((at, _)) if at > Instant::now() => {}
                    None => {}
                    Some((_, Why::NoRequest | Why::SlowHead)) => return None,
                    Some((_, Why::Idle)) => {
                        if !draining {
                            graceful(conn.as_mut());
                        }
                        closing = Some(Instant::now() + CLOSE_GRACE);
                    }
                }
            }
            () = drain.started(), if !draining => {
                draining = true;
                graceful(conn.as_mut());
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Starts a graceful drain of every connection and waits for them.
pub(super) struct Drain(watch::Sender<bool>);

/// A connection's view of the drain; shutdown waits until every one is dropped.
pub(super) struct DrainWatch(watch::Receiver<bool>);

impl Drain {
    pub(super) fn new() -> Self {
        Self(watch::channel(false).0)
    }

    pub(super) fn watcher(&self) -> DrainWatch {
        DrainWatch(self.0.subscribe())
    }

    /// Signals every watcher, then waits until all are dropped.
    pub(super) async fn drain(self) {
        self.0.send_replace(true);
        self.0.closed().await;
    }
}

impl DrainWatch {
    /// Resolves once shutdown has begun.
    pub(super) async fn started(&mut self) {
        if self.0.wait_for(|d| *d).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        header: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn one_deadline_from_accept_then_idle_then_a_new_head() {
        let t0 = Instant::now();
        let track = Track::new(t0, true);
        assert_eq!(
            track.deadline(&LIMITS),
            Some((t0 + LIMITS.header, Why::NoRequest))
        );
        tokio::time::advance(Duration::from_secs(3)).await;
        track.bytes_read();
        assert_eq!(
            track.deadline(&LIMITS),
            Some((t0 + LIMITS.header, Why::NoRequest)),
            "bytes of the first head do not move the accept deadline"
        );
        let open = track.begin(true);
        assert_eq!(track.deadline(&LIMITS), None);
        tokio::time::advance(Duration::from_secs(100)).await;
        drop(open);
        let idle_from = t0 + Duration::from_secs(103);
        assert_eq!(
            track.deadline(&LIMITS),
            Some((idle_from + LIMITS.idle, Why::Idle))
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        track.bytes_read();
        assert_eq!(
            track.deadline(&LIMITS),
            Some((
                idle_from + Duration::from_secs(5) + LIMITS.header,
                Why::SlowHead
            ))
        );
        let _again = track.begin(true);
        assert_eq!(track.deadline(&LIMITS), None);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_traffic_between_streams_does_not_start_a_head() {
        let t0 = Instant::now();
        let track = Track::new(t0, false);
        drop(track.begin(true));
        track.bytes_read();
        assert_eq!(track.deadline(&LIMITS).map(|(_, why)| why), Some(Why::Idle));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_between_requests_only_with_nothing_of_the_next_read() {
        let track = Track::new(Instant::now(), true);
        assert!(!track.between_requests(), "no request yet");
        // A request with a body: its bytes are not the next request's.
        let open = track.begin(false);
        track.bytes_read();
        assert!(!track.between_requests(), "a request is open");
        track.body_done();
        drop(open);
        assert!(track.between_requests());
        // A bodiless request, and bytes while it is answered: pipelined.
        let open = track.begin(true);
        track.bytes_read();
        drop(open);
        assert!(!track.between_requests(), "hyper holds the next request");
        // The next request begins: the slate is clean again.
        drop(track.begin(true));
        assert!(track.between_requests());
    }
}
