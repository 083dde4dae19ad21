//! Audit: the CLI against a real store file, alerts against a real receiver.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use warden::audit::{self, AlertError, Audit, EventType, NewEvent, RetryPolicy, Severity};
use warden::clock::Clock;
use warden::config::Config;
use warden::metrics::Metrics;
use warden::redact::{Masker, Secret};
use warden::store::Sqlite;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("warden-it-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        Self(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config_in(dir: &Path) -> Config {
    let mut cfg = Config::defaults();
    cfg.storage.path = dir.join("data/warden.db");
    cfg.logging.security_log_file = dir.join("logs/security.log");
    cfg
}

/// Writes a config file for the binary that points at `dir`.
fn config_file(dir: &Path) -> PathBuf {
    let path = dir.join("security.yaml");
    let yaml = format!(
        "storage:\n  path: {}\nlogging:\n  security_log_file: {}\n",
        dir.join("data/warden.db").display(),
        dir.join("logs/security.log").display()
    );
    std::fs::write(&path, yaml).expect("config file");
    path
}

fn warden(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("LIVEKIT_SECURITY_CONFIG")
        .output()
        .expect("run warden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Records five events through the library, as the server would, and returns their `(seq, id)`.
async fn seed(dir: &Path) -> Vec<(i64, String)> {
    let cfg = config_in(dir);
    let db = Sqlite::open(&cfg.storage.path).expect("db");
    let (audit, _worker) =
        Audit::open(&cfg, db, Clock::system(), Masker::new(), Metrics::new()).expect("audit");
    for i in 0..5 {
        audit.record(NewEvent::new(EventType::UnauthorizedAccess, Severity::Low).detail("i", i));
    }
    audit.flush().await;
    let conn = rusqlite::Connection::open(&cfg.storage.path).expect("open");
    let mut st = conn
        .prepare("SELECT seq, id FROM audit_events ORDER BY seq")
        .expect("prepare");
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn tamper(dir: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("data/warden.db")).expect("open");
    // What someone editing the file would do first: drop the append-only guards.
    conn.execute_batch("DROP TRIGGER IF EXISTS audit_events_no_update; DROP TRIGGER IF EXISTS audit_events_no_delete;")
        .expect("drop triggers");
    conn.execute_batch(sql).expect("tamper");
}

#[tokio::test]
async fn audit_verify_exits_1_naming_an_edited_deleted_or_inserted_entry() {
    for case in ["edit", "delete", "insert"] {
        let dir = TempDir::new(case);
        let rows = seed(&dir.0).await;
        let cfg = config_file(&dir.0);
        let (code, out, err) = warden(&cfg, &["audit", "verify"]);
        assert_eq!(code, 0, "intact chain: {out} {err}");
        assert!(out.contains("5 entries"), "{out}");
        let (seq, id) = &rows[2];
        let (expected_seq, expected_id) = match case {
            "edit" => {
                tamper(
                    &dir.0,
                    &format!(
                        "UPDATE audit_events SET body = replace(body, '\"i\":2', '\"i\":9') WHERE seq = {seq}"
                    ),
                );
                (*seq, id.clone())
            }
            "delete" => {
                tamper(
                    &dir.0,
                    &format!("DELETE FROM audit_events WHERE seq = {seq}"),
                );
                rows[3].clone()
            }
            _ => {
                // A copy of entry 2 under a new id, inserted after it; the entry after it no longer links.
                tamper(
                    &dir.0,
                    &format!(
                        "UPDATE audit_events SET seq = seq + 100 WHERE seq >= {seq};
                         INSERT INTO audit_events (seq, id, ts_ms, type, body, hash)
                           SELECT {seq}, 'evt_inserted', ts_ms, type, body, hash FROM audit_events WHERE seq = {prev};",
                        prev = rows[1].0
                    ),
                );
                (*seq, "evt_inserted".to_owned())
            }
        };
        let (code, _, err) = warden(&cfg, &["audit", "verify"]);
        assert_eq!(code, 1, "{case}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(
            err.contains(&expected_id) && err.contains(&format!("#{expected_seq}")),
            "{case}: {err}"
        );
    }
}

#[tokio::test]
async fn audit_tail_prints_recent_events_as_json_lines() {
    let dir = TempDir::new("tail");
    let rows = seed(&dir.0).await;
    let (code, out, err) = warden(&config_file(&dir.0), &["audit", "tail", "-n", "2"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], rows[3].1.as_str());
    assert_eq!(lines[1]["id"], rows[4].1.as_str());
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    assert_eq!(lines[1]["type"], "UNAUTHORIZED_ACCESS");
}

#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut seen = r.seen.lock().expect("lock");
    seen.push((headers, body));
    // The first delivery fails: the sender must retry it.
    if seen.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn start_receiver() -> (SocketAddr, Receiver) {
    let r = Receiver::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, r)
}

fn signature_ok(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let key = B64
        .decode(secret.strip_prefix("whsec_").expect("whsec"))
        .expect("base64");
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{}.{}.", h("webhook-id"), h("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    h("webhook-signature").split(' ').any(|s| s == expected)
}

#[tokio::test]
async fn alerts_reach_a_local_receiver_signed_retried_and_deduplicated() {
    let dir = TempDir::new("alerts");
    let (addr, receiver) = start_receiver().await;
    let secret = format!("whsec_{}", B64.encode([7u8; 32]));
    let mut cfg = config_in(&dir.0);
    cfg.alerts.webhook_url = Some(format!("http://{addr}/hook"));
    cfg.alerts.signing_secret = Some(Secret::new(secret.clone()));
    cfg.alerts.allowed_private_targets = vec!["127.0.0.1/32".parse().expect("net")];
    cfg.access_validation.strict_mode = false;
    let db = Sqlite::open(&cfg.storage.path).expect("db");
    let (audit, worker) =
        Audit::open(&cfg, db, Clock::system(), Masker::new(), Metrics::new()).expect("audit");
    worker
        .alerter()
        .expect("alerts configured")
        .set_retry(RetryPolicy {
            tries: 4,
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        });
    tokio::spawn(worker.run(std::future::pending()));
    let a = "203.0.113.5".parse().expect("ip");
    for _ in 0..5 {
        audit.record(NewEvent::new(EventType::MultipleFailedAuth, Severity::High).ip(a));
    }
    audit.record(
        NewEvent::new(EventType::MultipleFailedAuth, Severity::Critical)
            .ip("203.0.113.6".parse().expect("ip")),
    );
    audit.record(NewEvent::new(EventType::RateLimitExceeded, Severity::Low).ip(a));
    audit.flush().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.seen.lock().expect("lock").len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = receiver.seen.lock().expect("lock").clone();
    // Burst from .5: one alert, delivered twice (500 then 200); .6: one more; the low event: none.
    assert_eq!(seen.len(), 3, "{seen:?}");
    let ids: Vec<String> = seen
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids[0], ids[1], "a retry keeps the webhook-id");
    assert_ne!(ids[1], ids[2]);
    for (headers, body) in &seen {
        assert!(
            signature_ok(&secret, headers, body),
            "bad signature: {headers:?}"
        );
        let v: serde_json::Value = serde_json::from_slice(body).expect("json body");
        assert_eq!(v["data"]["id"], headers["webhook-id"].to_str().expect("id"));
        assert_eq!(v["data"]["type"], "MULTIPLE_FAILED_AUTH");
    }
    assert!(!signature_ok(
        &format!("whsec_{}", B64.encode([8u8; 32])),
        &seen[0].0,
        &seen[0].1
    ));
    let status = audit.health().alerts.expect("alert status");
    assert_eq!((status.sent, status.failed, status.queued), (2, 0, 0));
    // A store that cannot write raises its own alert, even for a low-severity event.
    audit
        .store()
        .migrate("PRAGMA query_only = ON")
        .expect("read-only");
    audit.record(NewEvent::new(EventType::RateLimitExceeded, Severity::Low));
    audit.flush().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while receiver.seen.lock().expect("lock").len() < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (headers, body) = receiver
        .seen
        .lock()
        .expect("lock")
        .get(3)
        .cloned()
        .expect("store failure alert");
    assert!(signature_ok(&secret, &headers, &body));
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["type"], "audit.store_failure", "{v}");
    assert_eq!(v["data"]["severity"], "critical");
    let metrics = audit
        .metrics()
        .render(warden::metrics::Format::Text, &Default::default());
    assert!(
        metrics.contains("warden_alerts_total{outcome=\"deduplicated\"} 4"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_ssrf_rule_refuses_private_targets_by_default_and_loopback_in_strict_mode() {
    let dir = TempDir::new("ssrf");
    let mut cfg = config_in(&dir.0);
    for url in [
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest",
        "https://[fd00::1]/x",
        "https://100.64.1.1/",
    ] {
        let err = audit::validate_alert_url(url, &cfg).expect_err(url);
        assert!(matches!(err, AlertError::Forbidden { .. }), "{url}: {err}");
        assert!(err.to_string().contains("allowed_private_targets"), "{err}");
    }
    cfg.alerts.webhook_url = Some("https://192.168.1.10/hook".into());
    let db = Sqlite::open(&cfg.storage.path).expect("db");
    let err = Audit::open(
        &cfg,
        db.clone(),
        Clock::system(),
        Masker::new(),
        Metrics::new(),
    )
    .expect_err("refused at start");
    assert!(err.to_string().contains("private"), "{err}");
    // Loopback over http, even when listed, needs strict_mode: false.
    cfg.alerts.allowed_private_targets = vec!["127.0.0.1/32".parse().expect("net")];
    cfg.alerts.webhook_url = Some("http://127.0.0.1:9/hook".into());
    let err = Audit::open(
        &cfg,
        db.clone(),
        Clock::system(),
        Masker::new(),
        Metrics::new(),
    )
    .expect_err("strict mode");
    assert!(err.to_string().contains("strict_mode"), "{err}");
    // A name is checked when it resolves: localhost is loopback, not listed for ::1 or 127.0.0.1 here.
    cfg.alerts.allowed_private_targets.clear();
    cfg.alerts.webhook_url = Some("https://localhost:9/hook".into());
    let (audit, worker) = Audit::open(&cfg, db, Clock::system(), Masker::new(), Metrics::new())
        .expect("names pass until resolved");
    tokio::spawn(worker.run(std::future::pending()));
    audit.record(NewEvent::new(EventType::IpBlocked, Severity::Critical));
    audit.flush().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let st = audit.health().alerts.expect("status");
        if st.failed == 1 {
            assert!(
                st.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("loopback")),
                "{st:?}"
            );
            assert_eq!(st.sent, 0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not refused: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
