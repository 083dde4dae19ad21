//! LiveKit as it is today: agent job events, participant kinds, and events
//! that arrive out of order or late. Payloads are shaped as livekit-server
//! writes them (protojson: camelCase or snake_case, int64 as strings, zero
//! values omitted, enums as names or numbers).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, Sse};

const T: Duration = Duration::from_secs(5);

/// PII and secrets that appear in the payloads below and must never be written anywhere.
const NEVER: &[&str] = &[
    "job-metadata-PII",
    "job-attr-PII",
    "participant-attr-PII",
    "participant-metadata-PII",
    "W_worker42",
    "A_agentid42",
    "TURNpassword42",
    "caller+15551234567",
    "agent-identity-raw",
    "DISPATCH_dispatchid42",
];

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64
}

fn room_json(sid: &str, name: &str) -> Value {
    json!({"sid": sid, "name": name, "turnPassword": "TURNpassword42", "metadata": "room-meta",
           "creationTime": (now_s() - 60).to_string(), "numParticipants": 2})
}

/// `agent_job_started` for a room job still pending: neither `type` nor `status` (zero values), no top-level room.
fn room_job_pending(job: &str) -> Value {
    json!({
        "event": "agent_job_started",
        "id": format!("EV_{}", support::rand_hex()),
        "createdAt": now_s().to_string(),
        "job": {
            "id": job, "dispatchId": "DISPATCH_dispatchid42", "room": room_json("RM_agents", "agents"),
            "agentName": "voice-assistant", "metadata": "job-metadata-PII",
            "attributes": {"k": "job-attr-PII"},
            "state": {"updatedAt": format!("{}000000000", now_s()), "workerId": "W_worker42", "agentId": "A_agentid42"}
        }
    })
}

/// A SIP caller's participant job, snake_case, enums as numbers, times in ns.
fn sip_job_running(job: &str) -> Value {
    let ns = format!("{}000000000", now_s() - 3);
    json!({
        "event": "agent_job_started",
        "id": format!("EV_{}", support::rand_hex()),
        "created_at": now_s(),
        "job": {
            "id": job, "type": 2, "agent_name": "sip-receptionist",
            "room": room_json("RM_agents", "agents"),
            "participant": {"sid": "PA_caller", "identity": "caller+15551234567", "name": "Caller",
                            "kind": 3, "state": 2, "metadata": "participant-metadata-PII",
                            "attributes": {"sip.phoneNumber": "participant-attr-PII"}},
            "state": {"status": 1, "started_at": ns, "participant_identity": "agent-identity-raw",
                      "worker_id": "W_worker42", "agent_id": "A_agentid42"}
        }
    })
}

/// A failed job whose error carries markup and bidi controls.
fn job_failed(job: &str) -> Value {
    json!({
        "event": "agent_job_ended",
        "id": format!("EV_{}", support::rand_hex()),
        "createdAt": now_s().to_string(),
        "job": {
            "id": job, "type": "JT_PUBLISHER", "agentName": "voice-assistant",
            "room": room_json("RM_agents", "agents"),
            "state": {"status": "JS_FAILED",
                      "error": "<img src=x onerror=alert(1)>\u{202E}gnp.exe crashed: <b>OOM</b>",
                      "startedAt": format!("{}000000000", now_s() - 30),
                      "endedAt": format!("{}000000000", now_s()), "workerId": "W_worker42"}
        }
    })
}

async fn send(base: &str, v: &Value) {
    let body = serde_json::to_vec(v).expect("json");
    assert_eq!(support::deliver(base, &body).await, 200, "{v}");
}

async fn rooms(base: &str) -> Value {
    support::client()
        .get(format!("{base}/api/rooms"))
        .bearer_auth(support::list_token())
        .send()
        .await
        .expect("rooms")
        .json()
        .await
        .expect("json")
}

fn room<'a>(rooms: &'a Value, sid: &str) -> Option<&'a Value> {
    rooms["rooms"]
        .as_array()?
        .iter()
        .find(|r| r["sid"].as_str() == Some(sid))
}

