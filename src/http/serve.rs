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
    let builder = Arc::new(builder);
    // Plain HTTP is HTTP/1.1 only (h2c is not offered): hyper's http1
    // connection alone, without the h1/h2 detection state, is the smaller
    // per-connection footprint for tens of thousands of idle SSE streams.
    let mut h1 = hyper::server::conn::http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .max_buf_size(opts.max_header_bytes.max(8192))
        .keep_alive(true);
    let h1 = Arc::new(h1);
    let graceful = GracefulShutdown::new();
    let acceptor = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
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
        let (router, builder, watcher, acceptor) = (
            router.clone(),
            builder.clone(),
            graceful.watcher(),
            acceptor.clone(),
        );
        let h1 = h1.clone();
        let handshake = opts.header_timeout;
        tokio::spawn(async move {
            match acceptor {
                None => plain_connection(stream, peer, router, &h1, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connection(tls, peer, router, &builder, watcher).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
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

async fn plain_connection(
    stream: TcpStream,
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
