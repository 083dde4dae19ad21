//! The accept loop: hyper with the defences axum's `serve` does not expose.
//!
//! At accept, the [`gate`] caps open TCP connections per client address and
//! in all, and keeps the loop alive through file-descriptor exhaustion.
//! Every connection gets `TCP_NODELAY` (SSE frames go out at once), TCP
//! keep-alive and `TCP_USER_TIMEOUT` (a dead or half-open peer with
//! unacknowledged data — including one that stopped reading — is dropped by
//! the kernel within the write timeout instead of lingering for hours), a
//! bounded request head, and the deadlines of [`conn`]: one from accept to
//! the first request (TLS handshake included), an idle timeout between
//! requests. With TLS, ALPN picks HTTP/2 or HTTP/1.1; HTTP/2 streams are
//! watched by [`stream`]. HTTP/1.1, plain or TLS, is served request by
//! request by [`h1`]: event streams written directly ([`pump`]), without
//! hyper's buffers (over TLS, without rustls's: [`sock`]), any other request
//! by hyper, which hands the connection back after it. Shutdown stops accepting, lets connections
//! finish gracefully and gives up after `shutdown_grace`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use futures_util::FutureExt as _;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::metrics::Metrics;

mod conn;
pub mod gate;
mod h1;
mod pump;
mod redirect;
mod sniff;
mod sock;
pub mod stream;
mod svc;
mod tap;
mod wire;

pub use redirect::{LocalAddr, redirect_router};

use conn::{Drain, DrainWatch, Limits, Track, drive};
use svc::Svc;
use tap::Tap;

/// Largest body chunk hyper buffers per HTTP/2 stream beyond its window.
const H2_SEND_BUFFER: usize = 64 * 1024;

/// How connections are served.
#[derive(Clone)]
pub struct ServeOptions {
    /// Accept → first request head (TLS handshake included); a new head on an idle connection.
    pub header_timeout: Duration,
    /// A connection with nothing open is closed after this.
    pub idle_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Unacknowledged data older than this kills the connection; a stalled
    /// HTTP/2 event stream is cut after this.
    pub write_timeout: Duration,
    /// TLS, when Warden terminates it. HTTP/1.1 event streams need
    /// `enable_secret_extraction` (see [`sock`]; `crate::tls` sets it).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Open connections per client address.
    pub max_per_ip: usize,
    /// Open connections in all; `None`: the open-file limit minus a reserve.
    pub max_total: Option<usize>,
    /// IPv6 clients are counted per prefix of this length.
    pub ipv6_prefix: u8,
    /// Addresses exempt from `max_per_ip` (trusted proxies).
    pub exempt: Vec<IpNet>,
    /// Where refusals and open connections are counted.
    pub metrics: Option<Metrics>,
}