fn agent_ids(rooms: &Value, sid: &str) -> Vec<String> {
    room(rooms, sid)
        .and_then(|r| r["agents"].as_array())
        .map(|a| {
            a.iter()
                .filter_map(|j| j["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every byte of every file under `dir`, lossily as text.
fn everything_written(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_jobs_are_carried_minimised_and_tracked_in_the_room_state() {
    let s = support::spawn("").await;
    let mut sse = Sse::watch_all(&s.url).await;
    assert_eq!(sse.next(T).await.expect("snapshot").event, "snapshot");

    send(&s.url, &room_job_pending("AJ_room1")).await;
    let ev = sse.next(T).await.expect("job event");
    assert_eq!(ev.event, "agent_job_started");
    let d = ev.json()["data"].clone();
    assert_eq!(d["room"]["name"], "agents", "the room comes from job.room");
    let job = &d["job"];
    assert_eq!(job["id"], "AJ_room1");
    assert_eq!(job["agent_name"], "voice-assistant");
    assert_eq!(job["type"], "room", "omitted type is JT_ROOM");
    assert_eq!(job["status"], "pending", "omitted status is JS_PENDING");
    assert!(
        job.get("started_at").is_none() && job.get("error").is_none(),
        "{job}"
    );

    send(&s.url, &sip_job_running("AJ_sip1")).await;
    let d = sse.next(T).await.expect("sip job").json()["data"].clone();
    assert_eq!(d["job"]["type"], "participant");
    assert_eq!(d["job"]["status"], "running");
    let started = d["job"]["started_at"].as_i64().expect("started_at in ms");
    assert!(
        (started / 1000 - (now_s() - 3)).abs() <= 2,
        "ns became ms: {started}"
    );
    let agent = d["job"]["agent_identity"].as_str().expect("agent identity");
    assert_eq!(agent.len(), 8, "the agent's identity is hashed: {agent}");
    assert_eq!(d["participant"]["kind"], "sip");
    let caller = d["participant"]["identity"].as_str().expect("identity");
    assert_eq!(caller.len(), 8, "the caller's identity is hashed");

    // Both running jobs in the snapshot and in /api/rooms.
    let r = rooms(&s.url).await;
    let mut ids = agent_ids(&r, "RM_agents");
    ids.sort();
    assert_eq!(ids, ["AJ_room1", "AJ_sip1"], "{r}");
    let snap = Sse::watch_all(&s.url)
        .await
        .next(T)
        .await
        .expect("snapshot");
    assert!(snap.data.contains("AJ_sip1") && snap.data.contains("sip-receptionist"));

    // A failed job leaves the running set; its error is plain, bounded text.
    send(&s.url, &job_failed("AJ_room1")).await;
    let d = sse.next(T).await.expect("ended").json()["data"].clone();
    assert_eq!(d["job"]["status"], "failed");
    let error = d["job"]["error"].as_str().expect("error");
    assert!(
        error.contains("crashed") && error.contains("OOM"),
        "{error}"
    );
    assert!(
        !error.contains('<') && !error.contains('\u{202E}'),
        "inert: {error:?}"
    );
    assert_eq!(agent_ids(&rooms(&s.url).await, "RM_agents"), ["AJ_sip1"]);

    // An error of any length is cut to a bound on the stream.
    let mut long = job_failed("AJ_sip1");
    long["job"]["state"]["error"] = json!("E".repeat(5_000));
    send(&s.url, &long).await;
    let d = sse.next(T).await.expect("ended").json()["data"].clone();
    let error = d["job"]["error"].as_str().expect("error");
    assert!(
        error.starts_with("EEE") && error.chars().count() <= 300,
        "bounded: {} chars",
        error.chars().count()
    );

    // Nothing the proto marks as PII, no worker or agent id, no TURN password, anywhere.
    let stream = format!("{}{}", snap.data, r);
    let dir = s.dir.path().to_path_buf();
    s.stop().await;
    let written = format!("{stream}{}", everything_written(&dir));
    for never in NEVER {
        assert!(!written.contains(never), "{never} was written");
    }
}

fn joined(psid: &str, identity: &str, joined_at_ms: i64, version: u32, state: &str) -> Value {
    json!({
        "event": "participant_joined", "id": format!("EV_{}", support::rand_hex()),
        "createdAt": now_s().to_string(), "room": room_json("RM_order", "order"),
        "participant": {"sid": psid, "identity": identity, "name": identity, "state": state,
                        "joinedAt": (joined_at_ms / 1000).to_string(), "joinedAtMs": joined_at_ms.to_string(),
                        "version": version}
    })
}

fn left(psid: &str, identity: &str, joined_at_ms: i64) -> Value {
    json!({
        "event": "participant_left", "id": format!("EV_{}", support::rand_hex()),
        "createdAt": now_s().to_string(), "room": room_json("RM_order", "order"),
        "participant": {"sid": psid, "identity": identity, "state": "DISCONNECTED",
                        "joinedAtMs": joined_at_ms.to_string(), "version": 9}
    })
}

fn participants(rooms: &Value, sid: &str) -> Vec<(String, String)> {
    room(rooms, sid)
        .and_then(|r| r["participants"].as_array())
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["sid"].as_str().unwrap_or("").to_owned(),
                        p["state"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_participant_left_does_not_remove_the_newer_session() {
    let s = support::spawn("").await;
    let t = now_s() * 1000;
    // livekit/livekit#2399: a fast reconnect; the old session's left arrives after the new join.
    send(&s.url, &joined("PA_old", "bob", t - 5000, 1, "ACTIVE")).await;
    send(&s.url, &joined("PA_new", "bob", t, 1, "ACTIVE")).await;
    send(&s.url, &left("PA_old", "bob", t - 5000)).await;
    assert_eq!(
        participants(&rooms(&s.url).await, "RM_order"),
        [("PA_new".to_owned(), "active".to_owned())]
    );
    // The same sid: a leave of an older session of it is stale too.
    send(&s.url, &joined("PA_same", "carol", t, 1, "ACTIVE")).await;
    send(&s.url, &left("PA_same", "carol", t - 60_000)).await;
    assert!(
        participants(&rooms(&s.url).await, "RM_order")
            .iter()
            .any(|(sid, _)| sid == "PA_same")
    );
    // A real leave still removes, and a late update of that session does not bring it back.
    send(&s.url, &left("PA_same", "carol", t)).await;
    send(&s.url, &joined("PA_same", "carol", t, 0, "JOINING")).await;
    assert!(
        !participants(&rooms(&s.url).await, "RM_order")
            .iter()
            .any(|(sid, _)| sid == "PA_same")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_update_does_not_overwrite_a_newer_one() {
    let s = support::spawn("").await;
    let t = now_s() * 1000;
    let mut sse = Sse::watch_all(&s.url).await;
    let _ = sse.next(T).await;
    send(&s.url, &joined("PA_v", "dave", t, 3, "ACTIVE")).await;
    // LiveKit's retry of an earlier update (version 1, still joining) arrives late.
    send(&s.url, &joined("PA_v", "dave", t, 1, "JOINING")).await;
    assert_eq!(
        participants(&rooms(&s.url).await, "RM_order"),
        [("PA_v".to_owned(), "active".to_owned())]
    );
    // Both were still delivered as they arrived.
    let states: Vec<String> = sse
        .drain(Duration::from_millis(500))
        .await
        .iter()
        .map(|e| {
            e.json()["data"]["participant"]["state"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(states, ["active", "joining"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_room_finished_of_an_older_incarnation_does_not_end_the_new_one() {
    let s = support::spawn("").await;
    let finished = |sid: &str, created: i64| {
        json!({"event": "room_finished", "id": format!("EV_{}", support::rand_hex()),
               "createdAt": now_s().to_string(),
               "room": {"sid": sid, "name": "standup", "creationTime": created.to_string()}})
    };
    let started = |sid: &str, created: i64| {
        json!({"event": "room_started", "id": format!("EV_{}", support::rand_hex()),
               "createdAt": now_s().to_string(),
               "room": {"sid": sid, "name": "standup", "creationTime": created.to_string()}})
    };
    send(&s.url, &started("RM_first", now_s() - 600)).await;
    // The first incarnation's room_finished is late: the second one is already here.
    send(&s.url, &started("RM_second", now_s() - 10)).await;
    let r = rooms(&s.url).await;
    assert!(
        room(&r, "RM_second").is_some() && room(&r, "RM_first").is_none(),
        "{r}"
    );
    send(&s.url, &finished("RM_first", now_s() - 600)).await;
    assert!(room(&rooms(&s.url).await, "RM_second").is_some());
    // A room_finished that names the room only by name, from before this incarnation, ends nothing.
    let by_name = json!({"event": "room_finished", "id": format!("EV_{}", support::rand_hex()),
        "room": {"name": "standup", "creationTime": (now_s() - 600).to_string()}});
    send(&s.url, &by_name).await;
    assert!(room(&rooms(&s.url).await, "RM_second").is_some());
    send(&s.url, &finished("RM_second", now_s() - 10)).await;
    assert!(room(&rooms(&s.url).await, "RM_second").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_track_event_for_a_participant_not_yet_known_adds_it() {
    let s = support::spawn("").await;
    let track = |event: &str, psid: &str| {
        json!({"event": event, "id": format!("EV_{}", support::rand_hex()),
               "room": room_json("RM_order", "order"),
               "participant": {"sid": psid, "identity": "erin", "state": "ACTIVE", "kind": "AGENT"},
               "track": {"sid": "TR_1", "type": "AUDIO", "source": "MICROPHONE"}})
    };
    send(&s.url, &track("track_published", "PA_t1")).await;
    send(&s.url, &track("track_unpublished", "PA_t2")).await;
    let r = rooms(&s.url).await;
    let ps = room(&r, "RM_order").expect("room")["participants"].clone();
    let sids: Vec<&str> = ps
        .as_array()
        .expect("participants")
        .iter()
        .filter_map(|p| p["sid"].as_str())
        .collect();
    assert_eq!(sids, ["PA_t1", "PA_t2"], "{r}");
    assert_eq!(ps[0]["kind"], "agent");
    assert_eq!(ps[0]["tracks"][0]["sid"], "TR_1");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sender_lag_is_measured_and_warns_near_livekits_30_s() {
    let s = support::spawn("").await;
    let health = |base: String| async move {
        let v: Value = support::client()
            .get(format!("{base}/api/security/health"))
            .bearer_auth(support::admin_token())
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("json");
        v["checks"]["webhook_lag"].clone()
    };
    assert_eq!(health(s.url.clone()).await["status"], "healthy");
    let mut fresh = joined("PA_lag1", "lag", now_s() * 1000, 1, "ACTIVE");
    fresh["createdAt"] = json!(now_s().to_string());
    send(&s.url, &fresh).await;
    let check = health(s.url.clone()).await;
    assert_eq!(check["status"], "healthy", "{check}");
    // An event LiveKit created 25 s ago: close to the age at which LiveKit gives up.
    let mut late = joined("PA_lag2", "lag2", now_s() * 1000, 1, "ACTIVE");
    late["createdAt"] = json!((now_s() - 25).to_string());
    send(&s.url, &late).await;
    let check = health(s.url.clone()).await;
    assert_eq!(check["status"], "degraded", "{check}");
    assert!(
        check["detail"].as_str().unwrap_or("").contains("30 s"),
        "{check}"
    );
    let status: Value = support::client()
        .get(format!("{}/api/security/status", s.url))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    assert!(
        status["webhook_lag_ms"]["max_5m"].as_i64().unwrap_or(0) >= 24_000,
        "{status}"
    );
    let metrics = support::client()
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("warden_webhook_lag_seconds_count 2"),
        "{metrics}"
    );
    // Both events went through the durable history: stored, in at least one commit.
    assert!(
        metrics.contains("warden_history_events_stored_total 2"),
        "{metrics}"
    );
    let commits: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("warden_history_commits_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("history commits metric");
    assert!((1..=2).contains(&commits), "{commits} commits for 2 events");
    assert!(
        metrics.contains("warden_webhook_lag_seconds_bucket{le=\"30.0\"} 2"),
        "{metrics}"
    );
    s.stop().await;
}

/// The real binary at DEBUG: what it logs about agent jobs carries none of
/// the fields that are never kept, and neither does any file it writes.
#[tokio::test(flavor = "multi_thread")]
async fn agent_job_pii_never_reaches_the_log_or_any_file() {
    let bin = support::Binary::new();
    bin.write_config("logging: {log_level: DEBUG}\n");
    let mut served = bin.serve(&[]);
    for v in [
        room_job_pending("AJ_log1"),
        sip_job_running("AJ_log2"),
        job_failed("AJ_log1"),
    ] {
        send(&served.url, &v).await;
    }
    let r = rooms(&served.url).await;
    assert_eq!(agent_ids(&r, "RM_agents"), ["AJ_log2"], "{r}");
    served.terminate();
    let logged = served.output();
    assert!(
        logged.contains("agent_job_started") && logged.contains("agent_job_ended"),
        "each accepted job event is logged: {logged}"
    );
    let written = format!("{logged}{}", everything_written(bin.dir.path()));
    for never in NEVER {
        assert!(!written.contains(never), "{never} was written: {logged}");
    }
}
