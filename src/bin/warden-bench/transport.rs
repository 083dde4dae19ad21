//! Idle event streams over each transport path Warden serves, for memory
//! per stream (issue 23): a fresh plain connection, a plain connection that
//! served another request first (a browser that fetched a token, a proxy's
//! upstream keep-alive), TLS with HTTP/1.1, and TLS with HTTP/2 — one stream
//! per connection (one browser tab) or 100 streams per connection.
//!
//! Invariants: every stream carries its own freshly signed token; a stream
//! counts as open only once its answer said 200; the streams are held, not
//! read (an idle stream gets a heartbeat every 30 s, well within the
//! socket's and HTTP/2's windows), so the server's figures are its own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use futures_util::StreamExt as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::conns::{TokenMode, sse_request, unix_now};
use crate::figure::Figure;
use crate::http;
use crate::report::{Figs, status_counts};
use crate::scenario::{Ctx, memory_figs};
use crate::server::Target;

/// How a stream reaches Warden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// Plain HTTP/1.1, the stream the connection's first request.
    PlainFresh,
    /// Plain HTTP/1.1, after a `GET /health` on the same connection.
    PlainKept,
    /// TLS, HTTP/1.1 by ALPN.
    TlsH1,
    /// TLS, HTTP/1.1 by ALPN, after a `GET /health` on the same connection.
    TlsH1Kept,
    /// TLS, HTTP/2 by ALPN, one stream per connection.
    TlsH2,
    /// TLS, HTTP/2 by ALPN, [`H2_SHARED`] streams per connection.
    TlsH2Shared,
}

/// Streams per connection on [`Via::TlsH2Shared`].
pub const H2_SHARED: usize = 100;

impl Via {
    /// Every path, in table order.
    pub const ALL: [Via; 6] = [
        Via::PlainFresh,
        Via::PlainKept,
        Via::TlsH1,
        Via::TlsH1Kept,
        Via::TlsH2,
        Via::TlsH2Shared,
    ];

    /// The row label.
    pub fn label(self) -> &'static str {
        match self {
            Via::PlainFresh => "plain HTTP/1.1, fresh connection",
            Via::PlainKept => "plain HTTP/1.1, kept-alive (GET /health first)",
            Via::TlsH1 => "TLS HTTP/1.1",
            Via::TlsH1Kept => "TLS HTTP/1.1, kept-alive (GET /health first)",
            Via::TlsH2 => "TLS HTTP/2, 1 stream per connection",
            Via::TlsH2Shared => "TLS HTTP/2, 100 streams per connection",
        }
    }

    /// Whether the server terminates TLS.
    pub fn tls(self) -> bool {
        !matches!(self, Via::PlainFresh | Via::PlainKept)
    }
}

/// An open stream kept for the hold: an HTTP/1.1 connection (plain or
/// TLS), or an HTTP/2 stream whose connection a task drives.
struct Held {
    _stream: Box<dyn Send>,
}

fn held(stream: impl Send + 'static) -> Held {
    Held {
        _stream: Box::new(stream),
    }
}

/// `n` idle streams over `path` held for `hold`: server memory per stream.
pub async fn idle(ctx: &Ctx<'_>, via: Via, n: usize, hold: Duration) -> Result<Figs> {
    let before = ctx.server.stats();
    let started = Instant::now();
    let mut statuses = BTreeMap::<String, u64>::new();
    let mut held = Vec::with_capacity(n);
    let tls = match &ctx.server.cert {
        Some(cert) => Some(connector(cert, via)?),
        None if via.tls() => bail!("{} needs a TLS server", via.label()),
        None => None,
    };
    let per_conn = if via == Via::TlsH2Shared {
        H2_SHARED
    } else {
        1
    };
    let conns = n.div_ceil(per_conn);
    let opened: Vec<_> = futures_util::stream::iter(0..conns)
        .map(|c| {
            let tls = tls.clone();
            let count = per_conn.min(n - c * per_conn);
            async move { open(ctx, via, tls, c * per_conn, count).await }
        })
        .buffer_unordered(ctx.inflight.max(1))
        .collect()
        .await;
    for result in opened {
        match result {
            Ok(streams) => {
                *statuses.entry("200".to_owned()).or_default() += streams.len() as u64;
                held.extend(streams);
            }
            Err(e) => *statuses.entry(format!("error: {e:#}")).or_default() += 1,
        }
    }
    let elapsed = started.elapsed();
    let connected = ctx.server.stats();
    tokio::time::sleep(hold).await;
    let end = ctx.server.stats();
    let ok = held.len();
    let mut figs = Figs::default();
    figs.text(Figure::Established, format!("{ok} / {n}"));
    figs.text(Figure::ConnectStatuses, status_counts(&statuses));
    figs.num(Figure::StreamingRate, ok as f64 / elapsed.as_secs_f64());
    memory_figs(&mut figs, ok, [before, connected, end], hold);
    drop(held);
    Ok(figs)
}

