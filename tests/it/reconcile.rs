//! Reconciliation against a fake LiveKit Twirp server (an axum app on
//! 127.0.0.1 answering ListRooms/ListParticipants with protobuf JSON as
//! LiveKit does, and checking each call's token and grants).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use crate::support::{self, KEY, SECRET, Sse};

#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) calls: Vec<(String, Value)>,
}

fn claims(headers: &HeaderMap) -> Value {
    let token = headers["authorization"]
        .to_str()
        .expect("auth")
        .trim_start_matches("Bearer ")
        .to_owned();
    let claims =
        support::hs256_claims(&token, SECRET).expect("the API token verifies with the active key");
    let exp = claims["exp"].as_i64().expect("an exp claim");
    assert!(exp > support::now(), "the API token has not expired");
    claims
}

pub(crate) async fn fake_livekit(seen: Arc<Mutex<Seen>>) -> String {
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen);
    let app = axum::Router::new()
        .route(
            "/twirp/livekit.RoomService/ListRooms",
            post(move |h: HeaderMap, Json(_b): Json<Value>| async move {
                s1.lock().expect("lock").calls.push(("ListRooms".into(), claims(&h)));
                Json(json!({"rooms": [
                    {"sid": "RM_keep", "name": "keep", "emptyTimeout": 300, "creationTime": "1700000000", "numParticipants": 1},
                    {"sid": "RM_new", "name": "fresh", "creationTime": "1700000100", "numParticipants": 1}
                ]}))
            }),
        )
        .route(
            "/twirp/livekit.RoomService/ListParticipants",
            post(move |h: HeaderMap, Json(b): Json<Value>| async move {
                let room = b["room"].as_str().unwrap_or("").to_owned();
                s2.lock().expect("lock").calls.push((format!("ListParticipants:{room}"), claims(&h)));
                let parts = match room.as_str() {
                    "keep" => json!([{"sid": "PA_stay", "identity": "stay@x", "name": "Stay", "state": "ACTIVE", "joinedAt": "1700000010"}]),
                    _ => json!([{"sid": "PA_newp", "identity": "new@x", "name": "Newcomer", "state": 2, "joinedAt": "1700000110",
                                 "tracks": [{"sid": "TR_a", "source": "MICROPHONE"}]}]),
                };
                Json(json!({"participants": parts}))
            }),
        )
        .route(
            "/twirp/livekit.AgentDispatchService/ListDispatch",
            post(move |h: HeaderMap, Json(b): Json<Value>| async move {
                let room = b["room"].as_str().unwrap_or("").to_owned();
                s3.lock().expect("lock").calls.push((format!("ListDispatch:{room}"), claims(&h)));
                // As livekit-server answers: one dispatch whose state lists its jobs (ns times, zero values omitted).
                let dispatches = match room.as_str() {
                    "keep" => json!([{"id": "AD_keep", "agentName": "voice", "room": "keep", "metadata": "dispatch-meta",
                        "state": {"createdAt": "1700000000000000000", "jobs": [
                            {"id": "AJ_live", "dispatchId": "AD_keep", "agentName": "voice",
                             "room": {"sid": "RM_keep", "name": "keep"}, "metadata": "job-meta",
                             "state": {"status": "JS_RUNNING", "startedAt": "1700000005000000000", "workerId": "W_x"}},
                            {"id": "AJ_done", "agentName": "voice", "room": {"sid": "RM_keep", "name": "keep"},
                             "state": {"status": "JS_SUCCESS"}}]}}]),
                    _ => json!([]),
                };
                Json(json!({"agentDispatches": dispatches}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn ghosts_are_removed_and_missed_joins_added_with_least_privilege_tokens() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let lk = fake_livekit(seen.clone()).await;
    let s = support::spawn(&format!(
        "livekit: {{api_url: '{lk}', reconcile_interval_seconds: 2}}\naccess_validation: {{strict_mode: false}}"
    ))
    .await;
    // What webhooks told us: room keep with stay + ghost, and a ghost room.
    let mut sse = Sse::watch_all(&s.url).await;
    // Warden reconciles once at start: what LiveKit has may already be in the snapshot.
    let snapshot = sse
        .next(Duration::from_secs(5))
        .await
        .expect("snapshot")
        .data;
    support::deliver(
        &s.url,
        &support::participant_joined("keep", "RM_keep", "PA_stay", "stay@x", "Stay"),
    )
    .await;
    support::deliver(
        &s.url,
        &support::participant_joined("keep", "RM_keep", "PA_ghost", "ghost@x", "Ghost"),
    )
    .await;
    support::deliver(&s.url, &support::room_started("gone", "RM_gone")).await;
    let mut changes: Vec<String> = reconciled_until(
        &mut sse,
        &["participant_removed:PA_ghost", "room_removed:RM_gone"],
        Duration::from_secs(10),
    )
    .await
    .into_iter()
    .map(|(change, _)| change)
    .collect();
    for (added, sid) in [("room_added", "RM_new"), ("participant_added", "PA_newp")] {
        let seen = format!("{added}:{sid}");
        if snapshot.contains(sid) {
            assert!(
                !changes.contains(&seen),
                "{sid} was in the snapshot and announced again"
            );
        } else {
            assert!(
                changes.contains(&seen),
                "{sid} was neither in the snapshot nor reconciled: {changes:?}"
            );
        }
    }
    changes.retain(|c| c.contains("removed"));
    changes.sort();
    assert_eq!(
        changes,
        ["participant_removed:PA_ghost", "room_removed:RM_gone"],
        "ghosts removed"
    );
    let rooms = rooms_json(&s.url).await;
    let mut sids: Vec<&str> = rooms["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .filter_map(|r| r["sid"].as_str())
        .collect();
    sids.sort();
    assert_eq!(sids, ["RM_keep", "RM_new"], "{rooms}");
    let text = rooms.to_string();
    assert!(
        !text.contains("PA_ghost") && text.contains("PA_newp") && !text.contains("new@x"),
        "{text}"
    );
    // Least privilege: roomList for the list, roomAdmin for one room per ListParticipants.
    let calls = seen.lock().expect("lock").calls.clone();
    assert!(!calls.is_empty());
    for (what, c) in &calls {
        assert_eq!(c["iss"], KEY);
        assert!(
            c["exp"].as_i64().unwrap_or(0) - c["nbf"].as_i64().unwrap_or(0) <= 60,
            "{c}"
        );
        if what == "ListRooms" {
            assert_eq!(c["video"], json!({"roomList": true}), "{c}");
        } else {
            let room = what
                .trim_start_matches("ListParticipants:")
                .trim_start_matches("ListDispatch:");
            assert_eq!(c["video"], json!({"roomAdmin": true, "room": room}), "{c}");
        }
    }
    s.stop().await;
}

#[test]
fn insecure_outbound_urls_refuse_start_up_with_the_reason() {
    // ws:// and http:// LiveKit URLs are upgraded (wss/https); what cannot be
    // made secure is refused. Alerts are never silently upgraded.
    for (yaml, key) in [
        (
            "livekit: {api_url: 'ftp://livekit.example.com'}",
            "livekit.api_url",
        ),
        (
            "alerts: {webhook_url: 'http://alerts.example.com/hook'}",
            "alert",
        ),
    ] {
        let bin = support::Binary::new();
        bin.write_config(yaml);
        let mut child = bin
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{yaml}: warden started instead of refusing");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
            .expect("read");
        assert_eq!(status.code(), Some(1), "{yaml}: {err}");
        assert!(
            err.contains(key) && err.trim().lines().count() == 1,
            "{yaml}: {err}"
        );
    }
}

/// Reconciled changes seen on `sse` until `want` are all there (or `within` passes):
/// `change:sid` → the event's id, in arrival order.
async fn reconciled_until(sse: &mut Sse, want: &[&str], within: Duration) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while !want.iter().all(|w| got.iter().any(|(c, _)| c == w))
        && tokio::time::Instant::now() < deadline
    {
        if let Some(ev) = sse.next(Duration::from_millis(300)).await
            && ev.event == "reconciled"
        {
            let d = ev.json()["data"].clone();
            let who = d["participant"]["sid"]
                .as_str()
                .or(d["job"]["id"].as_str())
                .or(d["room"]["sid"].as_str())
                .unwrap_or("")
                .to_owned();
            let change = format!("{}:{who}", d["change"].as_str().unwrap_or(""));
            got.push((change, ev.id.unwrap_or_default()));
        }
    }
    got
}

/// `GET /api/rooms` with a roomList token.
async fn rooms_json(url: &str) -> Value {
    support::client()
        .get(format!("{url}/api/rooms"))
        .bearer_auth(support::list_token())
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json")
}

async fn room_sids(url: &str) -> String {
    rooms_json(url).await.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_one_node_reconciles_for_all_and_another_takes_over() {
    use crate::cluster::server::RedisServer;
    let lk = fake_livekit(Arc::new(Mutex::new(Seen::default()))).await;
    let redis = RedisServer::start();
    // A node that died holding the lease: nobody reconciles until it expires.
    let mut conn = redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .expect("redis");
    redis::cmd("SET")
        .arg("{warden}:reconciler")
        .arg("a-dead-node")
        .arg("PX")
        .arg(4000)
        .exec(&mut conn)
        .expect("SET");
    let yaml = format!(
        "storage: {{backend: redis, redis_url: '{}'}}\n\
         livekit: {{api_url: '{lk}', reconcile_interval_seconds: 1}}\n\
         access_validation: {{strict_mode: false}}",
        redis.url()
    );
    let a = support::spawn(&yaml).await;
    let b = support::spawn(&yaml).await;
    let leads = |s: &support::TestServer| s.state.cluster.as_ref().expect("cluster").reconciles();
    assert!(
        !leads(&a) && !leads(&b),
        "the dead node's lease still holds"
    );
    let mut on_a = Sse::watch_all(&a.url).await;
    let mut on_b = Sse::watch_all(&b.url).await;
    for sse in [&mut on_a, &mut on_b] {
        assert_eq!(
            sse.next(Duration::from_secs(5))
                .await
                .expect("snapshot")
                .event,
            "snapshot"
        );
    }
    for body in [
        support::participant_joined("keep", "RM_keep", "PA_stay", "stay@x", "Stay"),
        support::participant_joined("keep", "RM_keep", "PA_ghost", "ghost@x", "Ghost"),
        support::room_started("gone", "RM_gone"),
    ] {
        assert_eq!(support::deliver(&a.url, &body).await, 200);
    }

    let want = ["participant_removed:PA_ghost", "room_removed:RM_gone"];
    let seen_a = reconciled_until(&mut on_a, &want, Duration::from_secs(15)).await;
    let seen_b = reconciled_until(&mut on_b, &want, Duration::from_secs(5)).await;
    assert_eq!(
        seen_a, seen_b,
        "the same changes with the same ids on both nodes"
    );
    for w in want {
        let n = seen_a.iter().filter(|(c, _)| c == w).count();
        assert_eq!(n, 1, "{w} once: {seen_a:?}");
    }
    let epoch = a.state.hub.epoch().to_owned();
    assert!(
        seen_a
            .iter()
            .all(|(_, id)| id.starts_with(&format!("{epoch}-"))),
        "{seen_a:?}"
    );
    assert!(leads(&a) != leads(&b), "exactly one node holds the lease");
    for url in [&a.url, &b.url] {
        let rooms = room_sids(url).await;
        assert!(
            !rooms.contains("RM_gone") && !rooms.contains("PA_ghost") && rooms.contains("RM_new"),
            "{rooms}"
        );
    }
    // The shared stream's seq went past the reconciled changes: a webhook
    // after them gets a later id on every node.
    let seq = |id: &str| {
        id.rsplit_once('-')
            .and_then(|(_, s)| s.parse::<u64>().ok())
            .expect("<epoch>-<seq>")
    };
    let last = seen_a.iter().map(|(_, id)| seq(id)).max().unwrap_or(0);
    let after = support::room_started("after", "RM_after");
    assert_eq!(support::deliver(&b.url, &after).await, 200);
    let next = on_a
        .next_named("room_started", Duration::from_secs(5))
        .await
        .expect("the webhook on A");
    assert!(seq(next.id.as_deref().unwrap_or("")) > last, "{next:?}");
    // Nothing is announced twice by a second reconciler.
    let more = reconciled_until(&mut on_b, &["never"], Duration::from_millis(2500)).await;
    assert!(
        more.iter().all(|(c, _)| !want.contains(&c.as_str())),
        "{more:?}"
    );
    // A client resumes on B from the first change it saw on A.
    if seen_a.len() >= 2 {
        let mut resumed = Sse::open(
            &format!("{}/api/events", b.url),
            Some(&support::list_token()),
            &[("last-event-id", &seen_a[0].1)],
        )
        .await;
        let next = resumed.next(Duration::from_secs(5)).await.expect("resumed");
        assert_eq!(
            next.id.as_deref(),
            Some(seen_a[1].1.as_str()),
            "{}",
            next.event
        );
    }

    // The holder stops (it gives the lease back); the other takes over.
    let (holder, survivor, mut on_survivor) = if leads(&a) {
        (a, b, on_b)
    } else {
        (b, a, on_a)
    };
    holder.stop().await;
    assert_eq!(
        support::deliver(&survivor.url, &support::room_started("gone2", "RM_gone2")).await,
        200
    );
    let after = reconciled_until(
        &mut on_survivor,
        &["room_removed:RM_gone2"],
        Duration::from_secs(10),
    )
    .await;
    assert!(
        after.iter().any(|(c, _)| c == "room_removed:RM_gone2"),
        "the survivor took over: {after:?}"
    );
    assert!(leads(&survivor));
    survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn running_agent_jobs_are_reconciled_from_the_agent_dispatch_api() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let lk = fake_livekit(seen.clone()).await;
    let s = support::spawn(&format!(
        "livekit: {{api_url: '{lk}', reconcile_interval_seconds: 2}}\naccess_validation: {{strict_mode: false}}"
    ))
    .await;
    let mut sse = Sse::watch_all(&s.url).await;
    // Warden reconciles once at start: LiveKit's running job may already be in the snapshot.
    let snapshot = sse
        .next(Duration::from_secs(5))
        .await
        .expect("snapshot")
        .data;
    // We hold a job LiveKit no longer runs (its agent_job_ended was lost).
    let ghost = json!({"event": "agent_job_started", "id": "EV_ghostjob",
        "job": {"id": "AJ_ghost", "agentName": "old", "room": {"sid": "RM_keep", "name": "keep"},
                "state": {"status": "JS_RUNNING"}}});
    assert_eq!(
        support::deliver(&s.url, &serde_json::to_vec(&ghost).expect("json")).await,
        200
    );
    let changes: Vec<String> = reconciled_until(
        &mut sse,
        &["agent_removed:AJ_ghost"],
        Duration::from_secs(10),
    )
    .await
    .into_iter()
    .map(|(c, _)| c)
    .collect();
    assert!(
        changes.contains(&"agent_removed:AJ_ghost".to_owned()),
        "{changes:?}"
    );
    assert!(
        snapshot.contains("AJ_live") || changes.contains(&"agent_added:AJ_live".to_owned()),
        "LiveKit's running job neither in the snapshot nor reconciled: {changes:?}"
    );
    assert!(
        !changes.iter().any(|c| c.contains("AJ_done")),
        "a finished job is not running"
    );
    let rooms = rooms_json(&s.url).await;
    let keep = rooms["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["sid"] == "RM_keep")
        .expect("keep")
        .clone();
    let ids: Vec<&str> = keep["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .filter_map(|j| j["id"].as_str())
        .collect();
    assert_eq!(ids, ["AJ_live"], "{keep}");
    let text = rooms.to_string();
    assert!(!text.contains("job-meta") && !text.contains("W_x") && !text.contains("dispatch-meta"));
    let calls = seen.lock().expect("lock").calls.clone();
    let dispatch = calls
        .iter()
        .find(|(w, _)| w == "ListDispatch:keep")
        .expect("ListDispatch called");
    assert_eq!(
        dispatch.1["video"],
        json!({"roomAdmin": true, "room": "keep"})
    );
    s.stop().await;
}
