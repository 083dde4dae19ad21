//! Security events from their real triggers, the admin routes, the kill
//! switch and unblocking — against a running server.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{self, KEY, SECRET};

async fn events(base: &str) -> Vec<Value> {
    let r = support::client()
        .get(format!("{base}/api/security/events?limit=1000"))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.expect("json")["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_for_type(base: &str, kind: &str) -> Value {
    for _ in 0..60 {
        if let Some(e) = events(base).await.into_iter().find(|e| e["type"] == kind) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {kind} event recorded");
}

/// `GET /api/rooms` with `token`, from `ip` through the trusted proxy.
async fn rooms_from(base: &str, ip: &str, token: &str) -> reqwest::Response {
    support::client()
        .get(format!("{base}/api/rooms"))
        .header("x-forwarded-for", ip)
        .bearer_auth(token)
        .send()
        .await
        .expect("req")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_type_comes_from_its_real_trigger() {
    let s = support::spawn(
        "server: {trusted_proxies: [127.0.0.1]}\n\
         suspicious_activity: {rate_limit_per_minute: 30, unusual_usage_threshold: 12}\n\
         key_rotation: {overlap_period_minutes: 1}",
    )
    .await;
    let c = support::client();
    let base = s.url.clone();
    // WEBHOOK_INVALID_SIGNATURE
    let body = support::room_started("r", "RM_sec1");
    let r = c
        .post(format!("{base}/webhooks/livekit"))
        .header(
            "authorization",
            support::sign_webhook(&body, KEY, "not-the-secret-not-the-secret-not-the"),
        )
        .body(body.clone())
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    // WEBHOOK_REPLAY: the same id with another body.
    let mut v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(support::deliver(&base, &body).await, 200);
    v["room"]["name"] = json!("changed");
    let replayed = serde_json::to_vec(&v).expect("json");
    assert_eq!(
        support::deliver(&base, &replayed).await,
        200,
        "a replay is acknowledged, not re-broadcast"
    );
    // UNAUTHORIZED_ACCESS: a valid token without admin grants.
    let r = c
        .get(format!("{base}/api/security/status"))
        .bearer_auth(support::list_token())
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 403);
    // SUSPICIOUS_LOGIN, MULTIPLE_FAILED_AUTH, IP_BLOCKED: five failures then a refused request.
    let ip = "198.51.100.77";
    for i in 0..5 {
        let r = rooms_from(&base, ip, "not-a-token").await;
        assert_eq!(r.status(), 401, "failure {i}");
    }
    let r = rooms_from(&base, ip, &support::list_token()).await;
    assert_eq!(r.status(), 403, "locked out even with a valid token");
    assert!(r.headers().contains_key("retry-after"));
    // RATE_LIMIT_EXCEEDED and UNUSUAL_API_USAGE from one busy client.
    let busy = "198.51.100.78";
    let mut limited = false;
    for _ in 0..40 {
        let r = rooms_from(&base, busy, &support::list_token()).await;
        if r.status() == 429 {
            assert!(
                r.headers().contains_key("retry-after") && r.headers().contains_key("ratelimit")
            );
            limited = true;
            break;
        }
    }
    assert!(limited, "the per-client rate limit never applied");
    // INGESTION_PAUSED, and the switch works.
    let admin = support::admin_token();
    let r = c
        .post(format!("{base}/api/security/ingestion"))
        .bearer_auth(&admin)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let r = c
        .post(format!("{base}/webhooks/livekit"))
        .header(
            "authorization",
            support::sign_webhook(&support::room_started("p", "RM_p"), KEY, SECRET),
        )
        .body(support::room_started("p", "RM_p"))
        .send()
        .await
        .expect("req");
    assert_eq!(
        r.status(),
        503,
        "paused ingestion answers 503 so LiveKit retries"
    );
    assert!(r.headers().contains_key("retry-after"));
    c.post(format!("{base}/api/security/ingestion"))
        .bearer_auth(&admin)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .expect("req");
    assert_eq!(
        support::deliver(&base, &support::room_started("p2", "RM_p2")).await,
        200
    );
    // KEY_ROTATION: a rotation of Warden's own key, seen by the watcher.
    let now = s.state.clock.now_ms();
    s.state.keys.create_key(now, "test").expect("create");
    s.state.keys.rotate(now, true, "test").expect("rotate");
    for kind in [
        "WEBHOOK_INVALID_SIGNATURE",
        "WEBHOOK_REPLAY",
        "UNAUTHORIZED_ACCESS",
        "SUSPICIOUS_LOGIN",
        "MULTIPLE_FAILED_AUTH",
        "IP_BLOCKED",
        "RATE_LIMIT_EXCEEDED",
        "UNUSUAL_API_USAGE",
        "INGESTION_PAUSED",
        "KEY_ROTATION",
    ] {
        let e = wait_for_type(&base, kind).await;
        for field in [
            "id",
            "type",
            "severity",
            "timestamp",
            "prev_hash",
            "hash",
            "details",
        ] {
            assert!(!e[field].is_null(), "{kind} has no {field}: {e}");
        }
    }
    // Status: blocked client listed, keys listed, counts present, no secret anywhere.
    let r = c
        .get(format!("{base}/api/security/status"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("req");
    let text = r.text().await.expect("text");
    assert!(
        !text.contains(SECRET) && !text.contains("eyJ"),
        "status leaks a secret"
    );
    let st: Value = serde_json::from_str(&text).expect("json");
    assert!(
        st["blocked"]
            .as_array()
            .is_some_and(|b| b.iter().any(|x| x["ip"] == "198.51.100.77")),
        "{st}"
    );
    assert!(
        st["keys"]
            .as_array()
            .is_some_and(|k| k.iter().any(|x| x["state"] == "retiring")),
        "{st}"
    );
    assert!(
        st["counts"]["1h"]["MULTIPLE_FAILED_AUTH"].as_u64() >= Some(1),
        "{st}"
    );
    assert!(
        ["healthy", "degraded", "critical"].contains(&st["overall_status"].as_str().unwrap_or(""))
    );
    // Unblock restores access.
    let r = c
        .post(format!("{base}/api/security/unblock"))
        .bearer_auth(&admin)
        .json(&json!({"ip": "198.51.100.77"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let r = rooms_from(&base, ip, &support::list_token()).await;
    assert_eq!(r.status(), 200, "unblocked");
    let r = c
        .post(format!("{base}/api/security/unblock"))
        .bearer_auth(&admin)
        .json(&json!({"ip": "nope"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 400);
    // The same events are in the JSON security log.
    s.state.audit.flush().await;
    let log =
        std::fs::read_to_string(s.dir.path().join("logs/security.log")).expect("security log");
    for kind in [
        "WEBHOOK_INVALID_SIGNATURE",
        "MULTIPLE_FAILED_AUTH",
        "KEY_ROTATION",
        "INGESTION_PAUSED",
    ] {
        assert!(
            log.lines()
                .any(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == kind)),
            "{kind} not in the security log"
        );
    }
    assert!(!log.contains(SECRET) && !log.contains("eyJ"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_details_for_admins_only() {
    let s = support::spawn("").await;
    let c = support::client();
    let r = c
        .get(format!("{}/api/security/health", s.url))
        .bearer_auth(support::list_token())
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 403);
    let r = c
        .get(format!("{}/api/security/health", s.url))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    for check in [
        "keys",
        "key_rotation",
        "secret_strength",
        "tls",
        "audit_store",
        "alert_sink",
        "connections",
    ] {
        assert!(
            v["checks"][check]["status"].is_string(),
            "no {check} check: {v}"
        );
    }
    assert_eq!(v["checks"]["audit_store"]["status"], "healthy", "{v}");
    s.stop().await;
}

#[tokio::test]
async fn a_cursor_the_server_never_returned_is_a_400_not_a_silent_restart() {
    let s = support::spawn("").await;
    let get = |q: &'static str| {
        support::client()
            .get(format!("{}/api/security/events?{q}", s.url))
            .bearer_auth(support::admin_token())
            .send()
    };
    let r = get("cursor=abc").await.expect("req");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "invalid_cursor", "{body}");
    assert_eq!(get("cursor=12").await.expect("req").status(), 200);
    s.stop().await;
}
