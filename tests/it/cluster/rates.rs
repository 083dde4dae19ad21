//! Rate limits across nodes: a client that spreads its requests over three
//! nodes is held to one budget, refused on every node within about a second
//! with the same headers as a local refusal; a client under the budget is
//! never refused. The nodes share one manual clock set just after a minute
//! starts, so the whole test sits in one fixed window.

use std::time::{Duration, Instant};

use serde_json::Value;
use warden::clock::Clock;

use super::server::RedisServer;
use super::{eventually, yaml};
use crate::support::{self, KEY, SECRET, TestServer};

/// 1 s into the next minute (≤ 61 s ahead of real time: tokens made now stay valid).
fn minute_clock() -> Clock {
    let now = Clock::system().now_ms();
    Clock::manual((now / 60_000 + 1) * 60_000 + 1_000)
}

async fn rooms_from(node: &TestServer, client: &str) -> reqwest::Response {
    support::client()
        .get(format!("{}/api/rooms", node.url))
        .bearer_auth(support::list_token())
        .header("x-forwarded-for", client)
        .send()
        .await
        .expect("rooms")
}

async fn webhook(node: &TestServer) -> reqwest::Response {
    let body = support::room_started(&format!("r-{}", support::rand_hex()), "RM_rate");
    support::client()
        .post(format!("{}/webhooks/livekit", node.url))
        .header("authorization", support::sign_webhook(&body, KEY, SECRET))
        .header("content-type", "application/webhook+json")
        .body(body)
        .send()
        .await
        .expect("webhook")
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Asserts a cluster refusal 59 s before its window ends, as the local limiter words it.
async fn assert_refused(resp: reqwest::Response, policy: &str, limit: u32, what: &str) {
    assert_eq!(resp.status(), 429, "{what}");
    assert_eq!(header(&resp, "retry-after"), "59", "{what}");
    assert_eq!(
        header(&resp, "ratelimit-policy"),
        format!("\"{policy}\";q={limit};w=60"),
        "{what}"
    );
    assert_eq!(
        header(&resp, "ratelimit"),
        format!("\"{policy}\";r=0;t=59"),
        "{what}"
    );
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(body["error"], "rate_limited", "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_the_limit_across_nodes_is_refused_on_every_node() {
    let redis = RedisServer::start();
    let clock = minute_clock();
    let extra = "suspicious_activity: {rate_limit_per_minute: 30}\n\
                 webhooks: {rate_limit_per_minute: 10}\n\
                 server: {trusted_proxies: ['127.0.0.1']}";
    let mut n = Vec::new();
    for _ in 0..3 {
        n.push(support::spawn_clocked(&yaml(&redis, extra), &[], clock.clone()).await);
    }
    let (heavy, light) = ("198.51.100.7", "198.51.100.8");
    // heavy: 13 per node, 39 in all: over 30 together, far under it on each node.
    // light: 9 per node, 27 in all, interleaved: under the limit.
    for round in 0..13 {
        for (i, node) in n.iter().enumerate() {
            let status = rooms_from(node, heavy).await.status();
            assert!(
                status == 200 || status == 429,
                "heavy on node {i}: {status}"
            );
            if round < 9 {
                let status = rooms_from(node, light).await.status();
                assert_eq!(status, 200, "light on node {i}, round {round}");
            }
        }
    }
    let sent = Instant::now();
    for (i, node) in n.iter().enumerate() {
        let refused = eventually(Duration::from_millis(1500), || async {
            rooms_from(node, heavy).await.status() == 429
        })
        .await;
        assert!(
            refused,
            "node {i} still admits heavy {:?} after its last request",
            sent.elapsed()
        );
    }
    let converged = sent.elapsed();
    for (i, node) in n.iter().enumerate() {
        assert_refused(
            rooms_from(node, heavy).await,
            "api",
            30,
            &format!("heavy on node {i}"),
        )
        .await;
    }
    // light's last 3 requests: 30 in all, still not over.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for (i, node) in n.iter().enumerate() {
        assert_eq!(
            rooms_from(node, light).await.status(),
            200,
            "light on node {i}"
        );
    }
    let recorded = n.iter().any(|node| {
        node.state.audit.recent().iter().any(|e| {
            e.kind == warden::audit::EventType::RateLimitExceeded
                && e.details.get("scope").and_then(Value::as_str) == Some("cluster")
        })
    });
    assert!(recorded, "RATE_LIMIT_EXCEEDED (scope cluster) recorded");

    // Webhooks: 4 per node from one source, 12 > 10 together.
    for node in &n {
        for _ in 0..4 {
            let status = webhook(node).await.status();
            assert!(status == 200 || status == 429, "{status}");
        }
    }
    for (i, node) in n.iter().enumerate() {
        let refused = eventually(Duration::from_millis(1500), || async {
            webhook(node).await.status() == 429
        })
        .await;
        assert!(refused, "node {i} still accepts the source's webhooks");
        assert_refused(
            webhook(node).await,
            "webhook",
            10,
            &format!("webhook on node {i}"),
        )
        .await;
    }

    // The window ends: heavy is admitted again everywhere.
    clock.advance(Duration::from_secs(60));
    for (i, node) in n.iter().enumerate() {
        assert_eq!(
            rooms_from(node, heavy).await.status(),
            200,
            "heavy on node {i} in the next window"
        );
        assert_eq!(
            webhook(node).await.status(),
            200,
            "webhooks on node {i} in the next window"
        );
    }
    println!("shared rate limit: refused on all 3 nodes {converged:?} after the last request");
}

/// The price of keeping Redis off the request path: between two pushes
/// (250 ms) each node admits on its own, so a client over the limit gets
/// through until every node has heard — at most about two pushes' worth of
/// its requests. Printed with `-- --nocapture`; README quotes the figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_wide_limit_overshoots_by_about_two_pushes_of_requests() {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LIMIT: u32 = 300;
    const PACE: Duration = Duration::from_millis(15);
    let redis = RedisServer::start();
    let clock = minute_clock();
    let extra = format!(
        "suspicious_activity: {{rate_limit_per_minute: {LIMIT}}}\n\
         server: {{trusted_proxies: ['127.0.0.1']}}"
    );
    let mut n = Vec::new();
    for _ in 0..3 {
        n.push(support::spawn_clocked(&yaml(&redis, &extra), &[], clock.clone()).await);
    }
    let client = "198.51.100.9";
    let http = support::client();
    let token = support::list_token();
    let (admitted, sent) = (AtomicU32::new(0), AtomicU32::new(0));
    let start = Instant::now();
    // One paced sender per node until twice the limit is sent: the last half is all over it.
    let senders = n.iter().map(|node| async {
        let mut tick = tokio::time::interval(PACE);
        while sent.fetch_add(1, Ordering::Relaxed) < 2 * LIMIT {
            tick.tick().await;
            let status = http
                .get(format!("{}/api/rooms", node.url))
                .bearer_auth(&token)
                .header("x-forwarded-for", client)
                .send()
                .await
                .expect("rooms")
                .status();
            assert!(status == 200 || status == 429, "{status}");
            admitted.fetch_add(u32::from(status == 200), Ordering::Relaxed);
        }
    });
    futures_util::future::join_all(senders).await;
    let (admitted, sent) = (admitted.into_inner(), 2 * LIMIT);
    let rate = f64::from(sent) / start.elapsed().as_secs_f64();
    let over = admitted.saturating_sub(LIMIT);
    println!(
        "cluster-wide rate limit: {admitted} of {sent} requests admitted against a limit of {LIMIT}/min \
         ({rate:.0} req/s spread over 3 nodes): {over} over the limit (+{:.1} %, {:.0} ms of requests)",
        f64::from(over) * 100.0 / f64::from(LIMIT),
        f64::from(over) * 1000.0 / rate
    );
    assert!(
        admitted >= LIMIT,
        "every request under the limit is admitted"
    );
    // Two pushes (500 ms) plus one request in flight per node.
    let bound = LIMIT + (rate * 0.5).ceil() as u32 + 3;
    assert!(admitted <= bound, "{admitted} admitted, more than {bound}");
}
