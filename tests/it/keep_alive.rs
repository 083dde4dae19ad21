//! Plain kept-alive connections (issue 23): a request served by hyper hands
//! the connection back, so an event stream opened after it on the same
//! connection is written by the direct path (its head says `connection:
//! close`, which hyper's never does for a kept-alive stream); pipelined
//! requests, request bodies, `Connection: close`, HTTP/1.0 and a slow next
//! request behave as HTTP says. Real server, raw sockets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support;

const T: Duration = Duration::from_secs(10);

async fn connect(s: &support::TestServer) -> TcpStream {
    let addr = s.url.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Reads until the peer closes: `Some(all it sent)`, `None` if it stays open.
async fn read_to_close(c: &mut TcpStream) -> Option<String> {
    let mut all = Vec::new();
    match tokio::time::timeout(T, c.read_to_end(&mut all)).await {
        Ok(_) => Some(String::from_utf8_lossy(&all).into_owned()),
        Err(_) => None,
    }
}

fn events() -> String {
    support::events_request("x")
}

const HEALTH: &str = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

/// The head of the stream's response in `seen` (after `skip` other responses).
fn stream_head(seen: &str) -> String {
    let at = seen.find("content-type: text/event-stream").unwrap_or(0);
    let start = seen[..at].rfind("HTTP/1.1 ").unwrap_or(0);
    let end = seen[start..]
        .find("\r\n\r\n")
        .map_or(seen.len(), |e| start + e);
    seen[start..end].to_ascii_lowercase()
}

#[tokio::test]
async fn a_stream_after_another_request_is_served_directly() {
    let s = support::spawn("").await;
    let mut c = connect(&s).await;
    let mut seen = String::new();
    // Several requests first, one at a time, then the stream.
    for i in 1..=3 {
        c.write_all(HEALTH.as_bytes()).await.expect("write");
        assert!(
            support::read_until(&mut c, &mut seen, "\"ok\"", i).await,
            "{seen}"
        );
    }
    c.write_all(events().as_bytes()).await.expect("write");
    assert!(
        support::read_until(&mut c, &mut seen, "event: snapshot", 1).await,
        "{seen}"
    );
    let head = stream_head(&seen);
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(
        head.contains("connection: close"),
        "the stream went through hyper: {head}"
    );
}

#[tokio::test]
async fn a_stream_after_a_request_with_a_body_is_served_directly() {
    let s = support::spawn("").await;
    let mut c = connect(&s).await;
    // A webhook with a bad signature: refused, its body read or dropped.
    let body = br#"{"event":"room_started"}"#;
    let post = format!(
        "POST /webhooks/livekit HTTP/1.1\r\nHost: x\r\nAuthorization: nope\r\nContent-Type: application/webhook+json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(post.as_bytes()).await.expect("write");
    c.write_all(body).await.expect("write");
    let mut seen = String::new();
    assert!(
        support::read_until(&mut c, &mut seen, "HTTP/1.1 4", 1).await,
        "{seen}"
    );
    assert!(
        support::read_until(&mut c, &mut seen, "}", 1).await,
        "{seen}"
    );
    c.write_all(events().as_bytes()).await.expect("write");
    assert!(
        support::read_until(&mut c, &mut seen, "event: snapshot", 1).await,
        "{seen}"
    );
    assert!(stream_head(&seen).contains("connection: close"), "{seen}");
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_in_order() {
    let s = support::spawn("").await;
    let mut c = connect(&s).await;
    let all = format!("{HEALTH}{HEALTH}{}", events());
    c.write_all(all.as_bytes()).await.expect("write");
    let mut seen = String::new();
    assert!(
        support::read_until(&mut c, &mut seen, "event: snapshot", 1).await,
        "{seen}"
    );
    assert_eq!(seen.matches("\"ok\"").count(), 2, "{seen}");
    let stream_at = seen.find("text/event-stream").unwrap_or(0);
    assert!(
        seen.rfind("\"ok\"").unwrap_or(usize::MAX) < stream_at,
        "{seen}"
    );
}

#[tokio::test]
async fn a_next_request_after_a_pause_is_served() {
    let s = support::spawn("").await;
    let mut c = connect(&s).await;
    let mut seen = String::new();
    c.write_all(HEALTH.as_bytes()).await.expect("write");
    assert!(
        support::read_until(&mut c, &mut seen, "\"ok\"", 1).await,
        "{seen}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The next head in pieces.
    let next = events();
    let (a, b) = next.split_at(7);
    c.write_all(a.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.write_all(b.as_bytes()).await.expect("write");
    assert!(
        support::read_until(&mut c, &mut seen, "event: snapshot", 1).await,
        "{seen}"
    );
    assert!(stream_head(&seen).contains("connection: close"), "{seen}");
}

#[tokio::test]
async fn connection_close_and_http10_end_the_connection_after_the_answer() {
    let s = support::spawn("").await;
    for request in [
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /health HTTP/1.0\r\n\r\n",
    ] {
        let mut c = connect(&s).await;
        c.write_all(request.as_bytes()).await.expect("write");
        let all = read_to_close(&mut c).await;
        let all = all.unwrap_or_else(|| panic!("{request:?} left the connection open"));
        assert!(all.contains("\"ok\""), "{all}");
    }
    // Keep-alive asked on HTTP/1.0: the connection stays for the next request.
    let mut c = connect(&s).await;
    let ka = "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let mut seen = String::new();
    c.write_all(ka.as_bytes()).await.expect("write");
    assert!(
        support::read_until(&mut c, &mut seen, "\"ok\"", 1).await,
        "{seen}"
    );
    c.write_all(ka.as_bytes()).await.expect("write");
    assert!(
        support::read_until(&mut c, &mut seen, "\"ok\"", 2).await,
        "{seen}"
    );
}

#[tokio::test]
async fn shutdown_closes_a_connection_waiting_between_requests() {
    let s = support::spawn("").await;
    let mut c = connect(&s).await;
    let mut seen = String::new();
    c.write_all(HEALTH.as_bytes()).await.expect("write");
    assert!(
        support::read_until(&mut c, &mut seen, "\"ok\"", 1).await,
        "{seen}"
    );
    let stopped = tokio::time::timeout(T, s.stop()).await;
    assert!(
        stopped.is_ok(),
        "shutdown waited on an idle kept-alive connection"
    );
    assert!(read_to_close(&mut c).await.is_some(), "still open");
}

/// A client has nothing to say on a stream: a little is tolerated and the
/// events go on; past 16 KiB the stream is cut.
#[tokio::test]
async fn a_stream_whose_client_keeps_talking_is_cut() {
    let s = support::spawn("").await;
    let mut c = connect(&s).await;
    let mut seen = String::new();
    c.write_all(events().as_bytes()).await.expect("write");
    assert!(
        support::read_until(&mut c, &mut seen, "event: snapshot", 1).await,
        "{seen}"
    );
    c.write_all(&[b'x'; 1024]).await.expect("write");
    assert_eq!(
        support::deliver(&s.url, &support::room_started("talk", "RM_talk2")).await,
        200
    );
    assert!(
        support::read_until(&mut c, &mut seen, "RM_talk2", 1).await,
        "{seen}"
    );
    for _ in 0..20 {
        if c.write_all(&[b'x'; 1024]).await.is_err() {
            break;
        }
    }
    assert!(
        read_to_close(&mut c).await.is_some(),
        "the stream stayed open"
    );
}
