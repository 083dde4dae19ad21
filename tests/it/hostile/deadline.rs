//! One deadline from accept to the first request on every transport, and
//! the idle timeout between requests.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{closes_within, h2_client, stays_open, tls_connect, tls_server};
use crate::support;

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().expect("addr")
}

/// Reads one whole `/health` answer (a small head and `{"status":"ok"}`).
async fn read_health<S: tokio::io::AsyncRead + Unpin>(c: &mut S) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("{\"status\":\"ok\"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_request_has_one_deadline_from_accept_on_plain_http() {
    let s = support::spawn("server: {header_timeout_seconds: 2}").await;
    let mut c = TcpStream::connect(addr_of(&s.url)).await.expect("connect");
    let t0 = Instant::now();
    // Starts like an event stream (read by Warden's own head reader) ...
    c.write_all(b"GET /api/even").await.expect("write");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // ... then turns into another request, handed to hyper, and stalls.
    c.write_all(b"X HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    closes_within(&mut c, Duration::from_secs(5))
        .await
        .expect("closed");
    let at = t0.elapsed();
    assert!(
        at >= Duration::from_millis(1800) && at < Duration::from_millis(2700),
        "closed {at:?} after accept: the 2 s deadline runs from accept, once"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_keep_alive_waits_for_the_idle_timeout_and_a_new_head_for_the_header_timeout() {
    let s = support::spawn("server: {header_timeout_seconds: 1, idle_timeout_seconds: 3}").await;
    let addr = addr_of(&s.url);
    let request = b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.write_all(request).await.expect("write");
    read_health(&mut c).await;
    let idle = Instant::now();
    assert!(
        stays_open(&mut c, Duration::from_millis(1800)).await,
        "an idle keep-alive connection was closed before the idle timeout"
    );
    closes_within(&mut c, Duration::from_secs(3))
        .await
        .expect("closed by the idle timeout");
    let at = idle.elapsed();
    assert!(
        at >= Duration::from_millis(2800) && at < Duration::from_millis(4000),
        "{at:?}"
    );
    // A second request starts on an idle connection and never ends: the
    // header timeout applies from its first byte, not the idle timeout.
    let mut c = TcpStream::connect(addr).await.expect("connect");
    c.write_all(request).await.expect("write");
    read_health(&mut c).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.write_all(b"GET /health HTTP/1.1\r\n")
        .await
        .expect("write");
    let slow = closes_within(&mut c, Duration::from_secs(4))
        .await
        .expect("closed");
    assert!(slow < Duration::from_millis(1700), "{slow:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_tls_half_preface_and_no_headers_are_closed_within_the_header_timeout() {
    let s = tls_server("server: {header_timeout_seconds: 1}").await;
    let limit = Duration::from_millis(2500);
    // No ClientHello at all.
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    assert!(closes_within(&mut tcp, limit).await.is_some(), "silent TCP");
    // A handshake, then silence (HTTP/1.1 by ALPN).
    let mut h1 = tls_connect(LOCAL, s.addr, &s.cert, &[b"http/1.1"])
        .await
        .expect("tls");
    assert!(closes_within(&mut h1, limit).await.is_some(), "silent TLS");
    // HTTP/2 by ALPN, half a preface.
    let mut half = tls_connect(LOCAL, s.addr, &s.cert, &[b"h2"])
        .await
        .expect("tls");
    half.write_all(b"PRI * HTTP/2.0\r\n").await.expect("write");
    assert!(
        closes_within(&mut half, limit).await.is_some(),
        "half preface"
    );
    // The whole preface and SETTINGS, but never a HEADERS frame.
    let mut quiet = tls_connect(LOCAL, s.addr, &s.cert, &[b"h2"])
        .await
        .expect("tls");
    quiet
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    quiet
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .expect("settings");
    assert!(
        closes_within(&mut quiet, limit).await.is_some(),
        "no HEADERS"
    );
    let r = super::insecure_client()
        .get(format!("{}/health", s.url))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http2_connection_without_open_streams_is_closed_after_the_idle_timeout() {
    let s = tls_server("server: {header_timeout_seconds: 1, idle_timeout_seconds: 2}").await;
    // A connection with an open event stream is not idle.
    let (mut watcher, busy) = h2_client(&s, None).await;
    let req = http::Request::get(format!("{}/api/events", s.url))
        .header("authorization", format!("Bearer {}", support::list_token()))
        .body(())
        .expect("request");
    let (stream, _) = watcher.send_request(req, true).expect("send");
    let mut events = stream.await.expect("stream").into_body();
    assert!(events.data().await.is_some(), "snapshot");
    let (mut client, conn) = h2_client(&s, None).await;
    let req = http::Request::get(format!("{}/health", s.url))
        .body(())
        .expect("request");
    let (resp, _) = client.send_request(req, true).expect("send");
    let resp = resp.await.expect("response");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    while let Some(chunk) = body.data().await {
        chunk.expect("body");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !conn.is_finished(),
        "closed before the idle timeout (the header timeout is 1 s)"
    );
    tokio::time::timeout(Duration::from_secs(3), conn)
        .await
        .expect("closed by the idle timeout")
        .expect("connection task");
    assert!(
        !busy.is_finished(),
        "the connection with an open stream was closed"
    );
    drop((events, watcher));
}
