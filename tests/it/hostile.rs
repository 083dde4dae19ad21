//! Hostile clients on every transport (issue #17): deadlines from accept,
//! idle timeouts, connection caps and descriptor exhaustion, HTTP/2 streams
//! bound like HTTP/1 ones, revocation that cuts live access, and the smaller
//! edges (cookies, `/metrics`, redirects, `status --url`, names, ids, files).
//! Everything over real sockets; HTTP/2 with the `h2` crate as the client.

mod caps;
mod deadline;
mod edges;
mod http2;
mod revoke;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use warden::app::AppState;
use warden::clock::Clock;
use warden::redact::Masker;

use crate::support;

/// An in-process Warden terminating TLS.
pub struct TlsServer {
    pub addr: SocketAddr,
    pub url: String,
    pub state: AppState,
    pub cert: Vec<u8>,
    /// Holds the certificate and the data until the server is dropped.
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A self-signed certificate for `localhost` in `dir` (cert.pem, key.pem); returns its DER.
pub fn write_cert(dir: &Path) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    std::fs::write(dir.join("cert.pem"), ck.cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem"), ck.signing_key.serialize_pem()).expect("key");
    ck.cert.der().to_vec()
}

/// Starts Warden with TLS and `yaml` over the test defaults.
pub async fn tls_server(yaml: &str) -> TlsServer {
    support::init();
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = write_cert(dir.path());
    let tls = format!(
        "server: {{tls: {{cert: {c}, key: {k}}}}}",
        c = dir.path().join("cert.pem").display(),
        k = dir.path().join("key.pem").display()
    );
    let mut cfg_yaml = serde_json::json!({});
    for doc in [tls.as_str(), yaml] {
        if let Ok(v @ serde_json::Value::Object(_)) = serde_norway::from_str(doc) {
            merge(&mut cfg_yaml, v);
        }
    }
    let text = serde_norway::to_string(&cfg_yaml).expect("yaml");
    let cfg = support::config(dir.path(), &text, &[]);
    let (state, _) = AppState::build(cfg, Clock::system(), Masker::new()).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    tokio::spawn(async move {
        let _ = warden::server::run_with(st, listener, None, async {
            let _ = rx.await;
        })
        .await;
    });
    TlsServer {
        addr,
        url: format!("https://{addr}"),
        state,
        cert,
        _dir: dir,
        stop: Some(stop),
    }
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// A TCP connection to `addr` from `from` (e.g. 127.0.0.2).
pub async fn connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(from, 0))?;
    sock.connect(addr).await
}

/// A TLS client trusting only `cert`, offering `alpn`.
pub fn tls_connector(cert: &[u8], alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(cert.to_vec()))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// A completed TLS handshake with `addr` from `from`.
pub async fn tls_connect(
    from: IpAddr,
    addr: SocketAddr,
    cert: &[u8],
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = connect_from(from, addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    tls_connector(cert, alpn).connect(name, tcp).await
}

/// An HTTP/2 client over TLS; `window` is the initial stream window it grants.
pub async fn h2_client(
    server: &TlsServer,
    window: Option<u32>,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tls = tls_connect(
        IpAddr::from([127, 0, 0, 1]),
        server.addr,
        &server.cert,
        &[b"h2"],
    )
    .await
    .expect("tls");
    let mut b = h2::client::Builder::new();
    if let Some(w) = window {
        b.initial_window_size(w);
    }
    let (client, conn) = b.handshake::<_, Bytes>(tls).await.expect("h2 handshake");
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    (client, task)
}

/// Reads (and discards) until the peer closes; `Some(elapsed)` if it did within `limit`.
pub async fn closes_within<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// True when nothing arrives and the peer does not close within `window`.
pub async fn stays_open<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, window: Duration) -> bool {
    let mut buf = [0u8; 1];
    tokio::time::timeout(window, stream.read(&mut buf))
        .await
        .is_err()
}

/// The value of the sample `name` (with its labels) in `/metrics`, read
/// from a loopback address of its own (127.0.0.4: never one a test caps).
pub async fn metric(base: &str, name: &str) -> f64 {
    let text = client_from(IpAddr::from([127, 0, 0, 4]))
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A client that accepts the test certificate, from 127.0.0.1.
pub fn insecure_client() -> reqwest::Client {
    client_from(IpAddr::from([127, 0, 0, 1]))
}

/// A client that accepts the test certificate, with its sockets bound to `from`.
pub fn client_from(from: IpAddr) -> reqwest::Client {
    support::init();
    reqwest::Client::builder()
        .no_proxy()
        .local_address(from)
        .danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}
