use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::redact::Masker;
use crate::store::Sqlite;

const DAY_MS: i64 = 86_400_000;
const T0: i64 = 1_700_000_000_000;

/// An event with every field set, for the pure chain tests.
pub(crate) fn sample_event() -> StoredEvent {
    StoredEvent {
        id: "evt_1".into(),
        event: NewEvent {
            kind: EventType::WebhookReplay,
            severity: Severity::High,
            source_ip: Some("203.0.113.9".parse().expect("ip")),
            identity: Some("ab12cd34".into()),
            key_id: Some("APIabc".into()),
            details: serde_json::Map::from_iter([("n".to_owned(), json!(1))]),
        },
        timestamp: "2024-01-01T00:00:00.000Z".into(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

struct Fixture {
    dir: PathBuf,
    cfg: Config,
    clock: Clock,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("warden-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cfg = Config::defaults();
        cfg.storage.path = dir.join("data/warden.db");
        cfg.logging.security_log_file = dir.join("logs/security.log");
        Self {
            dir,
            cfg,
            clock: Clock::manual(T0),
        }
    }

    fn open(&self) -> Audit {
        let db = Sqlite::open(&self.cfg.storage.path).expect("db");
        Audit::open(
            &self.cfg,
            db,
            self.clock.clone(),
            Masker::new(),
            Metrics::new(),
        )
        .expect("audit")
        .0
    }

    fn log_lines(&self) -> Vec<Value> {
        read_lines(&self.cfg.logging.security_log_file)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every security log line is one JSON document"))
        .collect()
}

#[tokio::test]
async fn every_event_type_reaches_the_store_and_the_security_log_chained() {
    let fx = Fixture::new("types");
    let audit = fx.open();
    for (i, t) in EventType::ALL.into_iter().enumerate() {
        audit.record(
            NewEvent::new(t, Severity::Medium)
                .ip("198.51.100.7".parse().expect("ip"))
                .detail("n", i),
        );
    }
    audit.flush().await;
    let stored = audit.recent_events(100).expect("query");
    assert_eq!(stored.len(), EventType::ALL.len());
    let mut kinds: Vec<EventType> = stored.iter().map(|e| e.event.kind).collect();
    kinds.sort();
    assert_eq!(kinds, EventType::ALL.to_vec());
    // Newest first; the oldest links to genesis and each to the one before.
    let oldest = stored.last().expect("some");
    assert_eq!(oldest.prev_hash, chain::GENESIS);
    for pair in stored.windows(2) {
        assert_eq!(pair[0].prev_hash, pair[1].hash);
    }
    let report = verify_chain(audit.store()).expect("intact");
    assert_eq!(report.entries, EventType::ALL.len() as u64);
    assert_eq!(report.head, stored[0].hash);

    let lines = fx.log_lines();
    assert_eq!(lines.len(), EventType::ALL.len());
    let first = &lines[0];
    for field in [
        "id",
        "type",
        "severity",
        "source_ip",
        "identity",
        "key_id",
        "details",
        "timestamp",
        "prev_hash",
        "hash",
    ] {
        assert!(first.get(field).is_some(), "{field} missing from {first}");
    }
    assert_eq!(first["type"], "SUSPICIOUS_LOGIN");
    assert_eq!(
        crate::clock::parse_rfc3339_ms(first["timestamp"].as_str().expect("string")),
        Some(T0)
    );
    assert_eq!(first["hash"], json!(oldest.hash));
}

#[tokio::test]
async fn hostile_strings_stay_values_and_secrets_are_masked() {
    let fx = Fixture::new("hostile");
    let audit = fx.open();
    let forged = "room\r\n{\"type\":\"FORGED\"}\u{1b}[2J";
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl";
    audit.record(
        NewEvent::new(EventType::UnauthorizedAccess, Severity::Low)
            .detail("room", forged)
            .detail("header", format!("Bearer {jwt}"))
            .detail("api_secret", "plain-looking-value"),
    );
    audit.flush().await;
    let raw = std::fs::read_to_string(&fx.cfg.logging.security_log_file).expect("log");
    assert_eq!(raw.lines().count(), 1, "{raw:?}");
    assert!(!raw.contains('\u{1b}') && !raw.contains('\r'));
    assert!(
        !raw.contains(jwt) && !raw.contains("plain-looking-value"),
        "{raw}"
    );
    let line = &fx.log_lines()[0];
    assert_eq!(
        line["details"]["room"], forged,
        "the hostile value survives intact as a JSON value"
    );
    let stored = audit.recent_events(1).expect("query");
    assert_eq!(stored[0].event.details["room"], forged);
    assert!(!serde_json::to_string(&stored).expect("json").contains(jwt));
}

fn break_of(db: &Sqlite) -> String {
    verify_chain(db)
        .expect_err("tampering must be found")
        .to_string()
}

fn ids(db: &Sqlite) -> Vec<(i64, String)> {
    db.with(|c| {
        let mut st = c.prepare("SELECT seq, id FROM audit_events ORDER BY seq")?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
    })
    .expect("ids")
}

#[test]
fn verification_finds_an_edited_a_deleted_and_an_inserted_entry() {
    for case in ["edit", "delete", "insert", "retype"] {
        let audit = Audit::in_memory();
        for i in 0..5 {
            audit.record(NewEvent::new(EventType::RateLimitExceeded, Severity::Low).detail("i", i));
        }
        let db = audit.store();
        assert_eq!(verify_chain(db).expect("intact").entries, 5);
        let rows = ids(db);
        db.migrate("DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;")
            .expect("drop guards");
        let (seq, id) = rows[2].clone();
        match case {
            "edit" => db.with(|c| c.execute("UPDATE audit_events SET body = replace(body, '\"i\":2', '\"i\":7') WHERE seq = ?1", [seq])),
            "retype" => db.with(|c| c.execute("UPDATE audit_events SET type = 'KEY_ROTATION' WHERE seq = ?1", [seq])),
            "delete" => db.with(|c| c.execute("DELETE FROM audit_events WHERE seq = ?1", [seq])),
            _ => db.with(|c| {
                // A well-formed, correctly sealed entry slipped in after #2.
                let (body, hash): (String, String) =
                    c.query_row("SELECT body, hash FROM audit_events WHERE seq = 2", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
                let mut fake: StoredEvent = serde_json::from_str(&body).expect("body");
                fake.id = "evt_forged".into();
                fake.prev_hash = hash;
                chain::seal(&mut fake);
                c.execute("UPDATE audit_events SET seq = seq + 100 WHERE seq > 2", [])?;
                c.execute(
                    "INSERT INTO audit_events (seq, id, ts_ms, type, body, hash) VALUES (3, 'evt_forged', ?1, ?2, ?3, ?4)",
                    rusqlite::params![crate::clock::parse_rfc3339_ms(&fake.timestamp), fake.event.kind.as_str(), chain::hashed_body(&fake), fake.hash],
                )
            }),
        }
        .expect("tamper");
        let msg = break_of(db);
        match case {
            "edit" | "retype" => assert!(
                msg.contains(&id) && msg.contains("altered") && msg.contains("#3"),
                "{case}: {msg}"
            ),
            "delete" => {
                let (next_seq, next_id) = &rows[3];
                assert!(
                    msg.contains(next_id.as_str()) && msg.contains(&format!("#{next_seq}")),
                    "{case}: {msg}"
                );
                assert!(msg.contains("deleted"), "{msg}");
            }
            _ => assert!(
                msg.contains(&format!("#{}", rows[2].0 + 100)) && msg.contains("inserted"),
                "{case}: {msg}"
            ),
        }
    }
}

#[tokio::test]
async fn retention_keeps_day_89_drops_day_91_and_the_rest_still_verifies() {
    let fx = Fixture::new("retention");
    let audit = fx.open();
    audit.record(NewEvent::new(EventType::KeyRotation, Severity::Low).detail("day", 0));
    fx.clock.set_ms(T0 + 2 * DAY_MS);
    audit.record(NewEvent::new(EventType::KeyRotation, Severity::Low).detail("day", 2));
    audit.flush().await;
    fx.clock.set_ms(T0 + 91 * DAY_MS);
    // Day 0 is now 91 days old, day 2 is 89 days old.
    assert_eq!(audit.purge(fx.clock.now_ms()).expect("purge"), 1);
    let left = audit.recent_events(10).expect("query");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event.details["day"], 2);
    let report = verify_chain(audit.store()).expect("still verifies from the anchor");
    assert_eq!((report.entries, report.purged), (1, 1));
    // New entries keep chaining after a purge, and a purge with nothing due does nothing.
    audit.record(NewEvent::new(EventType::KeyRotation, Severity::Low).detail("day", 91));
    audit.flush().await;
    assert_eq!(audit.purge(fx.clock.now_ms()).expect("purge"), 0);
    assert_eq!(verify_chain(audit.store()).expect("intact").entries, 2);
    // Deleting the anchor is caught: the first entry no longer links.
    audit
        .store()
        .migrate("DELETE FROM audit_anchor")
        .expect("tamper");
    assert!(break_of(audit.store()).contains(&left[0].id));
}

#[tokio::test]
async fn a_store_that_cannot_write_refuses_durable_records_but_record_goes_on() {
    let fx = Fixture::new("readonly");
    let audit = fx.open();
    audit.record(NewEvent::new(EventType::IpBlocked, Severity::Low));
    audit.flush().await;
    audit
        .store()
        .migrate("PRAGMA query_only = ON")
        .expect("read-only");
    let err = audit
        .record_durable(NewEvent::new(EventType::KeyRotation, Severity::Medium).key("APIx"))
        .await
        .expect_err("must fail closed");
    assert!(matches!(err, AuditError::NotRecorded(_)), "{err:?}");
    assert!(
        err.to_string().contains("refused") && err.to_string().contains("readonly"),
        "{err}"
    );
    audit.record(NewEvent::new(EventType::RateLimitExceeded, Severity::Low));
    audit.flush().await;
    let health = audit.health();
    assert!(
        !health.writable && health.last_error.is_some(),
        "{health:?}"
    );
    // The security log still has every event, unchained while the store failed.
    assert_eq!(fx.log_lines().len(), 3);
    audit
        .store()
        .migrate("PRAGMA query_only = OFF")
        .expect("writable");
    audit
        .record_durable(NewEvent::new(EventType::KeyRotation, Severity::Medium))
        .await
        .expect("writes again");
    assert!(audit.health().writable);
    assert_eq!(verify_chain(audit.store()).expect("intact").entries, 2);
}

#[test]
fn two_processes_appending_at_once_keep_one_chain() {
    let fx = Fixture::new("multi");
    let a = fx.open();
    let b = fx.open();
    let handles: Vec<_> = [a, b]
        .into_iter()
        .map(|audit| {
            std::thread::spawn(move || {
                for i in 0..40 {
                    audit
                        .record_durable_blocking(
                            NewEvent::new(EventType::KeyRotation, Severity::Low).detail("i", i),
                        )
                        .expect("append");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("writer thread");
    }
    let db = Sqlite::open(&fx.cfg.storage.path).expect("db");
    assert_eq!(verify_chain(&db).expect("one unforked chain").entries, 80);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let fx = Fixture::new("drops");
    let audit = fx.open();
    let blocker = rusqlite::Connection::open(&fx.cfg.storage.path).expect("second connection");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("hold the write lock");
    let started = std::time::Instant::now();
    for _ in 0..5000 {
        audit.record(NewEvent::new(EventType::RateLimitExceeded, Severity::Low));
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "record must not wait on the store"
    );
    assert!(
        audit.metrics().audit_dropped_count() >= 5000 - 4097,
        "{}",
        audit.metrics().audit_dropped_count()
    );
    blocker.execute_batch("COMMIT").expect("release");
    audit.flush().await;
    assert!(verify_chain(audit.store()).is_ok());
}

#[test]
fn queries_filter_page_and_count() {
    let audit = Audit::in_memory();
    for i in 0..5 {
        audit.record(NewEvent::new(EventType::IpBlocked, Severity::Low).detail("i", i));
        audit.record(NewEvent::new(EventType::WebhookReplay, Severity::High).detail("i", i));
    }
    let first = audit
        .query(Some(EventType::IpBlocked), None, 2, None)
        .expect("page 1");
    assert_eq!(first.events.len(), 2);
    assert!(
        first
            .events
            .iter()
            .all(|e| e.event.kind == EventType::IpBlocked)
    );
    assert_eq!(first.events[0].event.details["i"], 4);
    let second = audit
        .query(Some(EventType::IpBlocked), None, 2, first.next.clone())
        .expect("page 2");
    assert_eq!(second.events[0].event.details["i"], 2);
    let last = audit
        .query(Some(EventType::IpBlocked), None, 2, second.next)
        .expect("page 3");
    assert_eq!((last.events.len(), last.next), (1, None));
    let now = Clock::system().now_ms();
    assert!(
        audit
            .query(None, Some(now + 60_000), 10, None)
            .expect("future")
            .events
            .is_empty()
    );
    let counts = audit.counts(now).expect("counts");
    assert_eq!(counts.last_hour["IP_BLOCKED"], 5);
    assert_eq!(counts.last_day["WEBHOOK_REPLAY"], 5);
    assert_eq!(counts.last_hour["KEY_ROTATION"], 0);
    assert_eq!(counts.last_hour.len(), EventType::ALL.len());
    assert_eq!(
        audit.counts(now + 2 * 3_600_000).expect("later").last_hour["IP_BLOCKED"],
        0
    );
    assert_eq!(audit.recent().len(), 10);
    assert!(audit.health().head_verified);
}

#[test]
fn event_type_and_severity_parse_their_spec_names() {
    for t in EventType::ALL {
        assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        assert_eq!(serde_json::to_value(t).expect("json"), json!(t.as_str()));
    }
    assert!("NOPE".parse::<EventType>().is_err());
    assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
    assert!(Severity::Critical > Severity::High);
}

mod erasure;
