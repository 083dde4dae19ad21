//! Revocation cuts live access: the open streams and unused tickets whose
//! token was signed by a revoked key end within 15 s (SPEC "Keys and tokens").

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden::clock::Clock;

use crate::keys::Home;
use crate::support::{self, Sse};

/// Waits until the server ends `sse`; returns how long that took.
async fn ends_within(sse: &mut Sse, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while !sse.ended() {
        if start.elapsed() > limit {
            return None;
        }
        let _ = sse.next(Duration::from_millis(250)).await;
    }
    Some(start.elapsed())
}

fn field(stdout: &str, name: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("{name} not printed: {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_key_with_the_cli_ends_its_streams_and_unused_tickets() {
    let home = Home::new("");
    let created = home.ok(&["keys", "create"]);
    let (id, secret) = (field(&created, "api_key:"), field(&created, "api_secret:"));
    let s = support::spawn(&format!(
        "livekit: {{keys_file: {}}}",
        home.key_file().display()
    ))
    .await;
    let token = support::access_token(&id, &secret, "viewer", json!({"roomList": true}), 3600);
    let mut doomed = Sse::open(&format!("{}/api/events", s.url), Some(&token), &[]).await;
    assert_eq!(doomed.status, 200, "{}", doomed.body);
    assert!(
        doomed
            .next_named("snapshot", Duration::from_secs(5))
            .await
            .is_some()
    );
    let mut other = Sse::watch_all(&s.url).await;
    assert_eq!(other.status, 200);
    let ticket: Value = support::client()
        .post(format!("{}/api/auth/sse-token", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .expect("ticket")
        .json()
        .await
        .expect("json");
    let ticket = ticket["token"].as_str().expect("ticket").to_owned();

    home.ok(&["keys", "revoke", &id]);
    let took = ends_within(&mut doomed, Duration::from_secs(15))
        .await
        .expect("the stream of the revoked key was not ended within 15 s");
    eprintln!("stream ended {took:?} after the CLI revoked its key");
    let r = support::client()
        .get(format!("{}/api/events?token={ticket}", s.url))
        .send()
        .await
        .expect("redeem");
    assert_eq!(r.status(), 401, "an unused ticket of the revoked key");
    // The stream of another key lives on.
    let body = support::room_started("after", "RM_after_revoke");
    assert_eq!(support::deliver(&s.url, &body).await, 200);
    let ev = other
        .next_named("room_started", Duration::from_secs(5))
        .await
        .expect("the other stream still gets events");
    assert!(ev.data.contains("RM_after_revoke"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retiring_key_ends_its_streams_when_its_overlap_ends() {
    let clock = Clock::manual(Clock::system().now_ms());
    let s = support::spawn_clocked(
        "key_rotation: {overlap_period_minutes: 1}",
        &[],
        clock.clone(),
    )
    .await;
    let (id, secret) = s
        .state
        .keys
        .create_key(clock.now_ms(), "test")
        .expect("key");
    let token = support::access_token(
        &id,
        secret.expose(),
        "viewer",
        json!({"roomList": true}),
        86_400,
    );
    let mut sse = Sse::open(&format!("{}/api/events", s.url), Some(&token), &[]).await;
    assert_eq!(sse.status, 200, "{}", sse.body);
    s.state
        .keys
        .rotate(clock.now_ms(), true, "test")
        .expect("rotate");
    // Retiring: still verifies during the overlap.
    assert!(sse.next(Duration::from_secs(2)).await.is_some(), "snapshot");
    let _ = sse.next(Duration::from_millis(1500)).await;
    assert!(!sse.ended(), "ended during the overlap");
    clock.advance(Duration::from_secs(61));
    let took = ends_within(&mut sse, Duration::from_secs(15))
        .await
        .expect("not ended when the overlap ended");
    assert!(took < Duration::from_secs(5), "{took:?}");
    s.stop().await;
}
