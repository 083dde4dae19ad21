//! Adversarial tests of `Receiver::receive` on a manual clock.

mod decoding;
mod props;
mod signature;

use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use super::*;
use crate::redact::Secret;

pub(super) const KEY: &str = "APItestKey2345";
pub(super) const SECRET: &str = "Xk3vP9qLmT2wR7yB4nH6jD8fG5sA1cZ0eU3iO7pQ2rW";
pub(super) const T0: i64 = 1_700_000_000_000;
pub(super) const PEPPER: &str = "0123456789abcdef0123456789abcdef";

pub(super) struct H {
    pub rx: Receiver,
    pub audit: Audit,
    pub clock: Clock,
}

pub(super) fn settings() -> ReceiverSettings {
    ReceiverSettings::from_config(&Config::defaults())
}

pub(super) fn harness_with(settings: ReceiverSettings, keys: KeyRing) -> H {
    let (audit, clock) = (Audit::in_memory(), Clock::manual(T0));
    let rx = Receiver::new(
        keys,
        Pepper::new(PEPPER),
        audit.clone(),
        clock.clone(),
        settings,
    );
    H { rx, audit, clock }
}

pub(super) fn harness() -> H {
    harness_with(
        settings(),
        KeyRing::from_keys([(KEY.to_owned(), Secret::new(SECRET))]),
    )
}

pub(super) fn ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))
}

/// Signed as livekit-server signs, at the harness time.
pub(super) fn sign(body: &[u8]) -> String {
    verify::sign_as_livekit(body, KEY, SECRET, T0 / 1000).expect("sign")
}

/// A token with exactly these claims.
/// A token with exactly these claims, signed with the HMAC `alg` names.
pub(super) fn token(claims: &serde_json::Value, alg: &str, secret: &str) -> String {
    crate::token::jws::hmac_token(alg, claims, secret.as_bytes())
}

pub(super) fn claims(body: &[u8]) -> serde_json::Value {
    let now = T0 / 1000;
    json!({"iss": KEY, "exp": now + 300, "nbf": now, "iat": now, "sha256": verify::body_checksum(body)})
}

pub(super) fn joined(id: &str) -> Vec<u8> {
    json!({"event": "participant_joined", "id": id, "createdAt": "1700000000",
        "room": {"sid": "RM_abc", "name": "demo", "creationTime": "1699999000", "turnPassword": "TURNsecret123",
                 "metadata": "{\"secret\":\"room-meta\"}", "numParticipants": 1},
        "participant": {"sid": "PA_xyz", "identity": "alice@example.com", "name": "Alice", "state": "ACTIVE",
                        "joinedAt": "1699999990", "metadata": "participant-meta-blob",
                        "attributes": {"role": "attr-value"}}})
    .to_string()
    .into_bytes()
}

pub(super) fn receive(h: &H, auth: &[&str], body: &[u8]) -> Result<Outcome, WebhookError> {
    h.rx.receive(ip(), auth, body)
}

pub(super) fn refused_with(h: &H, auth: &[&str], body: &[u8], want: SignatureError) {
    match receive(h, auth, body) {
        Err(WebhookError::Signature(got)) => assert_eq!(got, want),
        other => panic!("expected {want:?}, got {other:?}"),
    }
    let last = h.audit.recent().pop().expect("refusal recorded");
    assert_eq!(last.kind, EventType::WebhookInvalidSignature);
    assert_eq!(last.source_ip, Some(ip()));
    assert_eq!(
        last.details.get("reason").and_then(|v| v.as_str()),
        Some(want.reason())
    );
    let recorded = serde_json::to_string(&last).expect("json");
    for a in auth {
        if a.len() > 20 {
            assert!(
                !recorded.contains(a.trim_start_matches("Bearer ")),
                "token in audit event"
            );
        }
    }
    assert!(!recorded.contains(SECRET));
}

pub(super) fn broadcast(r: Result<Outcome, WebhookError>) -> Event {
    match r {
        Ok(Outcome::Event(e, _)) => e,
        other => panic!("expected a broadcast, got {other:?}"),
    }
}

#[test]
fn livekit_signed_delivery_is_broadcast_minimised() {
    let h = harness();
    let body = joined("EV_first");
    let e = broadcast(receive(&h, &[&sign(&body)], &body));
    assert_eq!(
        (e.id.as_str(), e.event.as_str(), e.created_at_ms),
        ("EV_first", "participant_joined", T0)
    );
    assert_eq!(e.room_key.as_deref(), Some("demo"));
    let p = e.data.participant.as_ref().expect("participant");
    assert_eq!(
        p.identity,
        Pepper::new(PEPPER).hash_identity("alice@example.com")
    );
    assert_eq!(
        (p.sid.as_str(), p.name.as_str(), p.state, p.joined_at),
        ("PA_xyz", "Alice", "active", Some(1_699_999_990))
    );
    let r = e.data.room.as_ref().expect("room");
    assert_eq!(
        (r.sid.as_str(), r.name.as_str(), r.num_participants),
        ("RM_abc", "demo", Some(1))
    );
    let wire = serde_json::to_string(&e).expect("json");
    for leak in [
        "TURNsecret123",
        "room-meta",
        "participant-meta-blob",
        "attr-value",
        "alice@example.com",
        "turn",
    ] {
        assert!(!wire.contains(leak), "{leak} leaked into {wire}");
    }
    assert!(h.audit.recent().is_empty());
}

