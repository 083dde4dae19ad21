//! Personal data (SPEC "Personal data"): one identity put into every store,
//! exported and erased with the server running, then looked for in every
//! byte of every file under the instance's directory.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, Binary, Sse};

const WAIT: Duration = Duration::from_secs(10);
const WHO: &str = "alice.subject@example.com";
const NAME: &str = "Alice Subjectname";
const OTHER: &str = "bob.keeper@example.com";

fn run(bin: &Binary, args: &[&str]) -> (i32, String, String) {
    let out = bin.run(args, "");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
            {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

async fn snapshot(base: &str) -> (String, Value) {
    let mut sse = Sse::watch_all(base).await;
    assert_eq!(sse.status, 200, "{}", sse.body);
    let ev = sse.next(WAIT).await.expect("first event");
    assert_eq!(ev.event, "snapshot");
    let json = ev.json();
    (ev.id.expect("snapshot id"), json)
}

#[tokio::test]
async fn an_identity_in_every_store_is_erased_while_the_server_runs() {
    let bin = Binary::new();
    let served = bin.serve(&[]);
    let base = served.url.clone();
    let (start_id, _) = snapshot(&base).await;

    // Webhooks: the room state and the history (hashed identity, display name).
    for body in [
        support::room_started("lobby", "RM_lobby"),
        support::participant_joined("lobby", "RM_lobby", "PA_alice", WHO, NAME),
        support::participant_joined("lobby", "RM_lobby", "PA_bob", OTHER, "Bob"),
    ] {
        assert_eq!(support::deliver(&base, &body).await, 200);
    }
    // A denied token whose `sub` is the identity: UNAUTHORIZED_ACCESS in the
    // audit store and the security log.
    let denied = support::access_token(
        support::KEY,
        support::SECRET,
        WHO,
        json!({"roomList": true}),
        600,
    );
    let resp = support::client()
        .get(format!("{base}/api/security/status"))
        .bearer_auth(denied)
        .send()
        .await
        .expect("denied request");
    assert_eq!(resp.status(), 403);

    let (code, out, err) = run(
        &bin,
        &["subject", "export", "--identity", WHO, "--url", &base],
    );
    assert_eq!(code, 0, "{err}");
    let export: Value = serde_json::from_str(&out).expect("export is JSON");
    let hash = export["identity_hash"].as_str().expect("hash").to_owned();
    assert_eq!(hash.len(), 8);
    assert_eq!(
        export["room_state"].as_array().map(Vec::len),
        Some(1),
        "{export}"
    );
    assert_eq!(export["room_state"][0]["participant"]["name"], NAME);
    assert!(!export["history"].as_array().expect("history").is_empty());
    assert!(
        !export["security_events"]
            .as_array()
            .expect("events")
            .is_empty()
    );
    assert!(!export["security_log"].as_array().expect("log").is_empty());
    assert!(
        !out.contains(OTHER) && !out.contains("Bob"),
        "only the subject: {out}"
    );
    // Before: the hash is on disk (so the scan below can find it).
    assert!(!files_containing(bin.dir.path(), &hash).is_empty());

    let (code, out, err) = run(
        &bin,
        &["subject", "erase", "--identity", WHO, "--url", &base],
    );
    assert_eq!(code, 0, "{err}");
    let erased: Value = serde_json::from_str(&out).expect("erase answer is JSON");
    assert_eq!(erased["erased"]["database_scrubbed"], true, "{erased}");
    assert!(
        erased["erased"]["audit"]["audit_entries"].as_u64() >= Some(1),
        "{erased}"
    );
    assert!(
        erased["erased"]["hub"]["history_frames"].as_u64() >= Some(1),
        "{erased}"
    );

    // Every byte of every file under the instance's directory.
    for needle in [WHO, hash.as_str(), NAME] {
        let found = files_containing(bin.dir.path(), needle);
        assert!(found.is_empty(), "{needle} still in {found:?}");
    }
    // Others are kept.
    let (_, snap) = snapshot(&base).await;
    let text = snap.to_string();
    assert!(text.contains("Bob"), "{text}");
    assert!(
        !text.contains(&hash) && !text.contains(NAME),
        "fresh snapshot: {text}"
    );
    let rooms: Value = support::client()
        .get(format!("{base}/api/rooms"))
        .bearer_auth(support::list_token())
        .send()
        .await
        .expect("rooms")
        .json()
        .await
        .expect("json");
    assert!(!rooms.to_string().contains(&hash), "{rooms}");

    // A resumed stream replays the history without the subject (same ids).
    let mut sse = Sse::open(
        &format!("{base}/api/events"),
        Some(&support::list_token()),
        &[("last-event-id", &start_id)],
    )
    .await;
    assert_eq!(sse.status, 200, "{}", sse.body);
    let replayed = sse.drain(Duration::from_secs(2)).await;
    let joined: Vec<_> = replayed
        .iter()
        .filter(|e| e.event == "participant_joined")
        .collect();
    assert_eq!(joined.len(), 2, "both joins replayed: {replayed:?}");
    for e in &replayed {
        assert!(
            !e.data.contains(&hash) && !e.data.contains(NAME),
            "replayed: {}",
            e.data
        );
    }
    assert!(replayed.iter().any(|e| e.data.contains("Bob")));

    // The chain still verifies, and the erasure is in it, without the identity.
    let (code, out, err) = run(&bin, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let events: Value = support::client()
        .get(format!("{base}/api/security/events?type=SUBJECT_ERASED"))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let ev = &events["events"][0];
    assert_eq!(ev["type"], "SUBJECT_ERASED", "{events}");
    assert!(ev["identity"].is_null(), "{ev}");
    // Nothing is left to export.
    let (code, out, _) = run(
        &bin,
        &["subject", "export", "--identity", WHO, "--url", &base],
    );
    assert_eq!(code, 0);
    let after: Value = serde_json::from_str(&out).expect("json");
    for k in ["room_state", "history", "security_events", "security_log"] {
        assert_eq!(after[k], json!([]), "{k}: {after}");
    }
}

#[tokio::test]
async fn the_admin_api_validates_and_needs_admin_grants() {
    let srv = support::spawn("").await;
    let c = support::client();
    let url = format!("{}/api/security/subjects/erase", srv.url);
    let r = c
        .post(&url)
        .bearer_auth(support::list_token())
        .json(&json!({"identity": WHO}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    for body in [
        json!({}),
        json!({"identity": ""}),
        json!({"identity": "a\nb"}),
        json!({"identity": "x".repeat(2000)}),
        json!({"identity": WHO, "extra": 1}),
    ] {
        let r = c
            .post(&url)
            .bearer_auth(support::admin_token())
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.expect("json");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("invalid_")),
            "{v}"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn with_no_server_the_cli_erases_the_files() {
    let bin = Binary::new();
    {
        let served = bin.serve(&[]);
        for body in [
            support::room_started("lobby", "RM_lobby"),
            support::participant_joined("lobby", "RM_lobby", "PA_alice", WHO, NAME),
        ] {
            assert_eq!(support::deliver(&served.url, &body).await, 200);
        }
        let mut served = served;
        served.terminate();
    }
    // Nothing listens at this address: the CLI works on the files.
    let url = "http://127.0.0.1:9";
    let (code, _, err) = run(&bin, &["subject", "erase", "--identity", "", "--url", url]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("invalid identity"), "{err}");
    let (code, _, _) = run(&bin, &["subject", "erase"]);
    assert_eq!(code, 2, "bad usage");
    let (code, out, err) = run(
        &bin,
        &["subject", "export", "--identity", WHO, "--url", url],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("working on the files"), "{err}");
    let export: Value = serde_json::from_str(&out).expect("json");
    let hash = export["identity_hash"].as_str().expect("hash").to_owned();
    assert_eq!(
        export["room_state"].as_array().map(Vec::len),
        Some(1),
        "{export}"
    );
    let (code, _, err) = run(&bin, &["subject", "erase", "--identity", WHO, "--url", url]);
    assert_eq!(code, 0, "{err}");
    for needle in [hash.as_str(), NAME] {
        let found = files_containing(bin.dir.path(), needle);
        assert!(found.is_empty(), "{needle} still in {found:?}");
    }
    let (code, out, err) = run(&bin, &["audit", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    // The server starts again on the erased files and shows nothing of the subject.
    let served = bin.serve(&[]);
    let (_, snap) = snapshot(&served.url).await;
    assert!(!snap.to_string().contains(&hash), "{snap}");
}

/// Delivers a webhook signed at the manual clock's time.
async fn deliver_at(base: &str, body: &[u8], clock: &warden::clock::Clock) -> u16 {
    let t = clock.now_ms() / 1000;
    let claims = json!({"iss": support::KEY, "nbf": t, "iat": t, "exp": t + 300, "sha256": support::body_hash(body)});
    let sig = support::hs256(&claims, support::SECRET);
    support::deliver_signed(&support::client(), base, body, &sig).await
}

#[tokio::test]
async fn the_retention_sweep_drops_old_history_and_old_log_files_by_the_clock() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_millis() as i64;
    let clock = warden::clock::Clock::manual(now);
    let srv = support::spawn_clocked(
        "realtime: {history_retention_hours: 1}\nlogging: {security_log_retention_days: 2}",
        &[],
        clock.clone(),
    )
    .await;
    let (start_id, _) = snapshot(&srv.url).await;
    for body in [
        support::room_started("lobby", "RM_lobby"),
        support::participant_joined("lobby", "RM_lobby", "PA_alice", WHO, NAME),
    ] {
        assert_eq!(support::deliver(&srv.url, &body).await, 200);
    }
    clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(
        deliver_at(
            &srv.url,
            &support::participant_joined("lobby", "RM_lobby", "PA_bob", OTHER, "Bob"),
            &clock
        )
        .await,
        200
    );
    let logs = srv.dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    let today = warden::clock::rfc3339_ms(now)[..10].to_owned();
    let old = logs.join("security.log.2000-01-01");
    let recent = logs.join(format!("security.log.{today}.1"));
    std::fs::write(&old, "{}\n").expect("old file");
    std::fs::write(&recent, "{}\n").expect("recent file");
    let rows = || -> i64 {
        srv.state
            .store
            .with(|c| c.query_row("SELECT count(*) FROM hub_history", [], |r| r.get(0)))
            .expect("count")
    };
    assert_eq!(rows(), 3);
    // Nothing is an hour old yet.
    let swept = warden::subject::sweep_retention(&srv.state)
        .await
        .expect("sweep");
    assert_eq!(swept.history_frames, 0);
    assert_eq!(swept.security_log_files, 1, "the 2000-01-01 file");
    assert!(!old.exists() && recent.exists());
    // 75 minutes after the first two events, 45 after the third.
    clock.advance(Duration::from_secs(45 * 60));
    let swept = warden::subject::sweep_retention(&srv.state)
        .await
        .expect("sweep");
    assert_eq!(swept.history_frames, 2);
    assert_eq!(rows(), 1);
    // A client resuming from before the expired events is reset, not replayed them.
    let mut sse = Sse::open(
        &format!("{}/api/events", srv.url),
        // Valid at the manual clock, 75 minutes ahead.
        Some(&support::access_token(
            support::KEY,
            support::SECRET,
            "dash",
            json!({"roomList": true}),
            4 * 3600,
        )),
        &[("last-event-id", &start_id)],
    )
    .await;
    assert_eq!(sse.status, 200, "{}", sse.body);
    let first = sse.next(WAIT).await.expect("first event");
    assert_eq!(first.event, "reset", "{first:?}");
    let replayed = sse.drain(Duration::from_millis(500)).await;
    assert!(
        replayed.iter().all(|e| e.event != "room_started"),
        "{replayed:?}"
    );
    srv.stop().await;
}

async fn eventually_snapshot_has(base: &str, what: &str) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if snapshot(base).await.1.to_string().contains(what) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn with_the_redis_backend_the_shared_stream_is_rewritten_too() {
    let redis = crate::cluster::server::RedisServer::start();
    let yaml = format!(
        "storage: {{backend: redis, redis_url: \"{}\"}}\n",
        redis.url()
    );
    let a = support::spawn_with(&yaml, &[]).await;
    let (start_id, _) = snapshot(&a.url).await;
    for body in [
        support::room_started("lobby", "RM_lobby"),
        support::participant_joined("lobby", "RM_lobby", "PA_alice", WHO, NAME),
        support::participant_joined("lobby", "RM_lobby", "PA_bob", OTHER, "Bob"),
    ] {
        assert_eq!(support::deliver(&a.url, &body).await, 200);
    }
    assert!(eventually_snapshot_has(&a.url, "Bob").await);
    let stream = || async {
        let client = redis::Client::open(redis.url()).expect("client");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let v: redis::Value = redis::cmd("XRANGE")
            .arg("{warden}:events")
            .arg("-")
            .arg("+")
            .query_async(&mut conn)
            .await
            .expect("xrange");
        format!("{v:?}")
    };
    assert!(
        stream().await.contains(NAME),
        "the stream holds the name before"
    );
    let resp = support::client()
        .post(format!("{}/api/security/subjects/erase", a.url))
        .bearer_auth(support::admin_token())
        .json(&json!({"identity": WHO}))
        .send()
        .await
        .expect("erase");
    assert_eq!(resp.status(), 200);
    let erased: Value = resp.json().await.expect("json");
    let hash = a.state.pepper.hash_identity(WHO);
    assert_eq!(erased["erased"]["redis_stream_entries"], 1, "{erased}");
    let after = stream().await;
    assert!(!after.contains(NAME) && !after.contains(&hash), "{after}");
    assert!(after.contains("Bob"), "others are kept: {after}");
    for needle in [hash.as_str(), NAME] {
        let found = files_containing(a.dir.path(), needle);
        assert!(found.is_empty(), "{needle} still in {found:?}");
    }
    // A node started now loads the rewritten history; the stream still flows.
    let b = support::spawn_with(&yaml, &[]).await;
    assert_eq!(
        support::deliver(
            &a.url,
            &support::participant_joined(
                "lobby",
                "RM_lobby",
                "PA_carol",
                "carol.after@example.com",
                "Carol"
            )
        )
        .await,
        200
    );
    assert!(eventually_snapshot_has(&b.url, "Carol").await);
    assert!(eventually_snapshot_has(&a.url, "Carol").await);
    for node in [&a, &b] {
        let mut sse = Sse::open(
            &format!("{}/api/events", node.url),
            Some(&support::list_token()),
            &[("last-event-id", &start_id)],
        )
        .await;
        assert_eq!(sse.status, 200, "{}", sse.body);
        let replayed = sse.drain(Duration::from_secs(1)).await;
        assert!(
            replayed.iter().any(|e| e.data.contains("Bob")),
            "{replayed:?}"
        );
        for e in &replayed {
            assert!(
                !e.data.contains(&hash) && !e.data.contains(NAME),
                "{}",
                e.data
            );
        }
    }
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn an_unwritable_audit_store_refuses_the_erasure_and_erases_nothing() {
    let srv = support::spawn("").await;
    for body in [
        support::room_started("lobby", "RM_lobby"),
        support::participant_joined("lobby", "RM_lobby", "PA_alice", WHO, NAME),
    ] {
        assert_eq!(support::deliver(&srv.url, &body).await, 200);
    }
    srv.state
        .audit
        .store()
        .with(|c| c.execute_batch("PRAGMA query_only = ON;"))
        .expect("read-only audit connection");
    let resp = support::client()
        .post(format!("{}/api/security/subjects/erase", srv.url))
        .bearer_auth(support::admin_token())
        .json(&json!({"identity": WHO}))
        .send()
        .await
        .expect("erase");
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["error"], "audit_unavailable", "{v}");
    // Nothing was erased: the room state and the history still hold the subject.
    assert!(snapshot(&srv.url).await.1.to_string().contains(NAME));
    let frames: i64 = srv
        .state
        .store
        .with(|c| {
            c.query_row(
                "SELECT count(*) FROM hub_history WHERE instr(frame, ?1) > 0",
                [NAME],
                |r| r.get(0),
            )
        })
        .expect("count");
    assert_eq!(frames, 1);
    srv.stop().await;
}
