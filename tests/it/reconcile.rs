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
struct Seen {
    calls: Vec<(String, Value)>,
}

fn claims(headers: &HeaderMap) -> Value {
    let token = headers["authorization"]
        .to_str()
        .expect("auth")
        .trim_start_matches("Bearer ")
        .to_owned();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &v,
    )
    .expect("the API token verifies with the active key")
    .claims
}

async fn fake_livekit(seen: Arc<Mutex<Seen>>) -> String {
    let (s1, s2) = (seen.clone(), seen);
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
    let mut sse = Sse::open(
        &format!("{}/api/events", s.url),
        Some(&support::list_token()),
        &[],
    )
    .await;
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
    let mut changes: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while changes.iter().filter(|c| c.contains("removed")).count() < 2
        && tokio::time::Instant::now() < deadline
    {
        if let Some(ev) = sse.next(Duration::from_millis(500)).await
            && ev.event == "reconciled"
        {
            let d = ev.json()["data"].clone();
            let who = d["participant"]["sid"]
                .as_str()
                .or(d["room"]["sid"].as_str())
                .unwrap_or("")
                .to_owned();
            changes.push(format!("{}:{who}", d["change"].as_str().unwrap_or("")));
        }
    }
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
    let rooms: Value = support::client()
        .get(format!("{}/api/rooms", s.url))
        .bearer_auth(support::list_token())
        .send()
        .await
        .expect("req")
        .json()
        .await
        .expect("json");
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
            let room = what.trim_start_matches("ListParticipants:");
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