#[test]
fn body_refusals_have_their_status_and_code() {
    let h = harness();
    let deep = format!(
        "{{\"event\":\"room_started\",\"x\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (deep.into_bytes(), 400, "malformed_body"),
        (
            b"{\"event\":\"room_started\",\"room\":{\"name\":\"\xff\"}}".to_vec(),
            400,
            "malformed_body",
        ),
        (b"not json".to_vec(), 400, "malformed_body"),
        (
            b"{\"event\":\"room_started\",\"room\":{\"name\":\"x\"".to_vec(),
            400,
            "malformed_body",
        ),
        (
            b"{\"event\":\"room_started\",\"room\":{}} trailing".to_vec(),
            400,
            "malformed_body",
        ),
        (b"[]".to_vec(), 400, "invalid_event"),
        (b"\"room_started\"".to_vec(), 400, "invalid_event"),
        (
            b"{\"room\":{\"name\":\"x\"}}".to_vec(),
            400,
            "invalid_event",
        ),
        (
            b"{\"event\":\"room_started\",\"room\":\"x\"}".to_vec(),
            400,
            "invalid_event",
        ),
        (
            b"{\"event\":\"room_started\",\"room\":null}".to_vec(),
            400,
            "invalid_event",
        ),
        (
            b"{\"event\":\"participant_joined\",\"room\":{\"name\":\"x\"}}".to_vec(),
            400,
            "invalid_event",
        ),
        (
            b"{\"event\":\"participant_joined\",\"room\":{},\"participant\":[]}".to_vec(),
            400,
            "invalid_event",
        ),
        (
            b"{\"event\":\"track_published\",\"room\":{},\"participant\":{}}".to_vec(),
            400,
            "invalid_event",
        ),
        (
            b"{\"event\":\"egress_ended\",\"room\":{}}".to_vec(),
            400,
            "invalid_event",
        ),
        (b"{\"event\":42}".to_vec(), 400, "invalid_event"),
    ];
    for (body, status, code) in cases {
        let err = receive(&h, &[&sign(&body)], &body).expect_err("refused");
        let shown = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        assert_eq!(
            (err.is_bad_body(), err.code()),
            (status == 400, code),
            "{shown}: {err}"
        );
        assert!(!err.to_string().contains('\n'));
    }
    assert!(
        h.audit.recent().is_empty(),
        "body problems are not signature events"
    );
}

#[test]
fn depth_limit_is_exact() {
    let h = harness();
    // The event object is level 1; an unknown field nests 63 more: 64 in all.
    let nest = |n: usize| {
        format!(
            "{{\"event\":\"room_started\",\"room\":{{}},\"x\":{}{}}}",
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    let ok = nest(63).into_bytes();
    broadcast(receive(&h, &[&sign(&ok)], &ok));
    let too_deep = nest(64).into_bytes();
    let err = receive(&h, &[&sign(&too_deep)], &too_deep).expect_err("refused");
    assert!(matches!(err, WebhookError::TooDeep { max: 64 }), "{err}");
}

#[test]
fn oversized_body_is_413_before_anything_else() {
    let mut s = settings();
    s.max_body_bytes = 100;
    let h = harness_with(
        s,
        KeyRing::from_keys([(KEY.to_owned(), Secret::new(SECRET))]),
    );
    assert_eq!(h.rx.max_body_bytes(), 100);
    let body = vec![b' '; 101];
    let err = receive(&h, &["not even a token"], &body).expect_err("refused");
    assert!(
        matches!(
            err,
            WebhookError::BodyTooLarge {
                size: 101,
                limit: 100
            }
        ),
        "{err}"
    );
    assert_eq!(err.code(), "body_too_large");
    assert!(h.audit.recent().is_empty());
}

#[test]
fn createdat_far_in_the_past_is_not_a_reason_to_refuse() {
    let h = harness();
    let body = String::from_utf8(joined("EV_late"))
        .expect("utf8")
        .replace("\"1700000000\"", "\"1600000000\"");
    let e = broadcast(receive(&h, &[&sign(body.as_bytes())], body.as_bytes()));
    assert_eq!(e.created_at_ms, 1_600_000_000_000);
}

#[test]
fn error_display_is_one_line_without_secrets() {
    let errors = [
        WebhookError::Signature(SignatureError::BadSignature),
        WebhookError::BodyTooLarge { size: 10, limit: 5 },
        WebhookError::Syntax { line: 1, column: 2 },
        WebhookError::Schema {
            reason: "`room` is required".into(),
        },
    ];
    for e in errors {
        let s = e.to_string();
        assert!(
            !s.contains('\n') && !s.contains(SECRET) && !s.contains("eyJ"),
            "{s}"
        );
    }
    let sig = WebhookError::Signature(SignatureError::Expired);
    assert_eq!(
        (sig.is_bad_body(), sig.code()),
        (false, "invalid_signature")
    );
    assert_eq!(
        sig.public_message(),
        WebhookError::Signature(SignatureError::UnknownKey).public_message()
    );
}