/// Opens `count` streams (numbered from `first`) on one connection.
async fn open(
    ctx: &Ctx<'_>,
    via: Via,
    tls: Option<TlsConnector>,
    first: usize,
    count: usize,
) -> Result<Vec<Held>> {
    let addr = ctx.server.addr;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let request = |i| sse_request(Target::Warden, ctx.keys, addr, i, TokenMode::Query);
    let held = match (via, tls) {
        (Via::PlainFresh, _) => vec![held(h1_stream(tcp, &request(first)).await?)],
        (Via::PlainKept, _) => {
            let mut tcp = tcp;
            let health = http::get(addr, "/health", None);
            let status = exchange(&mut tcp, &health).await?;
            anyhow::ensure!(status == 200, "/health answered {status}");
            vec![held(h1_stream(tcp, &request(first)).await?)]
        }
        (Via::TlsH1, Some(tls)) => {
            let stream = tls.connect(server_name(), tcp).await?;
            vec![held(h1_stream(stream, &request(first)).await?)]
        }
        (Via::TlsH1Kept, Some(tls)) => {
            let mut stream = tls.connect(server_name(), tcp).await?;
            let health = http::get(addr, "/health", None);
            let status = exchange(&mut stream, &health).await?;
            anyhow::ensure!(status == 200, "/health answered {status}");
            vec![held(h1_stream(stream, &request(first)).await?)]
        }
        (Via::TlsH2 | Via::TlsH2Shared, Some(tls)) => {
            let stream = tls.connect(server_name(), tcp).await?;
            h2_streams(stream, ctx, first, count).await?
        }
        (_, None) => bail!("no TLS client"),
    };
    Ok(held)
}

/// Sends an SSE request and reads its head: the stream, once it said 200.
async fn h1_stream<S>(mut stream: S, request: &[u8]) -> Result<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (head, _) = http::send_for_head(&mut stream, request).await?;
    anyhow::ensure!(head.status == 200, "status {}", head.status);
    Ok(stream)
}

/// One request with a `Content-Length` answer on a kept-alive connection: its status.
async fn exchange<S>(stream: &mut S, request: &[u8]) -> Result<u16>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (head, mut buf) = http::send_for_head(stream, request).await?;
    let len = head.content_length.context("no content-length")?;
    while buf.len() < len {
        buf.reserve(1024);
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("EOF in the body");
        }
    }
    anyhow::ensure!(buf.len() == len, "bytes after the body");
    Ok(head.status)
}

/// `count` SSE streams on one HTTP/2 connection.
async fn h2_streams<S>(stream: S, ctx: &Ctx<'_>, first: usize, count: usize) -> Result<Vec<Held>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = h2::client::handshake(stream).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut held = Vec::with_capacity(count);
    for i in first..first + count {
        let sub = format!("bench-{i}");
        let token = ctx.keys.warden_token(&sub, unix_now());
        let req = ::http::Request::get(format!("https://localhost/api/events?token={token}"))
            .header("accept", "text/event-stream")
            .body(())?;
        let mut send = send.clone().ready().await?;
        let (resp, _) = send.send_request(req, true)?;
        let resp = tokio::time::timeout(Duration::from_secs(30), resp)
            .await
            .context("HTTP/2 answer timed out")??;
        anyhow::ensure!(resp.status() == 200, "status {}", resp.status());
        held.push(self::held(resp.into_body()));
    }
    Ok(held)
}

/// The name the bench certificate is for.
pub fn server_name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("localhost").expect("a valid name")
}

/// A TLS client trusting only `cert`, offering the protocol `path` uses.
pub fn connector(cert: &Path, via: Via) -> Result<TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(cert).context("reading the certificate")? {
        roots.add(der?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = match via {
        Via::TlsH2 | Via::TlsH2Shared => vec![b"h2".to_vec()],
        _ => vec![b"http/1.1".to_vec()],
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `GET /health` over TLS (HTTP/1.1): `Ok` on a 200.
pub async fn health_over_tls(addr: SocketAddr, cert: &Path) -> Result<()> {
    let tls = connector(cert, Via::TlsH1)?;
    let tcp = TcpStream::connect(addr).await?;
    let mut stream = tls.connect(server_name(), tcp).await?;
    let status = exchange(&mut stream, &http::get(addr, "/health", None)).await?;
    anyhow::ensure!(status == 200, "/health answered {status}");
    Ok(())
}