impl ServeOptions {
    /// From the configuration (TLS and metrics added by the caller).
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            header_timeout: cfg.server.header_timeout,
            idle_timeout: cfg.server.idle_timeout,
            max_header_bytes: cfg.server.max_header_bytes,
            shutdown_grace: cfg.server.shutdown_grace,
            write_timeout: cfg.realtime.write_timeout,
            tls: None,
            max_per_ip: cfg.server.max_tcp_connections_per_ip,
            max_total: cfg.server.max_tcp_connections,
            ipv6_prefix: cfg.suspicious_activity.ipv6_prefix_length,
            exempt: cfg.server.trusted_proxies.clone(),
            metrics: None,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let max_total = opts.max_total.unwrap_or_else(gate::fd_budget);
    let gate = gate::Gate::new(
        opts.max_per_ip,
        opts.ipv6_prefix,
        opts.exempt.clone(),
        max_total,
        opts.metrics.clone(),
    );
    let shared = Arc::new(Shared::new(router, &opts));
    let drain = Drain::new();
    let mut reserve = gate::Reserve::new();
    // Connections closed at accept for want of descriptors, in the current burst.
    let mut shed: u64 = 0;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) if gate::is_exhaustion(&e) => {
                if shed == 0 {
                    tracing::warn!(error = %e, tcp.open = gate.open(), "out of file descriptors: closing new connections at once until some end (raise `ulimit -n`, or lower server.max_tcp_connections)");
                }
                shed += 1;
                if let Some(m) = &opts.metrics {
                    m.tcp_refusal("fd_exhausted");
                }
                // The reserve lets the waiting connection be taken and closed
                // (its client gets an answer, not a hang); otherwise back off.
                let closed =
                    reserve.release() && matches!(listener.accept().now_or_never(), Some(Ok(_)));
                reserve.restore();
                if !closed {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        if shed > 0 {
            tracing::info!(tcp.shed = shed, "accepting connections again");
            shed = 0;
        }
        let accepted = Instant::now();
        let pass = match gate.admit(peer.ip()) {
            Ok(pass) => pass,
            Err(reason) => {
                tracing::debug!(reason, "connection refused at accept");
                continue;
            }
        };
        tune(&stream, opts.write_timeout);
        tokio::spawn(connection_task(Box::new(Conn {
            shared: shared.clone(),
            stream,
            peer,
            accepted,
            pass,
            watcher: drain.watcher(),
        })));
    }
    drop(listener);
    tokio::select! {
        () = drain.drain() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(opts.shutdown_grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
}

/// What every connection of one listener shares.
struct Shared {
    router: Router,
    /// HTTP/1.1, plain or by ALPN.
    h1: http1::Builder,
    /// HTTP/2 by ALPN; its streams run [`stream::Watched`].
    h2: http2::Builder<stream::StreamExec>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    max_head: usize,
    write_timeout: Duration,
}

impl Shared {
    fn new(router: Router, opts: &ServeOptions) -> Self {
        let mut h1 = http1::Builder::new();
        // hyper's own head timer is off: [`conn::drive`] keeps one deadline
        // from accept, and one per head on an idle connection.
        h1.timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(opts.max_header_bytes.max(8192))
            .keep_alive(true);
        let mut h2 = http2::Builder::new(stream::StreamExec {
            write_timeout: opts.write_timeout,
        });
        h2.timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(20)))
            .max_send_buf_size(H2_SEND_BUFFER)
            .max_header_list_size(u32::try_from(opts.max_header_bytes).unwrap_or(u32::MAX));
        Self {
            router,
            h1,
            h2,
            acceptor: opts.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            limits: Limits {
                header: opts.header_timeout,
                idle: opts.idle_timeout,
            },
            max_head: opts.max_header_bytes,
            write_timeout: opts.write_timeout,
        }
    }
}

/// One accepted connection, boxed so that the task's own state is a pointer.
struct Conn {
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    accepted: Instant,
    pass: gate::Pass,
    watcher: DrainWatch,
}

/// A connection's task. Everything but an event stream's pump runs boxed,
/// so an idle stream's task holds only the pump (its size is checked by a
/// test): tens of thousands of them are most of Warden's memory.
async fn connection_task(conn: Box<Conn>) {
    // Each kind of connection is its own boxed future, sized for what it
    // holds: a plain connection does not carry TLS's states, nor one over
    // TLS the states of the protocol ALPN did not pick.
    let pump = if conn.shared.acceptor.is_some() {
        Box::pin(conn.serve_tls()).await
    } else {
        Box::pin(conn.serve_plain()).await
    };
    if let Some(pump) = pump {
        pump.run().await;
    }
}

impl Conn {
    /// Serves a plain connection, or returns the event stream it turned into.
    async fn serve_plain(self: Box<Self>) -> Option<pump::Pump> {
        let c = *self;
        h1::serve(c.shared, c.stream, c.peer, c.accepted, c.pass, c.watcher).await
    }

