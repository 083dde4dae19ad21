//! State survives a restart and a crash (SPEC "SSE stream", last paragraph):
//! the real binary, killed with SIGKILL, restarted on the same directory.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::server::RedisServer;
use crate::support::{self, Binary, Served, Sse};

const WAIT: Duration = Duration::from_secs(10);

async fn rooms(base: &str) -> Value {
    let resp = support::client()
        .get(format!("{base}/api/rooms"))
        .bearer_auth(support::list_token())
        .send()
        .await
        .expect("GET /api/rooms");
    assert_eq!(resp.status(), 200);
    resp.json().await.expect("json")
}

/// The snapshot that opens a fresh stream (no last id).
async fn snapshot(base: &str) -> (String, Value) {
    let mut sse = Sse::watch_all(base).await;
    assert_eq!(sse.status, 200, "{}", sse.body);
    let ev = sse.next(WAIT).await.expect("first event");
    assert_eq!(ev.event, "snapshot");
    let json = ev.json();
    (ev.id.expect("snapshot id"), json)
}

/// Two rooms and eleven participants, as the issue's user had.
fn bodies() -> Vec<Vec<u8>> {
    let mut out = vec![
        support::room_started("alpha", "RM_alpha"),
        support::room_started("beta", "RM_beta"),
    ];
    for i in 0..11 {
        let (room, sid) = if i < 6 {
            ("alpha", "RM_alpha")
        } else {
            ("beta", "RM_beta")
        };
        out.push(support::participant_joined(
            room,
            sid,
            &format!("PA_{i}"),
            &format!("user-{i}"),
            &format!("User {i}"),
        ));
    }
    out
}

fn kill(served: &mut Served) {
    // SIGKILL: no shutdown path runs, nothing is flushed.
    served.child.kill().expect("SIGKILL");
    let _ = served.child.wait();
}

fn epoch_of(id: &str) -> &str {
    id.split_once('-').map_or(id, |(e, _)| e)
}

fn seq_of(id: &str) -> u64 {
    id.rsplit_once('-')
        .and_then(|(_, s)| s.parse().ok())
        .unwrap_or_else(|| panic!("id {id} has no seq"))
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_the_last_200_loses_nothing_and_keeps_the_epoch() {
    crash_and_resume(&Binary::new()).await;
}

/// The Redis backend answers the same test: its history and ids live in the shared stream.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_the_last_200_loses_nothing_with_the_redis_backend() {
    let redis = RedisServer::start();
    let bin = Binary::new();
    bin.write_config(&format!(
        "storage: {{backend: redis, redis_url: \"{}\"}}\n",
        redis.url()
    ));
    crash_and_resume(&bin).await;
}

