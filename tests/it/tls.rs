//! TLS termination: TLS 1.2+ only, HTTP/2 by ALPN, HSTS, the 308 redirect,
//! certificate reload from disk (and a corrupt swap keeping the old one).

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warden::app::AppState;
use warden::clock::Clock;
use warden::redact::Masker;

use crate::support;

struct TlsServer {
    url: String,
    plain_url: String,
    dir: tempfile::TempDir,
    stop: tokio::sync::oneshot::Sender<()>,
}

fn write_cert(dir: &Path) -> Vec<u8> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("cert");
    // Write to temp names and rename, as a certificate manager would (no torn reads).
    std::fs::write(dir.join("cert.pem.tmp"), ck.cert.pem()).expect("cert");
    std::fs::write(dir.join("key.pem.tmp"), ck.signing_key.serialize_pem()).expect("key");
    std::fs::rename(dir.join("key.pem.tmp"), dir.join("key.pem")).expect("rename");
    std::fs::rename(dir.join("cert.pem.tmp"), dir.join("cert.pem")).expect("rename");
    ck.cert.der().to_vec()
}

async fn start() -> (TlsServer, Vec<u8>) {
    start_with("").await
}

/// [`start`] with more configuration lines.
async fn start_with(extra: &str) -> (TlsServer, Vec<u8>) {
    support::init();
    let dir = tempfile::tempdir().expect("tempdir");
    let der = write_cert(dir.path());
    let yaml = format!(
        "server: {{tls: {{cert: {c}, key: {k}}}}}\n{extra}",
        c = dir.path().join("cert.pem").display(),
        k = dir.path().join("key.pem").display()
    );
    let cfg = support::config(dir.path(), &yaml, &[]);
    let (state, _) = AppState::build(cfg, Clock::system(), Masker::new()).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let redirect = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    let plain_url = format!("http://{}", redirect.local_addr().expect("addr"));
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = warden::server::run_with(state, listener, Some(redirect), async {
            let _ = rx.await;
        })
        .await;
    });
    (
        TlsServer {
            url,
            plain_url,
            dir,
            stop,
        },
        der,
    )
}

fn insecure_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn served_cert(url: &str) -> Vec<u8> {
    // A new client each time: a new connection, a new handshake.
    let r = insecure_client()
        .get(format!("{url}/health"))
        .send()
        .await
        .expect("https request");
    let info = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("tls info");
    info.peer_certificate().expect("peer certificate").to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_http2_and_hsts() {
    let (s, der) = start().await;
    let r = insecure_client()
        .get(format!("{}/health", s.url))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "ALPN should negotiate h2"
    );
    let hsts = r.headers()["strict-transport-security"]
        .to_str()
        .expect("hsts")
        .to_owned();
    let max_age: u64 = hsts
        .split("max-age=")
        .nth(1)
        .and_then(|x| x.split(';').next())
        .and_then(|x| x.parse().ok())
        .expect("max-age");
    assert!(max_age >= 31_536_000, "{hsts}");
    assert_eq!(served_cert(&s.url).await, der);
    let _ = s.stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_listener_redirects_everything_with_308() {
    let (s, _) = start().await;
    let r = insecure_client()
        .post(format!("{}/webhooks/livekit?x=1", s.plain_url))
        .body("{}")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 308);
    let port = s.url.rsplit(':').next().expect("port");
    assert_eq!(
        r.headers()["location"],
        format!("https://127.0.0.1:{port}/webhooks/livekit?x=1")
    );
    let _ = s.stop.send(());
}

