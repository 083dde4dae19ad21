//! Personal-data erasure on the chain: it keeps verifying, a hand-made
//! erasure is found, and a version-1 chain migrates.

use super::*;

const WHO: &str = "a1b2c3d4";
const IP: &str = "198.51.100.77";

fn needles() -> Vec<String> {
    vec![WHO.to_owned()]
}

fn record_mix(audit: &Audit) {
    for i in 0..3 {
        audit.record(
            NewEvent::new(EventType::UnauthorizedAccess, Severity::Medium)
                .ip(IP.parse().expect("ip"))
                .identity(WHO)
                .detail("i", i),
        );
        audit.record(
            NewEvent::new(EventType::UnauthorizedAccess, Severity::Medium)
                .ip("192.0.2.5".parse().expect("ip"))
                .identity("ffffffff")
                .detail("i", i),
        );
    }
}

fn all_text(db: &Sqlite) -> String {
    db.with(|c| {
        let mut st =
            c.prepare("SELECT body || coalesce(personal, '') FROM audit_events ORDER BY seq")?;
        st.query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()
    })
    .expect("rows")
    .concat()
}

#[test]
fn erasure_keeps_the_chain_verifying_and_records_itself_without_the_identity() {
    let audit = Audit::in_memory();
    record_mix(&audit);
    let db = audit.store();
    assert_eq!(verify_chain(db).expect("intact").entries, 6);
    let before = audit.export_subject(&needles()).expect("export");
    assert_eq!(before.security_events.len(), 3);
    assert_eq!(
        before.security_events[0].event.source_ip,
        Some(IP.parse().expect("ip"))
    );
    let erased = audit
        .erase_subject(&needles(), Some("APIadmin".into()), "test")
        .expect("erase");
    assert_eq!(erased.audit_entries, 3);
    let report = verify_chain(db).expect("still intact after erasure");
    assert_eq!(report.entries, 7);
    let text = all_text(db);
    assert!(!text.contains(WHO) && !text.contains(IP), "{text}");
    assert!(text.contains("ffffffff"), "others are kept");
    assert!(
        audit
            .export_subject(&needles())
            .expect("export")
            .security_events
            .is_empty()
    );
    let last = audit.recent_events(1).expect("query").remove(0);
    assert_eq!(last.event.kind, EventType::SubjectErased);
    assert_eq!(last.event.identity, None);
    assert_eq!(
        last.event.details["entries"].as_array().map(Vec::len),
        Some(3)
    );
    assert!(
        audit
            .recent()
            .iter()
            .all(|e| e.identity.as_deref() != Some(WHO))
    );
}

#[test]
fn personal_fields_removed_or_changed_by_hand_are_found() {
    for case in ["unrecorded", "unflagged", "changed"] {
        let audit = Audit::in_memory();
        record_mix(&audit);
        let db = audit.store();
        let sql = match case {
            // Allowed by the trigger, but no SUBJECT_ERASED names it.
            "unrecorded" => {
                "UPDATE audit_events SET personal = NULL, erased = 1 WHERE seq = 3".to_owned()
            }
            "unflagged" => "UPDATE audit_events SET personal = NULL WHERE seq = 3".to_owned(),
            _ => format!(
                "UPDATE audit_events SET personal = replace(personal, '{WHO}', 'eeeeeeee') WHERE seq = 3"
            ),
        };
        if case != "unrecorded" {
            db.migrate("DROP TRIGGER audit_events_no_update;")
                .expect("drop guard");
        }
        db.with(|c| c.execute(&sql, [])).expect("tamper");
        let msg = verify_chain(db).expect_err("found").to_string();
        assert!(msg.contains("#3"), "{case}: {msg}");
        if case == "unrecorded" {
            assert!(msg.contains("without a recorded erasure"), "{msg}");
        } else {
            assert!(msg.contains("altered"), "{case}: {msg}");
        }
    }
}

#[test]
fn the_guard_refuses_any_other_update() {
    let audit = Audit::in_memory();
    record_mix(&audit);
    let res = audit.store().with(|c| {
        c.execute(
            "UPDATE audit_events SET hash = 'x', personal = NULL, erased = 1 WHERE seq = 1",
            [],
        )
    });
    assert!(res.is_err());
}

/// The schema and sealing of a chain written before erasure existed.
const V1_SCHEMA: &str = "
CREATE TABLE audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ts_ms INTEGER NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;";

#[tokio::test]
async fn a_version_1_chain_migrates_keeps_verifying_and_can_be_erased() {
    let fx = Fixture::new("v1");
    {
        let db = Sqlite::open(&fx.cfg.storage.path).expect("db");
        db.migrate(V1_SCHEMA).expect("old schema");
        let mut prev = chain::GENESIS.to_owned();
        for (i, who) in [WHO, "ffffffff", WHO].into_iter().enumerate() {
            let mut e = sample_event();
            e.id = format!("evt_v1_{i}");
            e.event.identity = Some(who.into());
            e.event.source_ip = Some(IP.parse().expect("ip"));
            e.prev_hash = prev.clone();
            chain::seal(&mut e);
            db.with(|c| {
                c.execute(
                    "INSERT INTO audit_events (id, ts_ms, type, body, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![e.id, crate::clock::parse_rfc3339_ms(&e.timestamp), e.event.kind.as_str(), chain::hashed_body(&e), e.hash],
                )
            })
            .expect("insert v1");
            prev = e.hash.clone();
        }
    }
    let audit = fx.open();
    let db = audit.store();
    assert_eq!(verify_chain(db).expect("v1 entries verify").entries, 3);
    audit.record(NewEvent::new(EventType::IpBlocked, Severity::Low).identity(WHO));
    audit.flush().await;
    assert_eq!(verify_chain(db).expect("v2 links onto v1").entries, 4);
    assert_eq!(
        audit
            .export_subject(&needles())
            .expect("export")
            .security_events
            .len(),
        3
    );
    let erased = audit
        .erase_subject(&needles(), None, "test")
        .expect("erase");
    assert_eq!(erased.audit_entries, 3);
    assert_eq!(verify_chain(db).expect("erased chain verifies").entries, 5);
    let text = all_text(db);
    assert!(!text.contains(WHO), "{text}");
    // A version-1 entry erased by hand (not named by a SUBJECT_ERASED) is found.
    db.with(|c| c.execute("UPDATE audit_events SET body = replace(body, 'ffffffff', 'eeeeeeee'), personal = NULL, erased = 1 WHERE seq = 2", []))
        .expect("tamper");
    let msg = verify_chain(db).expect_err("found").to_string();
    assert!(
        msg.contains("#2") && msg.contains("without a recorded erasure"),
        "{msg}"
    );
}

#[tokio::test]
async fn erasure_is_refused_on_an_unwritable_store_and_erases_nothing() {
    let audit = Audit::in_memory();
    record_mix(&audit);
    // A read-only store: every write fails.
    audit
        .store()
        .with(|c| c.execute_batch("PRAGMA query_only = ON;"))
        .expect("read-only");
    let err = audit
        .erase_subject(&needles(), None, "test")
        .expect_err("refused");
    assert!(matches!(err, AuditError::NotRecorded(_)), "{err}");
    audit
        .store()
        .with(|c| c.execute_batch("PRAGMA query_only = OFF;"))
        .expect("writable");
    assert_eq!(
        audit
            .export_subject(&needles())
            .expect("export")
            .security_events
            .len(),
        3
    );
    assert_eq!(verify_chain(audit.store()).expect("intact").entries, 6);
}
