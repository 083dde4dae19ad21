//! `GET /api/events` over real sockets: auth, per-room access both ways,
//! tickets, admission limits, snapshot, resume, reset, heartbeat, slow
//! consumers, token expiry and shutdown.

use std::time::Duration;

use serde_json::json;

use crate::support::{self, KEY, SECRET, Sse};

const T: Duration = Duration::from_secs(5);

fn room_admin(room: &str) -> String {
    support::access_token(
        KEY,
        SECRET,
        "ra",
        json!({"roomAdmin": true, "room": room}),
        3600,
    )
}

fn sid(prefix: &str) -> String {
    format!("{prefix}{}", support::rand_hex())
}

#[tokio::test]
async fn refusals_are_json_with_the_right_status() {
    let s = support::spawn("").await;
    let url = format!("{}/api/events", s.url);
    assert_eq!(Sse::open(&url, None, &[]).await.status, 401);
    let wrong = support::access_token(
        KEY,
        "wrong-secret-wrong-secret-wrong-secret",
        "x",
        json!({"roomList": true}),
        60,
    );
    let r = Sse::open(&url, Some(&wrong), &[]).await;
    assert_eq!(r.status, 401);
    assert!(
        r.body.contains("\"error\"") && !r.body.contains("eyJ"),
        "{}",
        r.body
    );
    let nothing =
        support::access_token(KEY, SECRET, "x", json!({"roomJoin": true, "room": "a"}), 60);
    assert_eq!(
        Sse::open(&url, Some(&nothing), &[]).await.status,
        403,
        "roomJoin alone watches nothing"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_admin_token_watches_every_room() {
    // SPEC: "all rooms: roomList without room, or the admin grants" - the
    // README's dashboard token (roomAdmin + roomCreate, no room).
    let s = support::spawn("").await;
    let mut admin = Sse::open(
        &format!("{}/api/events", s.url),
        Some(&support::admin_token()),
        &[],
    )
    .await;
    assert_eq!(admin.status, 200, "{}", admin.body);
    assert_eq!(
        admin.next(T).await.map(|e| e.event).as_deref(),
        Some("snapshot")
    );
    let (a, b) = (
        format!("a-{}", support::rand_hex()),
        format!("b-{}", support::rand_hex()),
    );
    for room in [&a, &b] {
        let body = support::room_started(room, &sid("RM_"));
        assert_eq!(support::deliver(&s.url, &body).await, 200);
    }
    for room in [&a, &b] {
        let got = admin
            .next_named("room_started", T)
            .await
            .expect("every room");
        assert_eq!(got.json()["data"]["room"]["name"], room.as_str());
    }
    let one = Sse::open(
        &format!("{}/api/events?room={a}", s.url),
        Some(&support::admin_token()),
        &[],
    )
    .await;
    assert_eq!(one.status, 200, "an admin may also watch one room");
    s.stop().await;
}

#[tokio::test]
async fn room_admin_sees_its_room_only_and_list_token_filters_by_query() {
    let s = support::spawn("").await;
    let (mine, other) = (
        format!("mine-{}", support::rand_hex()),
        format!("other-{}", support::rand_hex()),
    );
    let forbidden = Sse::open(
        &format!("{}/api/events?room={other}", s.url),
        Some(&room_admin(&mine)),
        &[],
    )
    .await;
    assert_eq!(forbidden.status, 403);
    let mut admin = Sse::open(
        &format!("{}/api/events", s.url),
        Some(&room_admin(&mine)),
        &[],
    )
    .await;
    let mut filtered = Sse::open(
        &format!("{}/api/events?room={other}", s.url),
        Some(&support::list_token()),
        &[],
    )
    .await;
    assert_eq!(
        admin.next(T).await.map(|e| e.event).as_deref(),
        Some("snapshot")
    );
    assert_eq!(
        filtered.next(T).await.map(|e| e.event).as_deref(),
        Some("snapshot")
    );
    let (mine_sid, other_sid) = (sid("RM_"), sid("RM_"));
    assert_eq!(
        support::deliver(&s.url, &support::room_started(&other, &other_sid)).await,
        200
    );
    assert_eq!(
        support::deliver(&s.url, &support::room_started(&mine, &mine_sid)).await,
        200
    );
    let got = admin.next_named("room_started", T).await.expect("own room");
    assert_eq!(got.json()["data"]["room"]["sid"], mine_sid.as_str());
    assert!(
        admin.drain(Duration::from_millis(300)).await.is_empty(),
        "another room leaked to a room admin"
    );
    let got = filtered
        .next_named("room_started", T)
        .await
        .expect("filtered room");
    assert_eq!(got.json()["data"]["room"]["sid"], other_sid.as_str());
    assert!(
        filtered.drain(Duration::from_millis(300)).await.is_empty(),
        "?room= did not filter"
    );
    s.stop().await;
}

#[tokio::test]
async fn tickets_are_single_use_and_only_for_the_stream() {
    let s = support::spawn("").await;
    let c = support::client();
    let r = c
        .post(format!("{}/api/auth/sse-token", s.url))
        .bearer_auth(support::list_token())
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    let ticket = v["token"].as_str().expect("ticket").to_owned();
    assert!(v["expires_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    let rooms = c
        .get(format!("{}/api/rooms?token={ticket}", s.url))
        .send()
        .await
        .expect("req");
    assert_eq!(rooms.status(), 401, "a ticket is for /api/events only");
    let r = c
        .post(format!("{}/api/auth/sse-token", s.url))
        .bearer_auth(support::list_token())
        .send()
        .await
        .expect("req");
    let ticket = r.json::<serde_json::Value>().await.expect("json")["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let mut first = Sse::open(&format!("{}/api/events?token={ticket}", s.url), None, &[]).await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.next(T).await.map(|e| e.event).as_deref(),
        Some("snapshot")
    );
    let again = Sse::open(&format!("{}/api/events?token={ticket}", s.url), None, &[]).await;
    assert_eq!(again.status, 401, "a ticket is single use");
    s.stop().await;
}

#[tokio::test]
async fn per_client_and_global_caps() {
    let s = support::spawn(
        "realtime: {max_connections: 3, max_connections_per_ip: 2}\nserver: {trusted_proxies: [127.0.0.1]}",
    )
    .await;
    let url = format!("{}/api/events", s.url);
    let tok = support::list_token();
    let a1 = Sse::open(&url, Some(&tok), &[("x-forwarded-for", "198.51.100.1")]).await;
    let a2 = Sse::open(&url, Some(&tok), &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!((a1.status, a2.status), (200, 200));
    let a3 = Sse::open(&url, Some(&tok), &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(a3.status, 429);
    assert!(a3.headers.contains_key("retry-after"));
    let b1 = Sse::open(&url, Some(&tok), &[("x-forwarded-for", "198.51.100.2")]).await;
    assert_eq!(b1.status, 200);
    let c1 = Sse::open(&url, Some(&tok), &[("x-forwarded-for", "198.51.100.3")]).await;
    assert_eq!(c1.status, 503);
    assert!(c1.headers.contains_key("retry-after"));
    drop(a1);
    let mut freed = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if Sse::open(&url, Some(&tok), &[("x-forwarded-for", "198.51.100.3")])
            .await
            .status
            == 200
        {
            freed += 1;
            break;
        }
    }
    assert_eq!(freed, 1, "a closed stream frees its slot");
    s.stop().await;
}

#[tokio::test]
async fn snapshot_then_resume_without_gap_or_duplicate_and_reset_on_unknown_id() {
    let s = support::spawn("").await;
    let room = format!("resume-{}", support::rand_hex());
    let rsid = sid("RM_");
    support::deliver(
        &s.url,
        &support::participant_joined(&room, &rsid, &sid("PA_"), "a@x", "A"),
    )
    .await;
    let url = format!("{}/api/events", s.url);
    let mut c = Sse::open(&url, Some(&support::list_token()), &[]).await;
    let snap = c.next(T).await.expect("snapshot");
    assert_eq!(snap.event, "snapshot");
    assert!(
        snap.data.contains(&rsid),
        "the snapshot holds the existing room: {}",
        snap.data
    );
    let p2 = sid("PA_");
    support::deliver(
        &s.url,
        &support::participant_joined(&room, &rsid, &p2, "b@x", "B"),
    )
    .await;
    let seen = c
        .next_named("participant_joined", T)
        .await
        .expect("live event");
    let last = seen.id.clone().expect("id");
    drop(c);
    let missed: Vec<String> = (0..3).map(|_| sid("PA_")).collect();
    for p in &missed {
        support::deliver(
            &s.url,
            &support::participant_joined(&room, &rsid, p, "c@x", "C"),
        )
        .await;
    }
    let mut again = Sse::open(
        &url,
        Some(&support::list_token()),
        &[("last-event-id", &last)],
    )
    .await;
    let got: Vec<_> = again.drain(Duration::from_millis(600)).await;
    let names: Vec<&str> = got.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names, ["participant_joined"; 3],
        "exactly the missed events, no snapshot: {names:?}"
    );
    let sids: Vec<String> = got
        .iter()
        .map(|e| {
            e.json()["data"]["participant"]["sid"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(sids, missed);
    let mut stale = Sse::open(
        &format!("{url}?lastEventId=nope-42"),
        Some(&support::list_token()),
        &[],
    )
    .await;
    let first_two: Vec<String> = vec![stale.next(T).await, stale.next(T).await]
        .into_iter()
        .flatten()
        .map(|e| e.event)
        .collect();
    assert_eq!(first_two, ["reset", "snapshot"]);
    s.stop().await;
}

#[tokio::test]
async fn heartbeat_comments_and_proxy_headers() {
    let s = support::spawn("realtime: {heartbeat_seconds: 1}").await;
    let mut c = Sse::watch_all(&s.url).await;
    assert_eq!(
        c.headers["content-type"]
            .to_str()
            .expect("ct")
            .split(';')
            .next(),
        Some("text/event-stream")
    );
    assert_eq!(c.headers["x-accel-buffering"], "no");
    assert!(
        c.headers["cache-control"]
            .to_str()
            .expect("cc")
            .contains("no-cache")
    );
    let _ = c.next(T).await;
    let _ = c.drain(Duration::from_millis(2500)).await;
    assert!(
        c.comments.iter().any(|x| x.trim() == "ping"),
        "no heartbeat in 2.5 s: {:?}",
        c.comments
    );
    s.stop().await;
}

#[tokio::test]
async fn the_stream_closes_when_the_token_expires() {
    let s = support::spawn("").await;
    let short = support::access_token(KEY, SECRET, "brief", json!({"roomList": true}), 2);
    let mut c = Sse::open(&format!("{}/api/events", s.url), Some(&short), &[]).await;
    assert_eq!(c.status, 200);
    let _ = c.drain(Duration::from_secs(4)).await;
    assert!(c.ended(), "the stream outlived its token");
    s.stop().await;
}

#[tokio::test]
async fn shutdown_closes_streams_cleanly() {
    let s = support::spawn("").await;
    let mut c = Sse::watch_all(&s.url).await;
    assert_eq!(
        c.next(T).await.map(|e| e.event).as_deref(),
        Some("snapshot")
    );
    let started = std::time::Instant::now();
    s.stop().await;
    let _ = c.drain(Duration::from_secs(3)).await;
    assert!(c.ended(), "the stream was not closed by shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown waited for the stream"
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_off_while_another_keeps_receiving() {
    use tokio::io::AsyncWriteExt;
    let s = support::spawn("realtime: {client_queue_size: 64, write_timeout_seconds: 2}").await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let tok = support::list_token();
    // The stalled client: sends its request, then never reads.
    let mut stalled = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let sock = socket2::SockRef::from(&stalled);
    let _ = sock.set_recv_buffer_size(4096);
    stalled
        .write_all(
            format!("GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("request");
    let mut healthy = Sse::open(&format!("{}/api/events", s.url), Some(&tok), &[]).await;
    let _ = healthy.next(T).await;
    let room = format!("flood-{}", support::rand_hex());
    let rsid = sid("RM_");
    let long_name = "n".repeat(200);
    let mut received = 0;
    for i in 0..600 {
        support::deliver(
            &s.url,
            &support::participant_joined(&room, &rsid, &sid("PA_"), &format!("u{i}"), &long_name),
        )
        .await;
        while let Some(ev) = healthy.next(Duration::from_millis(1)).await {
            if ev.event == "participant_joined" {
                received += 1;
            }
        }
    }
    for ev in healthy.drain(Duration::from_millis(500)).await {
        if ev.event == "participant_joined" {
            received += 1;
        }
    }
    assert_eq!(received, 600, "the healthy client missed events");
    let mut cut = false;
    for _ in 0..100 {
        if s.state.admission.open() == 1 {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cut,
        "the stalled client still holds a connection ({} open)",
        s.state.admission.open()
    );
    drop(stalled);
    s.stop().await;
}

/// A raw connection to `addr` that has sent `request`.
async fn raw(addr: &str, request: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
    c.write_all(request).await.expect("write");
    c
}

/// A stream opened as a connection's first request is written by Warden
/// itself (no hyper buffers); one opened after another request on a
/// kept-alive connection goes through hyper. Both must look the same to a
/// client, and HTTP/1.0 and refusals must be well-formed too.
#[tokio::test]
async fn streams_are_well_formed_on_fresh_reused_and_http10_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = support::spawn("").await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let token = support::list_token();
    let get = |version: &str| {
        format!(
            "GET /api/events?token={token} {version}\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
        )
    };

    // Fresh HTTP/1.1 connection: chunked, live events arrive.
    let mut fresh = raw(&addr, get("HTTP/1.1").as_bytes()).await;
    let mut seen = String::new();
    assert!(
        support::read_until(&mut fresh, &mut seen, "event: snapshot", 1).await,
        "{seen}"
    );
    let head = seen
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    for want in [
        "content-type: text/event-stream",
        "cache-control: no-cache",
        "x-accel-buffering: no",
        "transfer-encoding: chunked",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(want), "missing {want:?} in {head}");
    }
    // Kept alive: /health first, then the stream, on one connection.
    let mut reused = raw(&addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut seen_reused = String::new();
    assert!(
        support::read_until(&mut reused, &mut seen_reused, "\"ok\"", 1).await,
        "{seen_reused}"
    );
    reused
        .write_all(get("HTTP/1.1").as_bytes())
        .await
        .expect("write");
    seen_reused.clear();
    assert!(
        support::read_until(&mut reused, &mut seen_reused, "event: snapshot", 1).await,
        "{seen_reused}"
    );
    assert!(
        seen_reused
            .to_ascii_lowercase()
            .contains("content-type: text/event-stream")
    );

    let (room, room_sid) = (sid("direct-"), sid("RM_"));
    assert_eq!(
        support::deliver(&s.url, &support::room_started(&room, &room_sid)).await,
        200
    );
    for (name, c, seen) in [
        ("fresh", &mut fresh, &mut seen),
        ("reused", &mut reused, &mut seen_reused),
    ] {
        assert!(
            support::read_until(c, seen, &room_sid, 1).await,
            "{name}: the event did not arrive: {seen}"
        );
        assert!(seen.contains("event: room_started"), "{name}: {seen}");
    }

    // HTTP/1.0: no chunked encoding, the body is delimited by the close.
    let mut old = raw(&addr, get("HTTP/1.0").as_bytes()).await;
    let mut seen_old = String::new();
    assert!(
        support::read_until(&mut old, &mut seen_old, "event: snapshot", 1).await,
        "{seen_old}"
    );
    let lower = seen_old.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.0 200 ok\r\n"), "{seen_old}");
    assert!(!lower.contains("transfer-encoding"), "{seen_old}");
    assert!(lower.contains("connection: close"), "{seen_old}");

    // A refusal on a fresh connection: one JSON line, a length, then the close.
    let mut refused = raw(&addr, b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut all = Vec::new();
    tokio::time::timeout(T, refused.read_to_end(&mut all))
        .await
        .expect("closed after the refusal")
        .expect("read");
    let all = String::from_utf8_lossy(&all).to_string();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or_default();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 401 unauthorized\r\n"), "{all}");
    assert!(
        head.contains(&format!("content-length: {}", body.len())),
        "{all}"
    );
    assert!(head.contains("content-type: application/json"), "{all}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(body).expect("json body")["error"],
        "unauthorized",
        "{all}"
    );
    s.stop().await;
}