/// Acknowledged webhooks, SIGKILL right after the last 200, a restart on the
/// same directory: the same state, a resume with no reset and no duplicate,
/// and new events continuing the same ids.
async fn crash_and_resume(bin: &Binary) {
    let mut served = bin.serve(&[]);
    let base = served.url.clone();
    let (start_id, _) = snapshot(&base).await;
    let mut watcher = Sse::watch_all(&base).await;
    let _ = watcher.next(WAIT).await.expect("snapshot");

    let bodies = bodies();
    for body in &bodies {
        assert_eq!(support::deliver(&base, body).await, 200);
    }
    let mut ids = Vec::new();
    for _ in &bodies {
        let ev = watcher.next(WAIT).await.expect("live event");
        ids.push(ev.id.expect("event id"));
    }
    let rooms_before = rooms(&base).await;
    let (snap_id_before, snap_before) = snapshot(&base).await;
    assert_eq!(rooms_before["rooms"].as_array().map(Vec::len), Some(2));
    kill(&mut served);

    let mut served = bin.serve(&[]);
    let base = served.url.clone();
    // The same state.
    assert_eq!(rooms(&base).await, rooms_before);
    let (snap_id_after, snap_after) = snapshot(&base).await;
    assert_eq!(snap_after, snap_before);
    assert_eq!(snap_id_after, snap_id_before, "same epoch, same head");

    // A client that had seen the fourth event resumes with the rest: no reset, no snapshot, no duplicate.
    let resume_from = &ids[3];
    let mut resumed = Sse::open(
        &format!("{base}/api/events"),
        Some(&support::list_token()),
        &[("last-event-id", resume_from)],
    )
    .await;
    assert_eq!(resumed.status, 200);
    let mut got = Vec::new();
    for _ in 4..ids.len() {
        let ev = resumed.next(WAIT).await.expect("resumed event");
        assert!(
            ev.event != "reset" && ev.event != "snapshot",
            "resume across a restart must not reset: {ev:?}"
        );
        got.push(ev.id.expect("id"));
    }
    assert_eq!(got, ids[4..].to_vec());

    // A new event continues the same id sequence, to the resumed client too.
    let more = support::participant_joined("beta", "RM_beta", "PA_new", "late", "Late");
    assert_eq!(support::deliver(&base, &more).await, 200);
    let next = resumed.next(WAIT).await.expect("new event");
    let next_id = next.id.expect("id");
    assert_eq!(epoch_of(&next_id), epoch_of(&start_id));
    assert_eq!(seq_of(&next_id), seq_of(ids.last().expect("ids")) + 1);
    assert!(
        resumed.next(Duration::from_millis(300)).await.is_none(),
        "nothing more"
    );
    kill(&mut served);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_in_the_middle_of_concurrent_webhooks_keeps_every_acknowledged_one() {
    let bin = Binary::new();
    bin.write_config("webhooks: {rate_limit_per_minute: 1000000}\n");
    let mut served = bin.serve(&[]);
    let base = served.url.clone();
    let (start_id, _) = snapshot(&base).await;
    assert_eq!(
        support::deliver(&base, &support::room_started("r", "RM_r")).await,
        200
    );

    // 64 senders deliver distinct events until the process dies under them.
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for w in 0..64 {
        let (base, acked) = (base.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            for i in 0..1_000_000 {
                let psid = format!("PA_{w}_{i}");
                let body = support::participant_joined("r", "RM_r", &psid, &psid, "x");
                let id = serde_json::from_slice::<Value>(&body).expect("json")["id"]
                    .as_str()
                    .expect("id")
                    .to_owned();
                let sent = support::client()
                    .post(format!("{base}/webhooks/livekit"))
                    .header("content-type", "application/webhook+json")
                    .header(
                        "authorization",
                        support::sign_webhook(&body, support::KEY, support::SECRET),
                    )
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => acked.lock().expect("lock").push(id),
                    Ok(r) => return Some(r.status().as_u16()),
                    // The process was killed under this request.
                    Err(_) => return None,
                }
            }
            None
        }));
    }
    // Killed while the senders are busy, once a good number got their 200.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").len() < 150 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kill(&mut served);
    let mut refused = Vec::new();
    for s in senders {
        refused.extend(s.await.ok().flatten());
    }
    assert!(refused.is_empty(), "refused while running: {refused:?}");
    let acked: Vec<String> = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 50,
        "only {} webhooks acknowledged",
        acked.len()
    );

    let mut served = bin.serve(&[]);
    let base = served.url.clone();
    // Resume from before the first event: the whole history comes back.
    let mut resumed = Sse::open(
        &format!("{base}/api/events"),
        Some(&support::list_token()),
        &[("last-event-id", &start_id)],
    )
    .await;
    let mut seen = HashSet::new();
    let mut last_seq = seq_of(&start_id);
    while let Some(ev) = resumed.next(Duration::from_millis(1500)).await {
        assert_ne!(ev.event, "reset", "{ev:?}");
        let livekit_id = ev.json()["id"].as_str().expect("event id").to_owned();
        let id = ev.id.expect("id");
        assert_eq!(epoch_of(&id), epoch_of(&start_id));
        assert_eq!(seq_of(&id), last_seq + 1, "consecutive ids");
        last_seq = seq_of(&id);
        assert!(seen.insert(livekit_id), "no event twice");
    }
    let lost: Vec<&String> = acked.iter().filter(|id| !seen.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    // And the room state counts every acknowledged participant.
    let state = rooms(&base).await;
    let n = state["rooms"][0]["participants"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(
        n >= acked.len(),
        "{n} participants for {} acknowledged joins",
        acked.len()
    );
    // A retry of an acknowledged event after the restart is still a duplicate (not re-broadcast).
    kill(&mut served);
}

#[tokio::test(flavor = "multi_thread")]
async fn history_and_room_rows_stay_bounded() {
    let bin = Binary::new();
    bin.write_config("realtime: {history_size: 20, client_queue_size: 20}\n");
    let mut served = bin.serve(&[]);
    let base = served.url.clone();
    for round in 0..30 {
        let room = format!("room-{round}");
        let sid = format!("RM_{round}");
        assert_eq!(
            support::deliver(&base, &support::room_started(&room, &sid)).await,
            200
        );
        for p in 0..3 {
            let body =
                support::participant_joined(&room, &sid, &format!("PA_{round}_{p}"), "id", "n");
            assert_eq!(support::deliver(&base, &body).await, 200);
        }
        assert_eq!(
            support::deliver(&base, &room_finished(&room, &sid)).await,
            200
        );
    }
    served.terminate();
    let db = rusqlite::Connection::open(bin.dir.path().join("data/warden.db")).expect("db");
    let count = |table: &str| -> i64 {
        db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    };
    assert_eq!(count("hub_history"), 20, "150 events, history_size 20");
    assert_eq!(count("hub_rooms"), 0, "every room finished");
    assert_eq!(count("hub_participants"), 0, "and its participants with it");
    let head: String = db
        .query_row("SELECT value FROM hub_meta WHERE key = 'head'", [], |r| {
            r.get(0)
        })
        .expect("head");
    assert_eq!(head, "150");
}

fn room_finished(room: &str, sid: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "event": "room_finished",
        "room": {"sid": sid, "name": room},
        "id": format!("EV_{}", support::rand_hex()),
        "createdAt": "1700000000",
    }))
    .expect("json")
}

