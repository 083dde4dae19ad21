//! Several Warden nodes on one real `redis-server` (`storage.backend: redis`):
//! fan-out and resume across nodes, shared dedupe, shared lockouts, key
//! rotation through the shared key file, a Redis restart, shared rate limits
//! (`rates`), and the fan-out
//! latency through Redis versus in-process.

mod latency;
mod loss;
mod rates;
mod redis_tls;
pub mod server;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden::clock::Clock;

use crate::support::{self, KEY, Sse, TestServer};
use server::RedisServer;

const T: Duration = Duration::from_secs(5);
/// SPEC: a running server applies a key change made elsewhere within 15 s.
const KEY_RELOAD: Duration = Duration::from_secs(15);

fn yaml(redis: &RedisServer, extra: &str) -> String {
    format!(
        "storage: {{backend: redis, redis_url: \"{}\"}}\n{extra}",
        redis.url()
    )
}

/// `n` nodes on `redis`, each with its own data directory.
async fn nodes(redis: &RedisServer, n: usize) -> Vec<TestServer> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(support::spawn_with(&yaml(redis, ""), &[]).await);
    }
    out
}

fn sid(prefix: &str) -> String {
    format!("{prefix}{}", support::rand_hex())
}

fn joined(room: &str, psid: &str) -> Vec<u8> {
    support::participant_joined(room, "RM_cluster", psid, "alice", "Alice")
}

async fn events(node: &TestServer, headers: &[(&str, &str)]) -> Sse {
    let url = format!("{}/api/events", node.url);
    let sse = Sse::open(&url, Some(&support::list_token()), headers).await;
    assert_eq!(sse.status, 200, "{}", sse.body);
    sse
}

