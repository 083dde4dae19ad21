//! The reverse-proxy recipes (`deploy/`) run for real in front of a running
//! Warden that trusts only the proxy's address: Debian's nginx, HAProxy and
//! Caddy, each started by the test on free ports with a temporary prefix
//! (in the foreground, killed at the end), TLS and HTTP/2 to the clients.
//! Each recipe file is used as shipped; only its ports, certificate paths and
//! include path are replaced (and the test fails if those strings move).
//!
//! Clients are told apart by their source address (`127.0.0.x`, as the
//! proxy sees them): a dashboard, LiveKit, an attacker, a busy client. What
//! must hold behind every proxy: events arrive at once (no buffering), the
//! real client address is the one counted for lockouts and rate limits, and
//! an attacker behind the proxy — even one that writes someone else's address
//! in `X-Forwarded-For` — locks out only itself.

mod launch;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use self::launch::{Proxy, Setup};
use crate::support::{self, KEY, SECRET, Sse};

/// A client of the proxy at source address `from`, trusting the test CA.
fn from(addr: &str, ca_der: &[u8]) -> reqwest::Client {
    support::init();
    reqwest::Client::builder()
        .no_proxy()
        .local_address(addr.parse::<IpAddr>().expect("address"))
        .add_root_certificate(reqwest::Certificate::from_der(ca_der).expect("ca"))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

async fn rooms(c: &reqwest::Client, base: &str, token: &str, xff: Option<&str>) -> u16 {
    let mut req = c.get(format!("{base}/api/rooms")).bearer_auth(token);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.expect("rooms").status().as_u16()
}

async fn deliver(c: &reqwest::Client, base: &str, body: Vec<u8>) -> reqwest::Response {
    c.post(format!("{base}/webhooks/livekit"))
        .header("authorization", support::sign_webhook(&body, KEY, SECRET))
        .header("content-type", "application/webhook+json")
        .body(body)
        .send()
        .await
        .expect("webhook")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nginx_recipe_streams_at_once_and_tells_clients_apart() {
    behind(Proxy::nginx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_haproxy_recipe_streams_at_once_and_tells_clients_apart() {
    behind(Proxy::haproxy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_caddy_recipe_streams_at_once_and_tells_clients_apart() {
    behind(Proxy::caddy).await;
}

/// The whole scenario behind the proxy `start` runs.
async fn behind(start: fn(&Setup<'_>) -> Proxy) {
    let s = support::spawn(
        "server: {trusted_proxies: [127.0.0.1]}\n\
         realtime: {heartbeat_seconds: 1}\n\
         suspicious_activity: {rate_limit_per_minute: 30}",
    )
    .await;
    let warden_port: u16 = s
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("cert");
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("key");
    let ca = ck.cert.der().to_vec();
    let proxy = start(&Setup {
        warden_port,
        cert: &cert,
        key: &key,
    });
    let base = proxy.url();
    let name = proxy.name;
    let (dashboard, livekit, attacker, busy) = (
        from("127.0.0.2", &ca),
        from("127.0.0.3", &ca),
        from("127.0.0.4", &ca),
        from("127.0.0.5", &ca),
    );

    // Plain HTTP is only a redirect to https.
    let r = from("127.0.0.2", &ca)
        .get(format!("http://127.0.0.1:{}/api/rooms", proxy.http))
        .send()
        .await
        .expect("http");
    assert_eq!(r.status(), 308, "{name}");
    assert!(
        r.headers()["location"]
            .to_str()
            .is_ok_and(|l| l.starts_with("https://")),
        "{:?}",
        r.headers()
    );

    // Events arrive through the proxy at once: the snapshot on connect, an
    // event within moments of its webhook, and the heartbeat.
    let opened = Instant::now();
    let mut sse = Sse::open_with(
        &dashboard,
        &format!("{base}/api/events"),
        Some(&support::list_token()),
        &[],
    )
    .await;
    assert_eq!(sse.status, 200, "{name}: {}", sse.body);
    let first = sse.next(Duration::from_secs(5)).await.expect("snapshot");
    assert_eq!(first.event, "snapshot");
    assert!(
        opened.elapsed() < Duration::from_secs(2),
        "{:?}",
        opened.elapsed()
    );
    let mut slowest = Duration::ZERO;
    for n in 0..5 {
        let body = support::room_started(&format!("via-nginx-{n}"), &format!("RM_ng{n}"));
        let sent = Instant::now();
        assert_eq!(deliver(&livekit, &base, body).await.status(), 200);
        let ev = sse
            .next_named("room_started", Duration::from_secs(5))
            .await
            .expect("the event comes through the proxy");
        slowest = slowest.max(sent.elapsed());
        assert_eq!(ev.json()["data"]["room"]["name"], format!("via-nginx-{n}"));
    }
    assert!(
        slowest < Duration::from_millis(500),
        "an event took {slowest:?} through {name}: buffered?"
    );
    let ping_wait = Instant::now();
    while sse.comments.is_empty() && ping_wait.elapsed() < Duration::from_secs(4) {
        let _ = sse.next(Duration::from_millis(500)).await;
    }
    assert!(!sse.comments.is_empty(), "the heartbeat comes through");

    // An attacker behind the proxy, naming the dashboard in X-Forwarded-For,
    // locks out only itself.
    for _ in 0..5 {
        assert_eq!(
            rooms(&attacker, &base, "forged", Some("127.0.0.2")).await,
            401
        );
    }
    let list = support::list_token();
    assert_eq!(
        rooms(&attacker, &base, &list, None).await,
        403,
        "locked out"
    );
    assert_eq!(
        rooms(&dashboard, &base, &list, None).await,
        200,
        "the dashboard is not"
    );
    let body = support::room_started("after-attack", "RM_ng9");
    assert_eq!(
        deliver(&livekit, &base, body).await.status(),
        200,
        "nor LiveKit"
    );
    assert_eq!(
        sse.next_named("room_started", Duration::from_secs(5))
            .await
            .map(|e| e.json()["data"]["room"]["name"].clone()),
        Some(Value::from("after-attack"))
    );

    // The rate limit counts the real client too.
    let mut limited = false;
    for _ in 0..40 {
        if rooms(&busy, &base, &list, None).await == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the busy client was never rate limited");
    assert_eq!(rooms(&dashboard, &base, &list, None).await, 200);

    // Warden saw each client as itself, and nothing misrouted.
    let st: Value = dashboard
        .get(format!("{base}/api/security/status"))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let blocked: Vec<&str> = st["blocked"]
        .as_array()
        .expect("blocked")
        .iter()
        .filter_map(|b| b["ip"].as_str())
        .collect();
    assert_eq!(blocked, vec!["127.0.0.4"], "{name}: {st}");
    let h: Value = dashboard
        .get(format!("{base}/api/security/health"))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(
        h["checks"]["client_identity"]["status"], "healthy",
        "{name}: {h}"
    );
    drop(proxy);
    s.stop().await;
}
