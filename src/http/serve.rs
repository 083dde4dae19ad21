//! The accept loop: hyper with the defences axum's `serve` does not expose.
//!
//! Every connection gets a header-read timeout (slowloris), a bounded request
//! head, `TCP_NODELAY` (SSE frames go out at once), TCP keep-alive and
//! `TCP_USER_TIMEOUT` (a dead or half-open peer with unacknowledged data —
//! including one that stopped reading — is dropped by the kernel within the
//! write timeout instead of lingering for hours). With TLS, the handshake has
//! the same deadline as the request head. Shutdown stops accepting, lets
//! hyper finish in-flight requests gracefully and gives up after
//! `shutdown_grace`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

mod direct;

/// How connections are served.
#[derive(Clone)]
pub struct ServeOptions {
    /// Time to read a request head (and to complete a TLS handshake).
    pub header_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Unacknowledged data older than this kills the connection.
    pub write_timeout: Duration,
    /// TLS, when Warden terminates it.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl ServeOptions {
    /// From the configuration (TLS added by the caller).
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            header_timeout: cfg.server.header_timeout,
            max_header_bytes: cfg.server.max_header_bytes,
            shutdown_grace: cfg.server.shutdown_grace,
            write_timeout: cfg.realtime.write_timeout,
            tls: None,
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
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .max_buf_size(opts.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)));
    // Plain HTTP is HTTP/1.1 only (h2c is not offered): hyper's http1
    // connection alone, without the h1/h2 detection state, is the smaller
    // per-connection footprint.
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .max_buf_size(opts.max_header_bytes.max(8192))
        .keep_alive(true);
    let shared = Arc::new(Shared {
        router,
        auto: builder,
        h1,
        acceptor: opts.tls.clone().map(tokio_rustls::TlsAcceptor::from),
        header_timeout: opts.header_timeout,
        max_head: opts.max_header_bytes,
        write_timeout: opts.write_timeout,
    });
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tune(&stream, opts.write_timeout);
        tokio::spawn(connection_task(Box::new(Conn {
            shared: shared.clone(),
            stream,
            peer,
            watcher: graceful.watcher(),
        })));
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("all connections closed"),
        () = tokio::time::sleep(opts.shutdown_grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
}

async fn connection<S>(
    stream: S,
    peer: SocketAddr,
    router: Router,
    builder: &Builder<TokioExecutor>,
    watcher: Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = router.map_request(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let conn =
        builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc));
    let _ = watcher.watch(conn.into_owned()).await;
}

/// What every connection of one listener shares.
struct Shared {
    router: Router,
    /// TLS connections: HTTP/1.1 or HTTP/2 by ALPN.
    auto: Builder<TokioExecutor>,
    /// Plain connections: HTTP/1.1.
    h1: hyper::server::conn::http1::Builder,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    header_timeout: Duration,
    max_head: usize,
    write_timeout: Duration,
}

/// One accepted connection, boxed so that the task's own state is a pointer.
struct Conn {
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    watcher: Watcher,
}

/// A connection's task. Everything but an event stream's pump runs boxed,
/// so an idle stream's task holds only the pump (its size is checked by a
/// test): tens of thousands of them are most of Warden's memory.
async fn connection_task(conn: Box<Conn>) {
    if let Some(pump) = Box::pin(conn.serve()).await {
        pump.run().await;
    }
}

impl Conn {
    /// Serves the connection, or returns the event stream it turned into.
    async fn serve(self: Box<Self>) -> Option<direct::Pump> {
        let Conn {
            shared,
            stream,
            peer,
            watcher,
        } = *self;
        let router = shared.router.clone();
        if let Some(acceptor) = &shared.acceptor {
            match tokio::time::timeout(shared.header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => connection(tls, peer, router, &shared.auto, watcher).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
            return None;
        }
        let first = tokio::time::timeout(
            shared.header_timeout,
            direct::read_first(&stream, shared.max_head),
        )
        .await;
        match first {
            // The watcher goes with the stream: shutdown waits for it (the
            // hub closes every stream when shutdown begins).
            Ok(direct::First::Events(req)) => {
                direct::start(stream, req, peer, router, shared.write_timeout, watcher).await
            }
            Ok(direct::First::Other(read)) => {
                let stream = direct::Rewound::new(read, stream);
                plain_connection(stream, peer, router, &shared.h1, watcher).await;
                None
            }
            // Closed, or no request within the header timeout (slowloris).
            Ok(direct::First::Gone) | Err(_) => None,
        }
    }
}

async fn plain_connection(
    stream: direct::Rewound,
    peer: SocketAddr,
    router: Router,
    builder: &hyper::server::conn::http1::Builder,
    watcher: Watcher,
) {
    let svc = router.map_request(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
    let _ = watcher.watch(conn).await;
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

/// A router that answers every request with 308 to the same path on https.
pub fn redirect_router(public_url: Option<String>, https_port: u16) -> Router {
    Router::new().fallback(move |req: axum::extract::Request| {
        let base = public_url.clone();
        async move {
            let host = req
                .headers()
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(|h| {
                    h.rsplit_once(':')
                        .filter(|(_, p)| p.parse::<u16>().is_ok())
                        .map_or(h, |(n, _)| n)
                })
                .filter(|h| {
                    h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c))
                })
                .unwrap_or("localhost")
                .to_owned();
            let base = base
                .map(|b| b.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| {
                    if https_port == 443 {
                        format!("https://{host}")
                    } else {
                        format!("https://{host}:{https_port}")
                    }
                });
            let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let location = format!("{base}{path}");
            (
                axum::http::StatusCode::PERMANENT_REDIRECT,
                [(axum::http::header::LOCATION, location)],
            )
        }
    })
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
        let graceful = GracefulShutdown::new();
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.timer(TokioTimer::new());
        let shared = Arc::new(Shared {
            router: Router::new(),
            auto: Builder::new(TokioExecutor::new()),
            h1,
            acceptor: None,
            header_timeout: Duration::from_secs(1),
            max_head: 8192,
            write_timeout: Duration::from_secs(1),
        });
        let fut = connection_task(Box::new(Conn {
            shared,
            stream,
            peer,
            watcher: graceful.watcher(),
        }));
        let size = std::mem::size_of_val(&fut);
        eprintln!("connection task future: {size} bytes");
        assert!(size <= 512, "the connection future grew to {size} bytes");
        drop((fut, client));
    }
}