async fn rooms_status(node: &TestServer, token: &str) -> u16 {
    support::client()
        .get(format!("{}/api/rooms", node.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("rooms")
        .status()
        .as_u16()
}

/// Polls `f` every 100 ms until it is true or `within` has passed.
async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn seq_of(id: &str) -> u64 {
    id.rsplit_once('-')
        .and_then(|(_, s)| s.parse().ok())
        .expect("id is <epoch>-<seq>")
}

fn participant_sid(ev: &support::SseEvent) -> String {
    ev.json()["data"]["participant"]["sid"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_one_node_reaches_every_node_with_the_same_id_once() {
    let redis = RedisServer::start();
    let n = nodes(&redis, 3).await;
    let (a, b, c) = (&n[0], &n[1], &n[2]);
    let mut on_b = events(b, &[]).await;
    let mut on_c = events(c, &[]).await;
    for sse in [&mut on_b, &mut on_c] {
        assert_eq!(sse.next(T).await.expect("snapshot").event, "snapshot");
    }
    let room = sid("room-");
    let started = support::room_started(&room, "RM_cluster");
    assert_eq!(support::deliver(&a.url, &started).await, 200);
    let eb = on_b.next_named("room_started", T).await.expect("B gets it");
    let ec = on_c.next_named("room_started", T).await.expect("C gets it");
    assert_eq!(eb.id, ec.id, "one id on every node");
    assert_eq!(eb.data, ec.data, "the same bytes on every node");
    let id = eb.id.clone().expect("id");
    assert!(id.starts_with(&format!("{}-", a.state.hub.epoch())), "{id}");

    // LiveKit's retry of the same delivery to another node: 200, not broadcast again.
    assert_eq!(support::deliver(&c.url, &started).await, 200);
    let psid = sid("PA_");
    assert_eq!(support::deliver(&b.url, &joined(&room, &psid)).await, 200);
    for sse in [&mut on_b, &mut on_c] {
        let next = sse.next(T).await.expect("next event");
        assert_eq!(next.event, "participant_joined", "no second room_started");
        assert_eq!(participant_sid(&next), psid);
        assert_eq!(seq_of(next.id.as_deref().expect("id")), seq_of(&id) + 1);
    }
    // The room snapshot agrees on every node.
    let token = support::list_token();
    let mut snapshots = Vec::new();
    for node in [a, b, c] {
        let body: Value = support::client()
            .get(format!("{}/api/rooms", node.url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("rooms")
            .json()
            .await
            .expect("json");
        snapshots.push(body);
    }
    assert_eq!(snapshots[0], snapshots[1]);
    assert_eq!(snapshots[1], snapshots[2]);
    assert!(snapshots[0].to_string().contains(&psid), "{}", snapshots[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_id_with_another_body_on_another_node_is_recorded_not_broadcast() {
    let redis = RedisServer::start();
    let n = nodes(&redis, 2).await;
    let (a, b) = (&n[0], &n[1]);
    let mut on_a = events(a, &[]).await;
    assert_eq!(on_a.next(T).await.expect("snapshot").event, "snapshot");
    let original = support::room_started(&sid("room-"), "RM_cluster");
    assert_eq!(support::deliver(&a.url, &original).await, 200);
    assert_eq!(on_a.next(T).await.expect("event").event, "room_started");
    let mut forged: Value = serde_json::from_slice(&original).expect("json");
    forged["room"]["name"] = "another-room".into();
    let forged = serde_json::to_vec(&forged).expect("json");
    assert_eq!(support::deliver(&b.url, &forged).await, 200, "acknowledged");
    let replayed = b
        .state
        .audit
        .recent()
        .iter()
        .any(|e| e.kind == warden::audit::EventType::WebhookReplay);
    assert!(
        replayed,
        "WEBHOOK_REPLAY recorded on the node that got the replay"
    );
    let more = on_a.drain(Duration::from_millis(500)).await;
    assert!(
        more.iter().all(|e| e.event != "room_started"),
        "not broadcast: {more:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_on_another_node_with_no_gap_and_no_duplicate() {
    let redis = RedisServer::start();
    let n = nodes(&redis, 3).await;
    let (a, b, c) = (&n[0], &n[1], &n[2]);
    let room = sid("room-");
    let mut on_a = events(a, &[]).await;
    assert_eq!(on_a.next(T).await.expect("snapshot").event, "snapshot");
    let first = sid("PA_");
    assert_eq!(support::deliver(&a.url, &joined(&room, &first)).await, 200);
    let got = on_a.next(T).await.expect("first event on A");
    assert_eq!(participant_sid(&got), first);
    let last_id = got.id.expect("id");
    drop(on_a);

    // While the client is away, events arrive through the other nodes.
    let later = [sid("PA_"), sid("PA_")];
    assert_eq!(
        support::deliver(&c.url, &joined(&room, &later[0])).await,
        200
    );
    assert_eq!(
        support::deliver(&b.url, &joined(&room, &later[1])).await,
        200
    );

    let mut on_b = events(b, &[("last-event-id", &last_id)]).await;
    let replay = [on_b.next(T).await, on_b.next(T).await];
    for (i, ev) in replay.iter().enumerate() {
        let ev = ev.as_ref().expect("replayed event");
        assert_eq!(ev.event, "participant_joined", "no snapshot, no reset");
        assert_eq!(participant_sid(ev), later[i], "in order");
        let expected = seq_of(&last_id) + 1 + i as u64;
        assert_eq!(seq_of(ev.id.as_deref().expect("id")), expected, "no gap");
    }
    let more = on_b.drain(Duration::from_millis(500)).await;
    assert!(
        more.iter().all(|e| e.event != "participant_joined"),
        "no duplicate: {more:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_spread_across_nodes_lock_the_client_out_everywhere() {
    let redis = RedisServer::start();
    let n = nodes(&redis, 3).await;
    let bad = support::access_token(
        KEY,
        "wrong-secret-wrong-secret-wrong-secret-xx",
        "x",
        json!({"roomList": true}),
        600,
    );
    let good = support::list_token();
    // 2 + 2 + 1: no node alone reaches max_failed_attempts (5).
    for (node, count) in [(&n[0], 2), (&n[1], 2), (&n[2], 1)] {
        for _ in 0..count {
            assert_eq!(rooms_status(node, &bad).await, 401);
        }
    }
    for (i, node) in n.iter().enumerate() {
        let locked = eventually(Duration::from_secs(3), || async {
            rooms_status(node, &good).await == 403
        })
        .await;
        assert!(locked, "node {i} did not lock the client out");
    }
    // An admin unblock on one node lifts the lockout on all.
    let me = "127.0.0.1".parse().expect("ip");
    assert!(n[0].state.guard.unblock(me));
    for (i, node) in n.iter().enumerate() {
        let lifted = eventually(Duration::from_secs(3), || async {
            rooms_status(node, &good).await == 200
        })
        .await;
        assert!(lifted, "node {i} kept the lockout");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_on_one_node_is_honoured_by_every_node() {
    let redis = RedisServer::start();
    let shared = tempfile::tempdir().expect("tempdir");
    let keys_file = shared.path().join("keys.yaml");
    let extra = format!(
        "livekit: {{keys_file: \"{}\"}}\nkey_rotation: {{overlap_period_minutes: 1}}",
        keys_file.display()
    );
    let clock = Clock::manual(Clock::system().now_ms());
    let a = support::spawn_clocked(&yaml(&redis, &extra), &[], clock.clone()).await;
    let c = support::spawn_clocked(&yaml(&redis, &extra), &[], clock.clone()).await;
    let knows = |node: &TestServer, id: &str| {
        let infos = node.state.keys.key_infos(clock.now_ms());
        infos.iter().any(|k| k.id == id)
    };
    let (old_id, old_secret) = a
        .state
        .keys
        .create_key(clock.now_ms(), "test")
        .expect("key");
    let old = support::access_token(
        &old_id,
        old_secret.expose(),
        "d",
        json!({"roomList": true}),
        3600,
    );
    assert!(
        eventually(KEY_RELOAD, || async { knows(&c, &old_id) }).await,
        "C reloads the shared key file"
    );
    assert_eq!(rooms_status(&c, &old).await, 200);

    let (rotated, new_secret) = a
        .state
        .keys
        .rotate(clock.now_ms(), true, "test")
        .expect("rotate");
    let new_id = rotated.new_id;
    let new = support::access_token(
        &new_id,
        new_secret.expose(),
        "d",
        json!({"roomList": true}),
        3600,
    );
    assert!(
        eventually(KEY_RELOAD, || async { knows(&c, &new_id) }).await,
        "C sees the rotation"
    );
    assert_eq!(rooms_status(&c, &new).await, 200, "the new key on C");
    assert_eq!(
        rooms_status(&c, &old).await,
        200,
        "the old key on C during the overlap"
    );

    clock.advance(Duration::from_secs(120));
    let refused = eventually(T, || async { rooms_status(&c, &old).await == 401 }).await;
    assert!(refused, "the old key is refused on C after the overlap");
    assert_eq!(rooms_status(&c, &new).await, 200);
    assert_eq!(rooms_status(&a, &old).await, 401, "and on A");
}

async fn redis_check(node: &TestServer) -> (String, String) {
    let body: Value = support::client()
        .get(format!("{}/api/security/health", node.url))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("health")
        .json()
        .await
        .unwrap_or(Value::Null);
    let status = body["checks"]["redis"]["status"].as_str().unwrap_or("");
    let overall = body["overall_status"].as_str().unwrap_or("");
    (status.to_owned(), overall.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_survive_a_redis_restart_and_lose_nothing_acknowledged_after_it() {
    let mut redis = RedisServer::start();
    let n = nodes(&redis, 2).await;
    let (a, b) = (&n[0], &n[1]);
    let room = sid("room-");
    let mut on_b = events(b, &[]).await;
    assert_eq!(on_b.next(T).await.expect("snapshot").event, "snapshot");
    assert_eq!(
        support::deliver(&a.url, &joined(&room, &sid("PA_"))).await,
        200
    );
    let before = on_b
        .next_named("participant_joined", T)
        .await
        .expect("before");
    assert_eq!(redis_check(a).await.0, "healthy");

    redis.kill();
    for node in [a, b] {
        let degraded = eventually(T, || async {
            redis_check(node).await == ("degraded".into(), "degraded".into())
        })
        .await;
        assert!(degraded, "{} reports redis degraded", node.url);
        let health = support::client()
            .get(format!("{}/health", node.url))
            .send()
            .await
            .expect("health");
        assert_eq!(health.status(), 200, "still serving");
    }
    let unqueued = sid("PA_");
    assert_eq!(
        support::deliver(&a.url, &joined(&room, &unqueued)).await,
        503,
        "not acknowledged while the stream is down: LiveKit retries"
    );
    let mut on_a = events(a, &[]).await;
    assert_eq!(
        on_a.next(T).await.expect("snapshot").event,
        "snapshot",
        "SSE still served"
    );

    redis.restart();
    // LiveKit retries what got a 503; the first 200 shows in the health check at once.
    assert!(
        deliver_until_accepted(a, &joined(&room, &unqueued), Duration::from_secs(10)).await,
        "A accepts webhooks again"
    );
    assert_eq!(
        redis_check(a).await.0,
        "healthy",
        "healthy as soon as a webhook succeeds"
    );
    // Redis came back empty: a new epoch, and every open stream is told
    // (never a silent gap), gets a fresh snapshot and goes on.
    let old_id = before.id.clone().expect("id");
    let (old_epoch, _) = old_id.rsplit_once('-').expect("<epoch>-<seq>");
    let moved = eventually(T, || async { a.state.hub.epoch() != old_epoch }).await;
    assert!(moved, "a new epoch");
    let epoch = a.state.hub.epoch();
    for (name, sse) in [("A", &mut on_a), ("B", &mut on_b)] {
        let reset = sse.next(T).await.expect("an event after the restart");
        assert_eq!(reset.event, "reset", "{name}: {reset:?}");
        assert_eq!(reset.json()["reason"], "history_lost", "{name}");
        let snapshot = sse.next(T).await.expect("snapshot");
        assert_eq!(snapshot.event, "snapshot", "{name}");
        if snapshot.id == Some(format!("{epoch}-0")) {
            let retried = sse.next(T).await.expect("the retried event");
            assert_eq!(participant_sid(&retried), unqueued, "{name}");
            assert_eq!(retried.id, Some(format!("{epoch}-1")), "{name}");
        } else {
            assert_eq!(snapshot.id, Some(format!("{epoch}-1")), "{name}");
            assert!(snapshot.data.contains(&unqueued), "{name}");
        }
    }
    for node in [a, b] {
        let caught_up = eventually(T, || async {
            node.state.hub.position() == (epoch.clone(), 1)
        })
        .await;
        assert!(
            caught_up,
            "{} has the retried event in the new epoch",
            node.url
        );
        let back = eventually(T, || async { redis_check(node).await.0 == "healthy" }).await;
        assert!(back, "{} recovers", node.url);
    }
    // Clients come back with their last id: a reset and a fresh snapshot that holds the retried event.
    let mut again = vec![on_a, on_b];
    for node in [a, b] {
        let mut sse = events(node, &[("last-event-id", &old_id)]).await;
        let reset = sse.next(T).await.expect("reset");
        assert_eq!(
            (reset.event.as_str(), reset.json()["reason"].as_str()),
            ("reset", Some("other_epoch"))
        );
        let snapshot = sse.next(T).await.expect("snapshot");
        assert_eq!(snapshot.event, "snapshot");
        assert_eq!(snapshot.id, Some(format!("{epoch}-1")));
        assert!(snapshot.data.contains(&unqueued), "{}", snapshot.data);
        again.push(sse);
    }
    let after: Vec<String> = (0..6).map(|_| sid("PA_")).collect();
    for (i, psid) in after.iter().enumerate() {
        let node = if i % 2 == 0 { a } else { b };
        assert_eq!(support::deliver(&node.url, &joined(&room, psid)).await, 200);
    }
    for (i, psid) in after.iter().enumerate() {
        let first = again[0].next(T).await.expect("acknowledged event on A");
        assert_eq!(&participant_sid(&first), psid, "in order, none lost");
        assert_eq!(first.id, Some(format!("{epoch}-{}", i + 2)), "ids continue");
        // On B, and on the streams that came back with their old id.
        for sse in &mut again[1..] {
            let ev = sse.next(T).await.expect("the same event");
            assert_eq!(ev.id, first.id);
            assert_eq!(ev.data, first.data);
        }
    }
}

/// Delivers `body` to `node` until it is acknowledged (as LiveKit retries a 5xx).
async fn deliver_until_accepted(node: &TestServer, body: &[u8], within: Duration) -> bool {
    eventually(within, || async {
        support::deliver(&node.url, body).await == 200
    })
    .await
}
