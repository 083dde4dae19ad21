//! HTTP/2 event streams are bound like HTTP/1 ones: a stream whose client
//! never opens its flow-control window is cut by the write deadline, one that
//! falls past the queue bound is cut when it can be written again, token
//! expiry and revocation end it by a timer, and the gauges go down.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::json;

use super::{TlsServer, h2_client, metric, tls_connect, tls_server};
use crate::support;

/// Opens `GET /api/events` over HTTP/2 with `token`; returns the body once
/// the 200 head arrived.
async fn open_stream(
    client: &mut h2::client::SendRequest<Bytes>,
    s: &TlsServer,
    token: &str,
) -> h2::RecvStream {
    let req = http::Request::get(format!("{}/api/events", s.url))
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .expect("request");
    let (resp, _) = client.send_request(req, true).expect("send");
    let resp = tokio::time::timeout(Duration::from_secs(5), resp)
        .await
        .expect("head in time")
        .expect("response");
    assert_eq!(resp.status(), 200);
    resp.into_body()
}

/// Waits until the server resets the stream; returns how long that took.
async fn reset_within(body: &mut h2::RecvStream, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), body.data()).await {
            Err(_) => panic!("the stream was not cut within {limit:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                assert_eq!(e.reason(), Some(h2::Reason::CANCEL), "{e}");
                return start.elapsed();
            }
            Ok(None) => return start.elapsed(),
        }
    }
}

async fn gauges_are_down(s: &TlsServer) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while s.state.admission.open() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.state.admission.open(), 0, "the SSE slot was not freed");
    assert_eq!(metric(&s.url, "warden_sse_connections").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_never_gets_window_is_cut_by_the_write_deadline() {
    let s = tls_server("realtime: {write_timeout_seconds: 1}").await;
    // A client that reads gets the snapshot and events well past the write deadline.
    let (mut reader, _c1) = h2_client(&s, None).await;
    let mut live = open_stream(&mut reader, &s, &support::list_token()).await;
    let first = live.data().await.expect("snapshot").expect("data");
    assert!(String::from_utf8_lossy(&first).contains("snapshot"));
    // A client that grants no window: nothing can be sent to it.
    let (mut starved, _c2) = h2_client(&s, Some(0)).await;
    let mut body = open_stream(&mut starved, &s, &support::list_token()).await;
    assert_eq!(s.state.admission.open(), 2);
    let took = reset_within(&mut body, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(
        s.state.admission.open(),
        1,
        "the starved stream's slot is free"
    );
    let body = support::room_started("h2room", "RM_h2a");
    let base = s.url.clone();
    let delivered = tokio::spawn(async move {
        super::insecure_client()
            .post(format!("{base}/webhooks/livekit"))
            .header(
                "authorization",
                support::sign_webhook(&body, support::KEY, support::SECRET),
            )
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    assert_eq!(delivered.await.expect("task").expect("webhook"), 200);
    let mut seen = String::new();
    while !seen.contains("RM_h2a") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), live.data())
            .await
            .expect("event in time")
            .expect("open")
            .expect("data");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        let _ = live.flow_control().release_capacity(chunk.len());
    }
    assert_eq!(
        metric(&s.url, "warden_sse_cuts_total{reason=\"stalled\"}").await,
        1.0
    );
    drop((live, reader));
    gauges_are_down(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn token_expiry_ends_a_starved_stream_by_a_timer() {
    let s = tls_server("realtime: {write_timeout_seconds: 600}").await;
    let token = support::access_token(
        support::KEY,
        support::SECRET,
        "short",
        json!({"roomList": true}),
        2,
    );
    let (mut starved, _c) = h2_client(&s, Some(0)).await;
    let mut body = open_stream(&mut starved, &s, &token).await;
    let took = reset_within(&mut body, Duration::from_secs(6)).await;
    assert!(took < Duration::from_millis(4500), "{took:?}");
    assert_eq!(
        metric(&s.url, "warden_sse_cuts_total{reason=\"expired\"}").await,
        1.0
    );
    gauges_are_down(&s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_the_key_ends_a_starved_stream() {
    let s = tls_server("realtime: {write_timeout_seconds: 600}").await;
    let now = s.state.clock.now_ms();
    let (id, secret) = s.state.keys.create_key(now, "test").expect("key");
    let token = support::access_token(
        &id,
        secret.expose(),
        "doomed",
        json!({"roomList": true}),
        3600,
    );
    let (mut starved, _c) = h2_client(&s, Some(0)).await;
    let mut body = open_stream(&mut starved, &s, &token).await;
    s.state
        .keys
        .revoke(&id, s.state.clock.now_ms(), "test")
        .expect("revoke");
    let took = reset_within(&mut body, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(
        metric(&s.url, "warden_sse_cuts_total{reason=\"revoked\"}").await,
        1.0
    );
    gauges_are_down(&s).await;
}

/// A client that grants no window at first and opens it when told to.
async fn h2_client_opened_later(
    s: &TlsServer,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::sync::oneshot::Sender<u32>,
) {
    let tls = tls_connect([127, 0, 0, 1].into(), s.addr, &s.cert, &[b"h2"])
        .await
        .expect("tls");
    let (client, mut conn) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tls)
        .await
        .expect("h2 handshake");
    let (open, mut opened) = tokio::sync::oneshot::channel::<u32>();
    tokio::spawn(async move {
        let mut waiting = true;
        loop {
            tokio::select! {
                _ = &mut conn => return,
                w = &mut opened, if waiting => {
                    waiting = false;
                    if let Ok(w) = w {
                        conn.set_initial_window_size(w).expect("window");
                    }
                }
            }
        }
    });
    (client, open)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_starved_stream_past_the_queue_bound_is_cut_when_it_gets_window() {
    // The write deadline is far away: only the queue bound can end this stream.
    let s = tls_server("realtime: {write_timeout_seconds: 600, client_queue_size: 4}").await;
    let (mut client, open) = h2_client_opened_later(&s).await;
    let mut body = open_stream(&mut client, &s, &support::list_token()).await;
    for i in 0..12 {
        let hook = support::room_started(&format!("h2q{i}"), &format!("RM_h2q{i}"));
        let status = super::insecure_client()
            .post(format!("{}/webhooks/livekit", s.url))
            .header(
                "authorization",
                support::sign_webhook(&hook, support::KEY, support::SECRET),
            )
            .body(hook)
            .send()
            .await
            .expect("webhook")
            .status();
        assert_eq!(status, 200);
    }
    assert_eq!(s.state.admission.open(), 1, "still held while starved");
    open.send(65_535).expect("client task");
    let start = Instant::now();
    let mut seen = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), body.data()).await {
            Err(_) => panic!("not cut within 5 s: {seen}"),
            Ok(Some(Ok(chunk))) => {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            Ok(Some(Err(e))) => panic!("reset instead of a clean end: {e} after {seen}"),
            Ok(None) => break,
        }
    }
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(seen.contains("event: snapshot"), "{seen}");
    assert!(
        seen.contains("event: reset") && seen.contains("slow_consumer"),
        "{seen}"
    );
    assert!(
        !seen.contains("RM_h2q11"),
        "a client past the bound got every event: {seen}"
    );
    gauges_are_down(&s).await;
}
