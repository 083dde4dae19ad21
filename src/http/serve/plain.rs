//! A plain HTTP/1.1 connection, request by request.
//!
//! Each request head is first read by [`sniff`]: an event stream goes to
//! the direct path ([`pump`]) and keeps no HTTP buffers while idle; any
//! other request is served by hyper, which, once its response is flushed
//! and nothing of the next request has arrived, hands the socket back
//! ([`Tap::handing_back`]) with whatever it read ahead. The next head is
//! sniffed again, so a connection that fetched a token (or a proxy's
//! upstream keep-alive connection) costs an idle stream no more than a fresh
//! one. hyper keeps a connection it cannot hand back (a client that
//! pipelines while a response is written, a request whose body hyper could
//! not finish reading) for one more request, and closes it when the request
//! or response asks to (`Connection: close`, HTTP/1.0), when shutdown begins
//! or on an error, as it always did.
//!
//! Deadlines: the first head must be complete within `header_timeout` of
//! accept (as before); between requests the connection may wait
//! `idle_timeout` for the next head's first byte, then `header_timeout` for
//! the rest; shutdown closes a connection waiting between requests at once.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::conn::{DrainWatch, Track, drive};
use super::sniff::{self, First, Rewound};
use super::svc::Svc;
use super::tap::Tap;
use super::{Shared, gate, pump};

/// Serves a plain connection, or returns the event stream it turned into.
pub(super) async fn serve(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    accepted: Instant,
    pass: gate::Pass,
    mut watcher: DrainWatch,
) -> Option<pump::Pump> {
    let mut buf = Vec::new();
    let mut started = accepted;
    loop {
        let head = tokio::time::timeout_at(
            started + shared.limits.header,
            sniff::read_head(&stream, buf, shared.max_head),
        )
        .await;
        buf = match head {
            // The watcher and the pass go with the stream: shutdown waits for
            // it (the hub closes every stream when shutdown begins), and it
            // counts against its client's connections.
            Ok(First::Events(req)) => {
                let router = shared.router.clone();
                let keep = pump::Keep {
                    _watcher: watcher,
                    _pass: pass,
                };
                let stream = super::sock::Sock::plain(stream);
                return pump::start(stream, req, peer, router, shared.write_timeout, keep).await;
            }
            Ok(First::Other(read)) => {
                let (back, rest) =
                    one_request(&shared, stream, read, peer, started, &mut watcher).await?;
                stream = back;
                rest
            }
            // Closed, or no request within the header timeout (slowloris).
            Ok(First::Gone) | Err(_) => return None,
        };
        if buf.is_empty() && !next_head(&stream, shared.limits.idle, &mut watcher).await {
            return None;
        }
        started = Instant::now();
    }
}

/// Waits up to `idle` for the first byte of the next request: `false` when
/// none came, or shutdown began.
async fn next_head(
    stream: &TcpStream,
    idle: std::time::Duration,
    watcher: &mut DrainWatch,
) -> bool {
    tokio::select! {
        ready = tokio::time::timeout(idle, stream.readable()) => matches!(ready, Ok(Ok(()))),
        () = watcher.started() => false,
    }
}

type Io = TokioIo<Tap<Rewound>>;

/// hyper's connection run until it ends without closing the socket.
struct Serving(http1::Connection<Io, Svc>);

impl Future for Serving {
    type Output = hyper::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_without_shutdown(cx)
    }
}

/// Serves one request (or a few pipelined ones) with hyper, `read` being the
/// bytes of it already read: the socket and the bytes hyper read ahead when
/// it handed the connection back, `None` when the connection is done.
async fn one_request(
    shared: &Shared,
    stream: TcpStream,
    read: Vec<u8>,
    peer: SocketAddr,
    started: Instant,
    watcher: &mut DrainWatch,
) -> Option<(TcpStream, Vec<u8>)> {
    let local = stream.local_addr().unwrap_or(peer);
    let track = Track::new(started, true);
    let svc = Svc {
        router: shared.router.clone(),
        peer,
        local,
        track: track.clone(),
    };
    let io = TokioIo::new(Tap::new(Rewound::new(read, stream), track.clone()).handing_back());
    let mut serving = Serving(shared.h1.serve_connection(io, svc));
    let graceful = |s: Pin<&mut Serving>| Pin::new(&mut s.get_mut().0).graceful_shutdown();
    let out = drive(
        Pin::new(&mut serving),
        graceful,
        &track,
        shared.limits,
        watcher,
    )
    .await;
    if !matches!(out, Some(Ok(()))) {
        return None;
    }
    let parts = serving.0.into_parts();
    if !parts.io.inner().handed_back() {
        return None;
    }
    let (rest, stream) = parts.io.into_inner().into_inner().into_parts();
    let mut buf = parts.read_buf.to_vec();
    buf.extend_from_slice(&rest);
    Some((stream, buf))
}
