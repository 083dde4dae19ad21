//! `Ingest::accept` on one node, on a manual clock: dedupe, replays, the
//! kill switch, lockouts and the order of the checks.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::audit::EventType;
use crate::config::Config;
use crate::guard::RefusalKind;
use crate::hub::{Hub, HubSettings};
use crate::keys::KeyRing;
use crate::pepper::Pepper;
use crate::redact::Secret;
use crate::webhook::{ReceiverSettings, ReplayStore};

const KEY: &str = "APItestKey2345";
const SECRET: &str = "Xk3vP9qLmT2wR7yB4nH6jD8fG5sA1cZ0eU3iO7pQ2rW";
const T0: i64 = 1_700_000_000_000;

struct H {
    ingest: Ingest,
    hub: Hub,
    replay: ReplayStore,
    audit: Audit,
    clock: Clock,
}

fn harness() -> H {
    let cfg = Config::defaults();
    let (audit, clock) = (Audit::in_memory(), Clock::manual(T0));
    let keys = KeyRing::from_keys([(KEY.to_owned(), Secret::new(SECRET))]);
    let receiver = Receiver::new(
        keys,
        Pepper::new("0123456789abcdef0123456789abcdef"),
        audit.clone(),
        clock.clone(),
        ReceiverSettings::from_config(&cfg),
    );
    let hub = Hub::new(HubSettings::from_config(&cfg));
    let replay = ReplayStore::memory(1000);
    let ingest = Ingest::new(Parts {
        guard: Guard::new(&cfg, clock.clone(), audit.clone()),
        receiver,
        publisher: Publisher::Local {
            hub: hub.clone(),
            replay: replay.clone(),
        },
        audit: audit.clone(),
        metrics: Metrics::new(),
        clock: clock.clone(),
    });
    H {
        ingest,
        hub,
        replay,
        audit,
        clock,
    }
}

fn ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
}

fn sign(body: &[u8]) -> String {
    crate::webhook::verify::sign_as_livekit(body, KEY, SECRET, T0 / 1000).expect("sign")
}

fn joined(id: &str, name: &str) -> Vec<u8> {
    json!({"event": "participant_joined", "id": id, "createdAt": "1700000000",
        "room": {"sid": "RM_abc", "name": "demo"},
        "participant": {"sid": "PA_xyz", "identity": "alice@example.com", "name": name, "state": "ACTIVE"}})
    .to_string()
    .into_bytes()
}

async fn accept(h: &H, auth: &[&str], body: &[u8]) -> Result<Accepted, IngestError> {
    let body = Bytes::copy_from_slice(body);
    h.ingest.accept(ip(), auth, async { Ok(body) }).await
}

async fn signed(h: &H, body: &[u8]) -> Result<Accepted, IngestError> {
    accept(h, &[&sign(body)], body).await
}

#[tokio::test]
async fn duplicates_are_acknowledged_once_and_replays_recorded() {
    let h = harness();
    let body = joined("EV_dup", "Alice");
    assert_eq!(signed(&h, &body).await.expect("new"), Accepted::Accepted);
    assert_eq!(h.hub.stats().published, 1);
    h.clock.advance(Duration::from_secs(5));
    assert_eq!(signed(&h, &body).await.expect("retry"), Accepted::Duplicate);
    assert!(h.audit.recent().is_empty(), "a retry is not a replay");
    let other = joined("EV_dup", "Mallory");
    assert_eq!(
        signed(&h, &other).await.expect("replay"),
        Accepted::Duplicate
    );
    let ev = h.audit.recent().pop().expect("replay recorded");
    assert_eq!(ev.kind, EventType::WebhookReplay);
    assert_eq!(
        ev.details.get("event_id").and_then(|v| v.as_str()),
        Some("EV_dup")
    );
    assert_eq!(ev.source_ip, Some(ip()));
    assert_eq!(h.hub.stats().published, 1, "broadcast once");
}

#[tokio::test]
async fn ids_that_differ_only_in_a_dropped_character_are_two_events() {
    let h = harness();
    signed(&h, &joined("EV_twin", "A")).await.expect("first");
    for twin in ["EV_twin\u{200B}", "EV_t.win", "EV_twin<b>"] {
        let body = joined(twin, "A");
        assert_eq!(
            signed(&h, &body).await.expect("new"),
            Accepted::Accepted,
            "{twin:?} was merged with EV_twin"
        );
        assert_eq!(
            signed(&h, &body).await.expect("retry"),
            Accepted::Duplicate,
            "each is still deduplicated on its own id"
        );
    }
    assert!(
        h.audit.recent().is_empty(),
        "no replay recorded: {:?}",
        h.audit.recent()
    );
    assert_eq!(h.hub.stats().published, 4);
}

#[tokio::test]
async fn unknown_events_are_ignored_and_not_remembered() {
    let h = harness();
    let body = br#"{"event":"room_teleported","id":"EV_tp","room":{"sid":"RM_a","name":"x"}}"#;
    for _ in 0..2 {
        assert_eq!(signed(&h, body).await.expect("ok"), Accepted::Ignored);
    }
    assert!(h.replay.is_empty());
    assert_eq!(h.hub.stats().published, 0);
}

#[tokio::test]
async fn a_paused_ingest_reads_no_body_and_publishes_nothing() {
    let h = harness();
    assert!(h.ingest.set_enabled(false), "was enabled");
    let body = joined("EV_paused", "A");
    let unread = h
        .ingest
        .accept(ip(), &[&sign(&body)], async { Err(BodyError::Unreadable) })
        .await;
    assert!(matches!(unread, Err(IngestError::Paused)), "{unread:?}");
    assert_eq!(IngestError::Paused.code(), "ingestion_paused");
    assert!(!h.ingest.set_enabled(true));
    assert_eq!(
        signed(&h, &body).await.expect("resumed"),
        Accepted::Accepted
    );
}

#[tokio::test]
async fn signature_failures_name_the_claimed_key_and_whether_one_was_presented() {
    let h = harness();
    let body = joined("EV_bad", "A");
    match accept(&h, &[], &body).await {
        Err(IngestError::Unauthorized {
            presented,
            claimed_key,
            ..
        }) => {
            assert_eq!((presented, claimed_key), (false, None));
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    let forged = crate::webhook::verify::sign_as_livekit(
        &body,
        KEY,
        "another-secret-of-enough-length-000",
        T0 / 1000,
    )
    .expect("sign");
    match accept(&h, &[&forged], &body).await {
        Err(IngestError::Unauthorized {
            presented,
            claimed_key,
            ..
        }) => {
            assert_eq!((presented, claimed_key.as_deref()), (true, Some(KEY)));
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    assert_eq!(h.hub.stats().published, 0);
}

#[tokio::test]
async fn a_locked_out_source_passes_only_with_a_verifying_signature() {
    let h = harness();
    let cfg = Config::defaults();
    for _ in 0..cfg.suspicious_activity.max_failed_attempts {
        h.ingest
            .inner
            .parts
            .guard
            .record_auth_failure(ip(), None, None);
    }
    let body = joined("EV_locked", "A");
    match accept(&h, &[], &body).await {
        Err(IngestError::LockedOut(r)) => assert_eq!(r.kind, RefusalKind::LockedOut),
        other => panic!("expected the lockout, got {other:?}"),
    }
    let too_large = h
        .ingest
        .accept(ip(), &[], async { Err(BodyError::TooLarge) })
        .await;
    assert!(
        matches!(too_large, Err(IngestError::LockedOut(_))),
        "{too_large:?}"
    );
    assert_eq!(
        signed(&h, &body).await.expect("verified"),
        Accepted::Accepted
    );
}
