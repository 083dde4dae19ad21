//! Client identity behind reverse proxies, against a running server: the
//! proxy that is not trusted (loud, not fatal), the trusted proxy that names
//! no client (the unknown client: strict, never loopback), and LiveKit's
//! signed webhooks from an address that is locked out (still accepted).
//! Real proxies in front are in `proxies.rs`.

use std::time::Duration;

use serde_json::Value;

use crate::support::{self, KEY, SECRET, Sse};

/// `GET /api/rooms` with `token`, as `xff` says (no header when `None`).
async fn rooms(base: &str, xff: Option<&str>, token: &str) -> u16 {
    let mut req = support::client()
        .get(format!("{base}/api/rooms"))
        .bearer_auth(token);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.expect("rooms").status().as_u16()
}

/// `/api/security/health` as an admin (through the proxy as `xff` when given).
async fn health(base: &str, xff: Option<&str>) -> Value {
    let mut req = support::client()
        .get(format!("{base}/api/security/health"))
        .bearer_auth(support::admin_token());
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let r = req.send().await.expect("health");
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// The sample of `name{labels}` in a metrics text, 0 when absent.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored_and_reported() {
    // The default: no trusted proxies. The test client plays a proxy on loopback.
    let s = support::spawn("").await;
    let base = s.url.clone();
    let ok = health(&base, None).await;
    assert_eq!(ok["checks"]["client_identity"]["status"], "healthy", "{ok}");
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_eq!(
            rooms(&base, Some(client), &support::list_token()).await,
            200
        );
    }
    let h = health(&base, None).await;
    let check = &h["checks"]["client_identity"];
    assert_eq!(check["status"], "degraded", "{h}");
    let detail = check["detail"].as_str().expect("detail");
    assert!(
        detail.contains("server.trusted_proxies") && detail.contains("127.0.0.1"),
        "the advice names the setting and the peer: {detail}"
    );
    assert_eq!(h["overall_status"], "degraded");
    // Counted: loopback reads /metrics without a token (no proxy is trusted).
    let m = support::client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(m.status(), 200);
    let text = m.text().await.expect("text");
    assert_eq!(
        sample(
            &text,
            "warden_client_identity_total{outcome=\"forwarding_ignored\"}"
        ),
        3.0,
        "{text}"
    );
    // Ignored means ignored: five failures "from" five addresses are one client.
    for n in 0..5 {
        let who = format!("198.51.100.{n}");
        assert_eq!(rooms(&base, Some(&who), "not-a-token").await, 401);
    }
    assert_eq!(
        rooms(&base, Some("198.51.100.200"), &support::list_token()).await,
        403,
        "every client behind an untrusted proxy is the proxy"
    );
    s.stop().await;
}