    /// Serves a TLS connection, or returns the event stream it turned into.
    async fn serve_tls(self: Box<Self>) -> Option<pump::Pump> {
        let Conn {
            shared,
            stream,
            peer,
            accepted,
            pass,
            mut watcher,
        } = *self;
        let first_deadline = accepted + shared.limits.header;
        let acceptor = shared.acceptor.as_ref()?;
        // The handshake is inside the one deadline from accept.
        let tls = match tokio::time::timeout_at(first_deadline, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return None;
            }
        };
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            // HTTP/1.1: request by request, as on plain HTTP.
            return Box::pin(h1::serve(shared, tls, peer, accepted, pass, watcher)).await;
        }
        let local = tls.get_ref().0.local_addr().unwrap_or(peer);
        let track = Track::new(accepted, false);
        let svc = Svc {
            router: shared.router.clone(),
            peer,
            local,
            track: track.clone(),
        };
        let io = TokioIo::new(Tap::new(tls, track.clone()));
        // Boxed: the TLS connection's own future keeps only the handshake.
        let mut conn = Box::pin(shared.h2.serve_connection(io, svc));
        drive(
            conn.as_mut(),
            |c| c.graceful_shutdown(),
            &track,
            shared.limits,
            &mut watcher,
        )
        .await;
        None
    }
}

fn tune(stream: &TcpStream, write_timeout: Duration) {
    let _ = stream.set_nodelay(true);
    let sock = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    let _ = sock.set_tcp_keepalive(&keepalive);
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = sock.set_tcp_user_timeout(Some(write_timeout));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = write_timeout;
}

/// The peer address a request came from (set by [`serve`]; tests may set it).
pub fn peer_of(req: &axum::extract::Request) -> Option<SocketAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle SSE connection is one task holding this future: its size
    /// is most of Warden's memory per connection, so it is kept in check.
    #[tokio::test]
    async fn a_plain_connection_task_stays_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let (stream, peer) = listener.accept().await.expect("accept");
        let drain = Drain::new();
        let mut opts = ServeOptions::from_config(&crate::config::Config::defaults());
        opts.header_timeout = Duration::from_secs(1);
        let shared = Arc::new(Shared::new(Router::new(), &opts));
        let gate = gate::Gate::new(10, 64, Vec::new(), 10, None);
        let fut = connection_task(Box::new(Conn {
            shared,
            stream,
            peer,
            accepted: Instant::now(),
            pass: gate.admit(peer.ip()).expect("admitted"),
            watcher: drain.watcher(),
        }));
        let size = std::mem::size_of_val(&fut);
        eprintln!("connection task future: {size} bytes");
        assert!(size <= 512, "the connection future grew to {size} bytes");
        drop((fut, client));
    }

    /// The boxed future that serves a connection until it is a stream is
    /// allocated for every connection, and freed heap is not given back: at
    /// 256 connects in flight it shows in the idle streams' RSS. A plain
    /// connection's must not carry TLS's or HTTP/2's states (it did once:
    /// 9 kB, and 90–280 B more RSS per idle stream).
    #[tokio::test]
    async fn a_plain_connections_serving_future_holds_no_tls_state() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let opts = ServeOptions::from_config(&crate::config::Config::defaults());
        let shared = Arc::new(Shared::new(Router::new(), &opts));
        let gate = gate::Gate::new(10, 64, Vec::new(), 10, None);
        let drain = Drain::new();
        let client = TcpStream::connect(addr).await.expect("connect");
        let (stream, peer) = listener.accept().await.expect("accept");
        let conn = Box::new(Conn {
            shared,
            stream,
            peer,
            accepted: Instant::now(),
            pass: gate.admit(peer.ip()).expect("admitted"),
            watcher: drain.watcher(),
        });
        let fut = conn.serve_plain();
        let size = std::mem::size_of_val(&fut);
        eprintln!("plain connection's serving future: {size} bytes");
        assert!(
            size <= 2048,
            "the plain serving future grew to {size} bytes"
        );
        drop((fut, client));
    }
}