/// A minimal TLS 1.1 ClientHello (one CBC suite, no extensions).
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x02, 0xc0, 0x13]);
    body.extend_from_slice(&[0x01, 0x00]);
    let mut hs = vec![0x01, 0x00, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x02, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend_from_slice(&hs);
    rec
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_1_1_is_refused() {
    let (s, _) = start().await;
    let addr = s.url.trim_start_matches("https://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
    sock.write_all(&tls11_client_hello()).await.expect("hello");
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
        .await
        .expect("answer")
        .unwrap_or(0);
    // Either an alert record (0x15) — protocol_version (70) or handshake_failure (40) — or a close.
    if n > 0 {
        assert_eq!(buf[0], 0x15, "expected a TLS alert, got {:?}", &buf[..n]);
        assert!(
            matches!(buf.get(6), Some(70) | Some(40)),
            "alert {:?}",
            &buf[..n]
        );
    }
    let _ = s.stop.send(());
}

#[tokio::test(flavor = "multi_thread")]
async fn swapped_certificate_is_served_and_a_corrupt_swap_keeps_the_old_one() {
    let (s, first) = start().await;
    assert_eq!(served_cert(&s.url).await, first);
    // mtime granularity: make sure the new files look changed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = write_cert(s.dir.path());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if served_cert(&s.url).await == second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(
        s.dir.path().join("cert.pem"),
        b"-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .expect("corrupt");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        served_cert(&s.url).await,
        second,
        "a corrupt file must keep the previous certificate"
    );
    let _ = s.stop.send(());
}

/// `warden serve` itself honours `server.redirect_listen` (not only the
/// library): plain HTTP there is answered 308 to the same path on https.
#[tokio::test]
async fn warden_serve_redirects_plain_http_from_redirect_listen() {
    let bin = support::Binary::new();
    write_cert(bin.dir.path());
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
        probe.local_addr().expect("addr").port()
    };
    bin.write_config(&format!(
        "server: {{tls: {{cert: cert.pem, key: key.pem}}, redirect_listen: \"127.0.0.1:{port}\"}}\n"
    ));
    let mut served = bin.serve(&[]);
    assert!(served.url.starts_with("https://"), "{}", served.url);
    let mut c = None;
    for _ in 0..50 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            c = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut c = c.expect("the redirect listener accepts");
    c.write_all(b"GET /api/rooms?room=a HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await
        .expect("write");
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    let https_port = served.url.rsplit(':').next().unwrap_or_default().to_owned();
    assert!(head.starts_with("http/1.1 308"), "{head}");
    // From the https listener's address, never from the client's Host header.
    assert!(
        head.contains(&format!(
            "location: https://127.0.0.1:{https_port}/api/rooms?room=a"
        )),
        "{head}"
    );
    assert!(!head.contains("example.test"), "{head}");
    served.terminate();
}

/// A rustls client trusting `der` only, offering HTTP/1.1.
async fn http1_over_tls(
    url: &str,
    der: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    http1_over_tls_with(url, der, None).await
}

/// [`http1_over_tls`] offering only `suite` when given.
async fn http1_over_tls_with(
    url: &str,
    der: &[u8],
    suite: Option<rustls::SupportedCipherSuite>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
        .expect("root");
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(suite) = suite {
        provider.cipher_suites = vec![suite];
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(url.trim_start_matches("https://"))
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("handshake")
}

/// Sends the stream request on `c` and reads up to its snapshot: what was read.
async fn open_stream(
    c: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    seen: &mut String,
) {
    c.write_all(support::events_request("localhost").as_bytes())
        .await
        .expect("write");
    assert!(
        support::read_until(c, seen, "event: snapshot", 1).await,
        "no snapshot: {seen}"
    );
}

/// Over TLS with HTTP/1.1, a connection's first request for the event
/// stream is written by the direct path, as on plain HTTP (its head says
/// `connection: close`, hyper's never does on a kept-alive stream) with the
/// router's headers, its events arriving through TLS, and its end closing
/// the TLS session; other HTTP/1.1 requests are still hyper's, kept alive.
#[tokio::test(flavor = "multi_thread")]
async fn an_http1_stream_over_tls_is_served_directly() {
    let (s, der) = start().await;
    let mut c = http1_over_tls(&s.url, &der).await;
    let mut seen = String::new();
    open_stream(&mut c, &mut seen).await;
    let head = seen
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    for want in [
        "content-type: text/event-stream",
        "transfer-encoding: chunked",
        "strict-transport-security: max-age=",
        "connection: close",
    ] {
        assert!(head.contains(want), "missing {want:?} in {head}");
    }
    // Other requests: hyper, several on one connection.
    let mut h = http1_over_tls(&s.url, &der).await;
    let mut seen = String::new();
    for i in 1..=2 {
        h.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        assert!(
            support::read_until(&mut h, &mut seen, "\"ok\"", i).await,
            "{seen}"
        );
    }
    assert!(
        !seen.to_ascii_lowercase().contains("connection: close"),
        "{seen}"
    );
    // A refusal on the direct path is a whole answer, then the end.
    let mut r = http1_over_tls(&s.url, &der).await;
    r.write_all(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut all)).await;
    let all = String::from_utf8_lossy(&all);
    assert!(all.starts_with("HTTP/1.1 401"), "{all}");
    assert!(all.contains("unauthorized"), "{all}");
    let _ = s.stop.send(());
}

/// POSTs a signed webhook over TLS; returns the status.
async fn deliver_tls(client: &reqwest::Client, url: &str, body: &[u8]) -> u16 {
    let sig = support::sign_webhook(body, support::KEY, support::SECRET);
    support::deliver_signed(client, url, body, &sig).await
}

/// Reads `c` to its end, which must be the last chunk and a `close_notify`
/// (without it rustls reports an unexpected end of file).
async fn assert_ends_cleanly<S: tokio::io::AsyncRead + Unpin>(c: &mut S, what: &str) {
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(15), c.read_to_end(&mut rest))
        .await
        .expect("the stream ends");
    assert!(end.is_ok(), "{what}: {end:?}");
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "{what}: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// A direct TLS stream is written as records sealed with the session's key
/// once its request is read (`src/http/serve/sock.rs`). For every suite
/// Warden negotiates, TLS 1.3 and 1.2, a rustls client decrypts the head, a
/// snapshot larger than one record (several records in one write) and the
/// events after it, and the stream's end is a clean `close_notify`.
#[tokio::test(flavor = "multi_thread")]
async fn a_direct_tls_stream_is_sealed_for_every_suite() {
    use rustls::crypto::ring::cipher_suite as cs;
    let (s, der) = start_with("realtime: {max_connections_per_ip: 10}").await;
    let client = insecure_client();
    // A snapshot over one TLS record's 16 KiB.
    let long = "n".repeat(100);
    for i in 0..200 {
        let body = support::participant_joined(
            "big",
            "RM_big",
            &format!("PA_{i}"),
            &format!("u{i}"),
            &long,
        );
        assert_eq!(deliver_tls(&client, &s.url, &body).await, 200);
    }
    let suites = [
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ];
    let mut streams = Vec::new();
    for suite in suites {
        let mut c = http1_over_tls_with(&s.url, &der, Some(suite)).await;
        assert_eq!(c.get_ref().1.negotiated_cipher_suite(), Some(suite));
        let mut seen = String::new();
        open_stream(&mut c, &mut seen).await;
        // The whole snapshot, to the blank line that ends it.
        let at = seen.find("event: snapshot").expect("snapshot");
        let ends = seen[..at].matches("\n\n").count() + 1;
        assert!(
            support::read_until(&mut c, &mut seen, "\n\n", ends).await,
            "{suite:?}: {}",
            seen.len()
        );
        let snapshot = &seen[at..];
        assert!(
            snapshot.len() > 16 * 1024,
            "{suite:?}: snapshot of {} bytes",
            snapshot.len()
        );
        assert_eq!(snapshot.matches("\"PA_").count(), 200, "{suite:?}");
        streams.push((suite, c, seen));
    }
    for n in 1..=3 {
        let body = support::room_started(&format!("sealed-{n}"), &format!("RM_sealed{n}"));
        assert_eq!(deliver_tls(&client, &s.url, &body).await, 200);
        for (suite, c, seen) in &mut streams {
            assert!(
                support::read_until(c, seen, "event: room_started", n).await,
                "{suite:?}: event {n} missing"
            );
        }
    }
    // Shutdown ends every stream: the last chunk, then `close_notify`.
    let _ = s.stop.send(());
    for (suite, mut c, _) in streams {
        assert_ends_cleanly(&mut c, &format!("{suite:?}")).await;
    }
}

/// curl (OpenSSL, not rustls) reads a sealed TLS stream over TLS 1.3 and
/// over TLS 1.2, events included.
#[tokio::test(flavor = "multi_thread")]
async fn curl_reads_a_sealed_tls_stream() {
    use std::io::BufRead as _;
    let (s, _) = start().await;
    let client = insecure_client();
    let url = format!("{}/api/events?token={}", s.url, support::list_token());
    for version in ["--tlsv1.3", "--tls-max"] {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sSkN", "--http1.1", "--max-time", "20"]);
        if version == "--tls-max" {
            cmd.args(["--tls-max", "1.2"]);
        } else {
            cmd.arg(version);
        }
        let mut curl = cmd
            .args(["-w", "\n%{ssl_version}\n", &url])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("curl");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let out = curl.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut wait_for = async |want: &str| {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            while let Ok(Some(line)) = tokio::time::timeout_at(deadline, rx.recv()).await {
                if line.contains(want) {
                    return true;
                }
            }
            false
        };
        assert!(wait_for("event: snapshot").await, "{version}: no snapshot");
        let body = support::room_started("curl", &format!("RM_curl{}", support::rand_hex()));
        assert_eq!(deliver_tls(&client, &s.url, &body).await, 200);
        assert!(wait_for("event: room_started").await, "{version}: no event");
        let _ = curl.kill();
        let _ = curl.wait();
    }
    let _ = s.stop.send(());
}

/// A TLS HTTP/1.1 connection kept alive through other requests (a client
/// that fetched a ticket first, a proxy's upstream keep-alive over TLS) is
/// handed back by hyper after each one, and the event stream opened on it
/// is then written by the direct path, sealed, as on a fresh connection:
/// its head says `connection: close` (hyper's never does on a kept-alive
/// stream), its events arrive, and shutdown ends it with `close_notify`.
/// Requests pipelined over TLS are all answered in order.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_stream_after_other_requests_is_written_directly() {
    let (s, der) = start().await;
    let mut c = http1_over_tls(&s.url, &der).await;
    let mut seen = String::new();
    let health = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for i in 1..=2 {
        c.write_all(health.as_bytes()).await.expect("write");
        assert!(
            support::read_until(&mut c, &mut seen, "\"ok\"", i).await,
            "{seen}"
        );
    }
    // Two pipelined in one write, then a request with a body.
    c.write_all(format!("{health}{health}").as_bytes())
        .await
        .expect("write");
    assert!(
        support::read_until(&mut c, &mut seen, "\"ok\"", 4).await,
        "{seen}"
    );
    let body = support::room_started("kept", "RM_kept");
    let post = format!(
        "POST /webhooks/livekit HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/webhook+json\r\nContent-Length: {}\r\n\r\n",
        support::sign_webhook(&body, support::KEY, support::SECRET),
        body.len()
    );
    c.write_all(post.as_bytes()).await.expect("write");
    c.write_all(&body).await.expect("write");
    assert!(
        support::read_until(&mut c, &mut seen, "HTTP/1.1 200", 5).await,
        "{seen}"
    );
    assert!(
        !seen.to_ascii_lowercase().contains("connection: close"),
        "{seen}"
    );
    open_stream(&mut c, &mut seen).await;
    let at = seen
        .find("content-type: text/event-stream")
        .expect("stream head");
    let head = &seen[seen[..at].rfind("HTTP/1.1 ").expect("status line")..];
    let head = head[..head.find("\r\n\r\n").expect("head end")].to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert!(
        head.contains("connection: close"),
        "not the direct path: {head}"
    );
    let client = insecure_client();
    let event = support::room_started("kept-2", "RM_kept2");
    assert_eq!(deliver_tls(&client, &s.url, &event).await, 200);
    assert!(
        support::read_until(&mut c, &mut seen, "RM_kept2", 1).await,
        "{seen}"
    );
    let _ = s.stop.send(());
    assert_ends_cleanly(&mut c, "kept-alive stream").await;
}

/// A client has nothing to say on a stream: over TLS (where Warden no
/// longer decrypts what it sends) a little is tolerated and the events go
/// on; past 16 KiB the stream is cut.
#[tokio::test(flavor = "multi_thread")]
async fn a_tls_stream_whose_client_keeps_talking_is_cut() {
    let (s, der) = start().await;
    let client = insecure_client();
    let mut c = http1_over_tls(&s.url, &der).await;
    let mut seen = String::new();
    open_stream(&mut c, &mut seen).await;
    c.write_all(&[b'x'; 1024]).await.expect("write");
    c.flush().await.expect("flush");
    let body = support::room_started("talk", "RM_talk1");
    assert_eq!(deliver_tls(&client, &s.url, &body).await, 200);
    assert!(
        support::read_until(&mut c, &mut seen, "RM_talk1", 1).await,
        "{seen}"
    );
    // Past the allowance: the server closes.
    for _ in 0..20 {
        if c.write_all(&[b'x'; 1024]).await.is_err() || c.flush().await.is_err() {
            break;
        }
    }
    let mut rest = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut rest)).await;
    assert!(end.is_ok(), "the stream stayed open");
    let _ = s.stop.send(());
}
