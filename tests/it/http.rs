//! The HTTP surface's common behaviour: JSON errors, headers, health, shutdown.

use crate::support;

#[tokio::test]
async fn health_is_ok_and_nothing_else() {
    let s = support::spawn("").await;
    let r = support::client()
        .get(format!("{}/health", s.url))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(
        r.json::<serde_json::Value>().await.expect("json"),
        serde_json::json!({"status": "ok"})
    );
    s.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_get_one_line_json_errors() {
    let s = support::spawn("").await;
    let c = support::client();
    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("DELETE", "/webhooks/livekit", 405),
        ("GET", "/api/rooms", 401),
    ] {
        let r = c
            .request(method.parse().expect("method"), format!("{}{path}", s.url))
            .send()
            .await
            .expect("req");
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .expect("ct")
                .contains("json")
        );
        let v: serde_json::Value = r.json().await.expect("json");
        assert!(
            v["error"].is_string() && v["message"].as_str().is_some_and(|m| !m.contains('\n')),
            "{v}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn oversized_webhook_body_is_refused_before_it_is_read() {
    let s = support::spawn("webhooks: {max_body_bytes: 1024}").await;
    let body = vec![b'x'; 4096];
    let r = support::client()
        .post(format!("{}/webhooks/livekit", s.url))
        .body(body)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 413);
    s.stop().await;
}

#[tokio::test]
async fn dashboard_has_a_fresh_csp_nonce_and_moves_a_query_token_into_a_cookie() {
    let s = support::spawn("").await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let r = c.get(format!("{}/", s.url)).send().await.expect("req");
        assert_eq!(r.status(), 200);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .to_owned();
        assert!(
            csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|x| x.split('\'').next())
            .expect("nonce")
            .to_owned();
        let html = r.text().await.expect("body");
        assert!(html.contains(&format!("nonce=\"{nonce}\"")) && !html.contains("__CSP_NONCE__"));
        nonces.push(nonce);
    }
    assert_ne!(nonces[0], nonces[1]);
    let token = support::list_token();
    let r = c
        .get(format!("{}/?token={token}", s.url))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let cookie = r.headers()["set-cookie"].to_str().expect("cookie");
    assert!(
        cookie.starts_with(&format!("warden_token={token}"))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
    );
    s.stop().await;
}

#[tokio::test]
async fn metrics_for_loopback_or_admin_only_and_counting_real_traffic() {
    let s = support::spawn("server: {trusted_proxies: [127.0.0.1]}").await;
    let c = support::client();
    let body = support::room_started("m", "RM_metrics1");
    assert_eq!(support::deliver(&s.url, &body).await, 200);
    // A client on the proxy's own host: the proxy names it as loopback.
    let r = c
        .get(format!("{}/metrics", s.url))
        .header("x-forwarded-for", "127.0.0.1")
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    let line = text
        .lines()
        .find(|l| l.starts_with("warden_webhooks_total{") && l.contains("result=\"accepted\""))
        .unwrap_or_else(|| panic!("no accepted webhook counted:\n{text}"));
    assert!(line.ends_with(" 1"), "{line}");
    for l in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let value = l.rsplit(' ').next().expect("value");
        assert!(value.parse::<f64>().is_ok(), "not a sample line: {l}");
    }
    let remote = c
        .get(format!("{}/metrics", s.url))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .expect("req");
    assert_eq!(remote.status(), 401, "a remote client needs an admin token");
    let admin = c
        .get(format!("{}/metrics", s.url))
        .header("x-forwarded-for", "203.0.113.9")
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("req");
    assert_eq!(admin.status(), 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_connections_are_closed_by_the_header_timeout_while_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The per-address cap is lifted: this is about the header timeout alone.
    let s = support::spawn("server: {header_timeout_seconds: 1, max_tcp_connections_per_ip: 1000}")
        .await;
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..500 {
        let mut c = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        // A request head that never ends.
        c.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
            .await
            .expect("write");
        slow.push(c);
    }
    let r = support::client()
        .get(format!("{}/health", s.url))
        .send()
        .await
        .expect("normal request");
    assert_eq!(
        r.status(),
        200,
        "normal requests are served during the attack"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let mut closed = 0;
    for c in &mut slow {
        let mut buf = [0u8; 512];
        match tokio::time::timeout(std::time::Duration::from_millis(200), c.read(&mut buf)).await {
            // EOF, a reset, or hyper's 408 followed by the close.
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            Ok(Ok(n)) if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408") => {
                closed += 1
            }
            _ => {}
        }
    }
    assert_eq!(
        closed, 500,
        "slow connections still open after the header timeout"
    );
    let r = support::client()
        .get(format!("{}/health", s.url))
        .send()
        .await
        .expect("after");
    assert_eq!(r.status(), 200);
    s.stop().await;
}
