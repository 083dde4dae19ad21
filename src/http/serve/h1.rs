//! An HTTP/1.1 connection, plain or TLS, request by request.
//!
//! Each request head is first read by [`sniff`]: an event stream goes to
//! the direct path ([`pump`]; over TLS, records sealed without rustls's
//! buffers, see [`super::sock`]) and keeps no HTTP buffers while idle; any
//! other request is served by hyper, which, once its response is flushed
//! and nothing of the next request has arrived, hands the socket back
//! ([`Tap::handing_back`]) with whatever it read ahead. The next head is
//! sniffed again, so a connection that fetched a token (or a proxy's
//! upstream keep-alive connection, plain or TLS) costs an idle stream no
//! more than a fresh one. hyper keeps a connection it cannot hand back (a
//! client that pipelines while a response is written, a request whose body
//! hyper could not finish reading) for one more request, and closes it when
//! the request or response asks to (`Connection: close`, HTTP/1.0), when
//! shutdown begins or on an error, as it always did.
//!
//! Deadlines: the first head must be complete within `header_timeout` of
//! accept (the TLS handshake included); between requests the connection may
//! wait `idle_timeout` for the next head's first byte, then `header_timeout`
//! for the rest; shutdown closes a connection waiting between requests at once.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::conn::{DrainWatch, Track, drive};
use super::sniff::{self, First, Rewound};
use super::sock::Sock;
use super::svc::Svc;
use super::tap::Tap;
use super::{Shared, gate, pump};

/// The socket under an HTTP/1.1 connection: plain TCP, or TLS over it.
pub(super) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    /// Reads, after the bytes in `buf`, until the head is known (see [`sniff`]).
    fn head(&mut self, buf: Vec<u8>, max_head: usize) -> impl Future<Output = First> + Send;

    /// Waits for the next request's first bytes (over TLS, read into `buf`):
    /// `false` when the connection ended instead.
    fn next(&mut self, buf: &mut Vec<u8>) -> impl Future<Output = bool> + Send;

    /// The connection, for the direct path; `None` when it cannot be had.
    fn into_sock(self, write_timeout: Duration) -> impl Future<Output = Option<Sock>> + Send;

    /// The TCP socket underneath.
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    async fn head(&mut self, buf: Vec<u8>, max_head: usize) -> First {
        sniff::read_head(self, buf, max_head).await
    }

    async fn next(&mut self, _buf: &mut Vec<u8>) -> bool {
        self.readable().await.is_ok()
    }

    async fn into_sock(self, _write_timeout: Duration) -> Option<Sock> {
        Some(Sock::plain(self))
    }

    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Socket for TlsStream<TcpStream> {
    async fn head(&mut self, buf: Vec<u8>, max_head: usize) -> First {
        sniff::read_head_from(self, buf, max_head).await
    }

    async fn next(&mut self, buf: &mut Vec<u8>) -> bool {
        // What is readable on TCP may be a record that holds no request
        // bytes (or rustls may hold some already): read through TLS.
        let mut chunk = [0u8; 2048];
        match tokio::io::AsyncReadExt::read(self, &mut chunk).await {
            Ok(n) if n > 0 => {
                buf.extend_from_slice(&chunk[..n]);
                true
            }
            _ => false,
        }
    }

    async fn into_sock(self, write_timeout: Duration) -> Option<Sock> {
        match tokio::time::timeout(write_timeout, Sock::tls(self)).await {
            Ok(Ok(sock)) => Some(sock),
            Ok(Err(Some(e))) => {
                tracing::warn!(error = %e, "a TLS event stream could not be taken over; closing it");
                None
            }
            // The client left, or did not take the session tickets in time.
            Ok(Err(None)) | Err(_) => None,
        }
    }

    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Serves an HTTP/1.1 connection, or returns the event stream it turned into.
pub(super) async fn serve<S: Socket>(
    shared: Arc<Shared>,
    mut stream: S,
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
            stream.head(buf, shared.max_head),
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
                let sock = stream.into_sock(shared.write_timeout).await?;
                return pump::start(sock, req, peer, router, shared.write_timeout, keep).await;
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
        if buf.is_empty()
            && !next_head(&mut stream, &mut buf, shared.limits.idle, &mut watcher).await
        {
            return None;
        }
        started = Instant::now();
    }
}

/// Waits up to `idle` for the first bytes of the next request: `false` when
/// none came, or shutdown began.
async fn next_head<S: Socket>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    idle: Duration,
    watcher: &mut DrainWatch,
) -> bool {
    tokio::select! {
        next = tokio::time::timeout(idle, stream.next(buf)) => matches!(next, Ok(true)),
        () = watcher.started() => false,
    }
}

/// hyper's connection run until it ends without closing the socket.
struct Serving<S: Socket>(http1::Connection<TokioIo<Tap<Rewound<S>>>, Svc>);

impl<S: Socket> Future for Serving<S> {
    type Output = hyper::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll_without_shutdown(cx)
    }
}

/// Serves one request (or a few pipelined ones) with hyper, `read` being the
/// bytes of it already read: the socket and the bytes hyper read ahead when
/// it handed the connection back, `None` when the connection is done.
async fn one_request<S: Socket>(
    shared: &Shared,
    stream: S,
    read: Vec<u8>,
    peer: SocketAddr,
    started: Instant,
    watcher: &mut DrainWatch,
) -> Option<(S, Vec<u8>)> {
    let local = stream.tcp().local_addr().unwrap_or(peer);
    let track = Track::new(started, true);
    let svc = Svc {
        router: shared.router.clone(),
        peer,
        local,
        track: track.clone(),
    };
    let io = TokioIo::new(Tap::new(Rewound::new(read, stream), track.clone()).handing_back());
    let mut serving = Serving(shared.h1.serve_connection(io, svc));
    let graceful = |s: Pin<&mut Serving<S>>| Pin::new(&mut s.get_mut().0).graceful_shutdown();
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
