//! The masking corpus: lines whose secrets must go, and look-alikes that must stay.

use super::*;

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUElhYmMiLCJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
const SECRET: &str = "Xk3vP9qLmT2wR7yB4nH6jD8fG5sA1cZ0eU3iO7pQ2rW";

fn masker() -> Masker {
    let m = Masker::new();
    m.set_known_secrets(&[Secret::new(SECRET)]);
    m
}

/// (input, the secret part that must be gone)
fn must_mask() -> Vec<(String, &'static str)> {
    let s = SECRET;
    vec![
        (format!("issued {JWT}"), JWT),
        (format!("Authorization: Bearer {JWT}"), JWT),
        ("Authorization: Bearer opaque-token-value-123".into(), "opaque-token-value-123"),
        ("authorization: bearer abcdEFGH1234".into(), "abcdEFGH1234"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==".into(), "dXNlcjpwYXNzd29yZA=="),
        ("api_key=sk-secret123456789 region=eu".into(), "sk-secret123456789"),
        ("Connecting with api_key=\"sk-secret123456789\"".into(), "sk-secret123456789"),
        ("api_key='sk-secret123456789'".into(), "sk-secret123456789"),
        ("apiKey: sk-secret123456789".into(), "sk-secret123456789"),
        ("API_SECRET=hunter2hunter2".into(), "hunter2hunter2"),
        ("secret=topsecretvalue".into(), "topsecretvalue"),
        ("{\"secret\": \"topsecretvalue\"}".into(), "topsecretvalue"),
        ("{\"api_secret\":\"topsecretvalue\",\"room\":\"a\"}".into(), "topsecretvalue"),
        ("GET /api/events?token=abc.def.ghi&room=x".into(), "abc.def.ghi"),
        ("GET /api/events?access_token=opaque123&room=x".into(), "opaque123"),
        ("url=https://h/cb?token=opaque123".into(), "opaque123"),
        ("password=correcthorse".into(), "correcthorse"),
        ("{\"password\":\"correcthorse\"}".into(), "correcthorse"),
        ("refresh_token: r-123456".into(), "r-123456"),
        ("client_secret=abcdef123".into(), "abcdef123"),
        ("LIVEKIT_API_SECRET=abcdef123456".into(), "abcdef123456"),
        ("Cookie: warden_token=opaque987654".into(), "opaque987654"),
        ("alert signing key whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        (format!("loaded key APIabc with {s}"), SECRET),
        (format!("keys: {{APIabc: {s}}}"), SECRET),
        (format!("APIabc: {s}"), SECRET),
        (format!("x{s}y"), SECRET),
        (format!("\"{s}\""), SECRET),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----".into(), "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"),
        ("-----BEGIN RSA PRIVATE KEY-----\\nMIIEpAIBAAKCAQEA\\n-----END RSA PRIVATE KEY-----".into(), "MIIEpAIBAAKCAQEA"),
        ("key begins -----BEGIN EC PRIVATE KEY----- MHcCAQEEIIr".into(), "MHcCAQEEIIr"),
        (format!("token={JWT}"), JWT),
        (format!("{{\"token\":\"{JWT}\"}}"), JWT),
        (format!("sse ticket {JWT}."), JWT),
        ("X-Api-Key: 0123456789abcdef".into(), "0123456789abcdef"),
        ("private_key=AAAABBBBCCCC".into(), "AAAABBBBCCCC"),
        ("sessionToken=abcd1234".into(), "abcd1234"),
        ("storage redis_url=redis://:s3cretpass@127.0.0.1:6379/0".into(), "s3cretpass"),
        ("connecting to rediss://warden:pw123456@cache.internal:6380".into(), "pw123456"),
        ("id_token=xyz987xyz".into(), "xyz987xyz"),
        ("redis password=s3cr3tpass".into(), "s3cr3tpass"),
        ("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".into(), "eyJzdWIiOiJ4In0"),
    ]
}

fn must_keep() -> Vec<&'static str> {
    vec![
        "commit 3f2a9c1d4b5e6f708192a3b4c5d6e7f801234567 merged",
        "request id 123e4567-e89b-12d3-a456-426614174000 done",
        "room demo-room-42 started",
        "region=eu zone=west",
        "token_count=3",
        "tokens: 5",
        "the secretary sent the report",
        "key_id=APIabcdEFGH2345 rotated",
        "participant Alice joined room secret-meeting",
        "GET /api/rooms 200 in 3 ms",
        "Bearer",
        "eyJ alone is not a token",
        "sha256 digest 2cf24dba5fb0a30e26e43e8a1f1d0d9a9b84bb3e0e2b8e1f8d3a4f5b6c7d8e9f",
        "webhook from 10.0.0.1 accepted",
        "listening on 127.0.0.1:8080",
        "fingerprint 9f2c1a0b",
        "alert target https://hooks.example.com/warden accepted",
        "redis at redis://127.0.0.1:6379/0",
    ]
}

#[test]
fn corpus_has_forty_lines() {
    assert!(must_mask().len() + must_keep().len() >= 40);
}

#[test]
fn secrets_are_masked() {
    let m = masker();
    for (line, secret) in must_mask() {
        let out = m.mask(&line);
        assert!(
            !out.contains(secret),
            "{line:?} -> {out:?} still holds {secret:?}"
        );
        assert!(out.contains(MASK), "{line:?} -> {out:?} has no mask marker");
    }
}

#[test]
fn look_alikes_are_kept() {
    let m = masker();
    for line in must_keep() {
        assert_eq!(m.mask(line), line, "{line:?} was changed");
    }
}

#[test]
fn masking_keeps_the_surrounding_text() {
    let m = masker();
    assert_eq!(
        m.mask("api_key=sk-secret123456789 region=eu"),
        "api_key=***MASKED*** region=eu"
    );
    assert_eq!(
        m.mask("{\"secret\": \"abc12345\", \"room\": \"a\"}"),
        "{\"secret\": \"***MASKED***\", \"room\": \"a\"}"
    );
    assert_eq!(
        m.mask("Authorization: Bearer abcdefgh"),
        "Authorization: Bearer ***MASKED***"
    );
}

#[test]
fn masking_is_idempotent() {
    let m = masker();
    for (line, _) in must_mask() {
        let once = m.mask(&line).into_owned();
        assert_eq!(m.mask(&once), once);
    }
}

#[test]
fn known_secrets_can_be_replaced() {
    let m = Masker::new();
    let a = Secret::new("first-secret-value-0001");
    m.set_known_secrets([&a]);
    assert_eq!(m.mask("x first-secret-value-0001 y"), "x ***MASKED*** y");
    m.set_known_secrets([]);
    assert_eq!(
        m.mask("x first-secret-value-0001 y"),
        "x first-secret-value-0001 y"
    );
}

#[test]
fn secret_never_prints() {
    let s = Secret::new("do-not-print-me");
    assert_eq!(format!("{s}"), "[redacted]");
    assert_eq!(format!("{s:?}"), "[redacted]");
    assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
    assert_eq!(s, Secret::new("do-not-print-me"));
    assert_ne!(s, Secret::new("do-not-print-mE"));
}