/// What happened in LiveKit while Warden was down is corrected at start-up
/// and announced as `reconciled` to a client that resumes across the restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_reconciles_at_once_with_livekit() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(crate::reconcile::Seen::default()));
    let lk = crate::reconcile::fake_livekit(seen.clone()).await;
    let bin = Binary::new();
    let mut served = bin.serve(&[]);
    let base = served.url.clone();
    for body in [
        support::participant_joined("keep", "RM_keep", "PA_stay", "stay@x", "Stay"),
        support::participant_joined("keep", "RM_keep", "PA_ghost", "ghost@x", "Ghost"),
        support::room_started("gone", "RM_gone"),
    ] {
        assert_eq!(support::deliver(&base, &body).await, 200);
    }
    let (last_id, _) = snapshot(&base).await;
    kill(&mut served);
    assert!(seen.lock().expect("lock").calls.is_empty(), "no API yet");

    // Restarted with the LiveKit API configured; the next periodic run is an hour away.
    bin.write_config(&format!(
        "livekit: {{api_url: '{lk}', reconcile_interval_seconds: 3600}}\naccess_validation: {{strict_mode: false}}\n"
    ));
    let mut served = bin.serve(&[]);
    let base = served.url.clone();
    let mut resumed = Sse::open(
        &format!("{base}/api/events"),
        Some(&support::list_token()),
        &[("last-event-id", &last_id)],
    )
    .await;
    let mut changes = Vec::new();
    while let Some(ev) = resumed.next(Duration::from_secs(5)).await {
        assert_eq!(ev.event, "reconciled", "{ev:?}");
        let d = ev.json();
        changes.push(format!(
            "{}:{}",
            d["data"]["change"].as_str().unwrap_or(""),
            d["data"]["participant"]["sid"]
                .as_str()
                .or(d["data"]["room"]["sid"].as_str())
                .unwrap_or("")
        ));
        if changes.len() == 4 {
            break;
        }
    }
    changes.sort();
    assert_eq!(
        changes,
        [
            "participant_added:PA_newp",
            "participant_removed:PA_ghost",
            "room_added:RM_new",
            "room_removed:RM_gone"
        ]
    );
    let now = rooms(&base).await.to_string();
    assert!(
        !now.contains("PA_ghost") && !now.contains("RM_gone") && now.contains("PA_newp"),
        "{now}"
    );
    kill(&mut served);
}