#[test]
fn the_untrusted_proxy_warning_is_written_once_per_peer() {
    let bin = support::Binary::new();
    let mut served = bin.serve(&[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for n in 0..4 {
            let who = format!("203.0.113.{n}");
            assert_eq!(
                rooms(&served.url, Some(&who), &support::list_token()).await,
                200
            );
        }
    });
    served.terminate();
    let out = served.output();
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("are ignored: it is not in server.trusted_proxies"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(warnings[0].contains("WARN"), "a warning: {}", warnings[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxy_that_names_no_client_gives_the_unknown_client() {
    let s = support::spawn("server: {trusted_proxies: [127.0.0.1]}").await;
    let base = s.url.clone();
    // Not loopback: /metrics needs a token without a named loopback client.
    let m = support::client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(m.status(), 401, "the unknown client has no loopback rights");
    // A named attacker locks out only itself.
    for _ in 0..5 {
        assert_eq!(rooms(&base, Some("198.51.100.66"), "bad").await, 401);
    }
    let list = support::list_token();
    assert_eq!(rooms(&base, Some("198.51.100.66"), &list).await, 403);
    assert_eq!(rooms(&base, Some("198.51.100.5"), &list).await, 200);
    assert_eq!(
        rooms(&base, None, &list).await,
        200,
        "unknown is not the attacker"
    );
    // Unnamed requests are one client, held strictly: their failures add up…
    for _ in 0..5 {
        assert_eq!(rooms(&base, None, "bad").await, 401);
    }
    assert_eq!(
        rooms(&base, None, &list).await,
        403,
        "the unknown client is locked out"
    );
    // …and lock out nobody the proxy does name.
    assert_eq!(rooms(&base, Some("198.51.100.5"), &list).await, 200);
    assert_eq!(
        rooms(&base, Some("127.0.0.1"), &list).await,
        200,
        "nor the proxy's host"
    );
    let blocked = support::client()
        .get(format!("{base}/api/security/status"))
        .bearer_auth(support::admin_token())
        .header("x-forwarded-for", "198.51.100.5")
        .send()
        .await
        .expect("status")
        .json::<Value>()
        .await
        .expect("json");
    let ips: Vec<&str> = blocked["blocked"]
        .as_array()
        .expect("blocked")
        .iter()
        .filter_map(|b| b["ip"].as_str())
        .collect();
    assert!(
        ips.contains(&"0.0.0.0") && ips.contains(&"198.51.100.66"),
        "{ips:?}"
    );
    assert!(!ips.contains(&"127.0.0.1"), "{ips:?}");
    // Mostly unnamed requests: the proxy looks misconfigured.
    for _ in 0..10 {
        let r = support::client()
            .get(format!("{base}/"))
            .send()
            .await
            .expect("page");
        assert_eq!(r.status(), 200);
    }
    let h = health(&base, Some("198.51.100.5")).await;
    let check = &h["checks"]["client_identity"];
    assert_eq!(check["status"], "degraded", "{h}");
    assert!(
        check["detail"]
            .as_str()
            .is_some_and(|d| d.contains("X-Forwarded-For")),
        "{h}"
    );
    let text = support::client()
        .get(format!("{base}/metrics"))
        .header("x-forwarded-for", "127.0.0.1")
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        sample(
            &text,
            "warden_client_identity_total{outcome=\"unknown_client\"}"
        ) >= 8.0,
        "{text}"
    );
    s.stop().await;
}

async fn webhook(base: &str, from: &str, auth: Option<String>, body: Vec<u8>) -> reqwest::Response {
    let mut req = support::client()
        .post(format!("{base}/webhooks/livekit"))
        .header("x-forwarded-for", from)
        .header("content-type", "application/webhook+json");
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.body(body).send().await.expect("webhook")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_out_address_still_delivers_signed_webhooks_and_nothing_else() {
    let s = support::spawn("server: {trusted_proxies: [127.0.0.1]}").await;
    let base = s.url.clone();
    let livekit = "192.0.2.50";
    let mut dash = Sse::open(
        &format!("{base}/api/events"),
        Some(&support::list_token()),
        &[("x-forwarded-for", "198.51.100.20")],
    )
    .await;
    assert_eq!(dash.status, 200);
    assert_eq!(
        dash.next(Duration::from_secs(5)).await.map(|e| e.event),
        Some("snapshot".into())
    );
    // Five deliveries signed with a wrong secret lock the address out.
    let wrong = "wrong-secret-wrong-secret-wrong-secret-00";
    for _ in 0..5 {
        let body = support::room_started("r", "RM_bad");
        let auth = support::sign_webhook(&body, KEY, wrong);
        assert_eq!(
            webhook(&base, livekit, Some(auth), body).await.status(),
            401
        );
    }
    assert_eq!(
        rooms(&base, Some(livekit), &support::list_token()).await,
        403
    );
    let invalid = || async {
        s.state.audit.flush().await;
        let kind = Some(warden::audit::EventType::WebhookInvalidSignature);
        let page = s.state.audit.query(kind, None, 100, None).expect("query");
        page.events.len()
    };
    assert_eq!(invalid().await, 5);
    // LiveKit's own signed delivery is still accepted and reaches the dashboard.
    let body = support::room_started("after-lockout", "RM_lock");
    let auth = support::sign_webhook(&body, KEY, SECRET);
    let r = webhook(&base, livekit, Some(auth), body).await;
    assert_eq!(r.status(), 200, "a verified webhook passes the lockout");
    let ev = dash
        .next_named("room_started", Duration::from_secs(5))
        .await
        .expect("the event arrives");
    assert_eq!(ev.json()["data"]["room"]["name"], "after-lockout");
    // Signed but not a LiveKit event: the real answer (the signature verified).
    let junk = br#"{"nothing":"here"}"#.to_vec();
    let auth = support::sign_webhook(&junk, KEY, SECRET);
    assert_eq!(
        webhook(&base, livekit, Some(auth), junk).await.status(),
        400
    );
    // Everything unverified from it: 429 + Retry-After, so LiveKit would retry.
    let body = support::room_started("r", "RM_x");
    let cases = [
        (
            "bad signature",
            Some(support::sign_webhook(&body, KEY, wrong)),
            body.clone(),
        ),
        ("unsigned", None, body.clone()),
        (
            "garbage auth",
            Some("Bearer x.y.z".to_owned()),
            body.clone(),
        ),
        (
            "too large",
            Some(support::sign_webhook(&body, KEY, wrong)),
            vec![b' '; 300_000],
        ),
    ];
    for (what, auth, body) in cases {
        let r = webhook(&base, livekit, auth, body).await;
        assert_eq!(r.status(), 429, "{what}");
        assert!(r.headers().contains_key("retry-after"), "{what}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"], "locked_out", "{what}");
    }
    // Refused by the lockout, not written one by one: the lockout's single
    // IP_BLOCKED covers them (a locked-out sender cannot flood the audit log).
    assert_eq!(invalid().await, 5);
    // Another source's bad signature is still a plain 401.
    let auth = support::sign_webhook(&body, KEY, wrong);
    assert_eq!(
        webhook(&base, "192.0.2.51", Some(auth), body)
            .await
            .status(),
        401
    );
    s.stop().await;
}
