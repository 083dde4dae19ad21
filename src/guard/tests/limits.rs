//! Rate limits, their headers, usage anomalies and the memory cap.

use super::*;

fn params(items: &[sf::Item]) -> Vec<(String, i64)> {
    items[0]
        .1
        .iter()
        .map(|(k, v)| (k.clone(), if let sf::Bare::Int(i) = v { *i } else { -1 }))
        .collect()
}

#[test]
fn rate_limit_headers_are_structured_fields() {
    let rig = Rig::new(|c| c.suspicious_activity.rate_limit_per_minute = 3);
    let ok = rig
        .guard
        .check_api(ip("198.51.100.1"))
        .expect("first request");
    // The headers are written by the HTTP layer, from the guard's numbers.
    let headers = |rate: Option<&RateInfo>| -> std::collections::HashMap<_, _> {
        crate::http::error::rate_limit_headers(rate.expect("rate state"))
            .into_iter()
            .collect()
    };
    let h = headers(ok.rate.as_ref());
    let policy = sf::parse_list(&h["RateLimit-Policy"]).expect("RateLimit-Policy is an sf-list");
    assert_eq!(policy[0].0, sf::Bare::Str("api".into()));
    assert_eq!(params(&policy), [("q".into(), 3), ("w".into(), 60)]);
    let limit = sf::parse_list(&h["RateLimit"]).expect("RateLimit is an sf-list");
    assert_eq!(params(&limit), [("r".into(), 2), ("t".into(), 20)]);
    rig.guard.check_api(ip("198.51.100.1")).expect("second");
    rig.guard.check_api(ip("198.51.100.1")).expect("third");
    let r = rig
        .guard
        .check_api(ip("198.51.100.1"))
        .expect_err("fourth is over the limit");
    assert_eq!(
        (r.kind, r.retry_after_secs),
        (RefusalKind::RateLimited, Some(20))
    );
    let h = headers(r.rate.as_ref());
    assert_eq!(
        params(&sf::parse_list(&h["RateLimit"]).expect("sf-list")),
        [("r".into(), 0), ("t".into(), 20)]
    );
    rig.clock.advance(Duration::from_secs(20));
    assert!(
        rig.guard.check_api(ip("198.51.100.1")).is_ok(),
        "one more after one period"
    );
}

#[test]
fn rate_limit_events_are_deduplicated_per_client_and_window() {
    let rig = Rig::new(|c| c.suspicious_activity.rate_limit_per_minute = 5);
    let refused = (0..50)
        .filter(|_| rig.guard.check_api(ip("198.51.100.1")).is_err())
        .count();
    assert_eq!(refused, 45);
    assert_eq!(rig.events(EventType::RateLimitExceeded).len(), 1);
    assert!((0..10).any(|_| rig.guard.check_api(ip("198.51.100.2")).is_err()));
    assert_eq!(
        rig.events(EventType::RateLimitExceeded).len(),
        2,
        "another client, another event"
    );
    rig.clock.advance(Duration::from_secs(61));
    for _ in 0..10 {
        let _ = rig.guard.check_api(ip("198.51.100.1"));
    }
    assert_eq!(
        rig.events(EventType::RateLimitExceeded).len(),
        3,
        "next window"
    );
    assert_eq!(
        rig.guard.stats().rate_limited_total,
        45 + 1 + 5,
        "any() stops at the first refusal of client 2"
    );
}

#[test]
fn webhook_and_sse_limits_are_separate_policies() {
    let rig = Rig::new(|c| {
        c.webhooks.rate_limit_per_minute = 2;
        c.webhooks.allowed_ips = vec![net("192.0.2.0/24")];
        c.realtime.max_connections_per_ip = 3;
    });
    let r = rig
        .guard
        .check_webhook(ip("198.51.100.1"))
        .expect_err("not an allowed source");
    assert_eq!(r.kind, RefusalKind::NotAllowedSource);
    assert!(
        rig.guard.check_webhook(ip("192.0.2.1")).is_ok()
            && rig.guard.check_webhook(ip("192.0.2.1")).is_ok()
    );
    let r = rig
        .guard
        .check_webhook(ip("192.0.2.1"))
        .expect_err("webhook limit");
    assert_eq!(
        (r.kind, r.rate.as_ref().map(|i| i.policy_name)),
        (RefusalKind::RateLimited, Some("webhook"))
    );
    assert!(
        rig.guard.check_api(ip("192.0.2.1")).is_ok(),
        "the API budget is untouched"
    );
    assert!((0..3).all(|_| rig.guard.check_sse_connect(ip("192.0.2.1")).is_ok()));
    let r = rig
        .guard
        .check_sse_connect(ip("192.0.2.1"))
        .expect_err("connect burst spent");
    assert_eq!(
        (r.retry_after_secs, r.rate.map(|i| (i.limit, i.window_secs))),
        (Some(1), Some((3, 3)))
    );
    rig.clock.advance(Duration::from_secs(1));
    assert!(rig.guard.check_sse_connect(ip("192.0.2.1")).is_ok());
}

#[test]
fn unusual_usage_on_threshold_for_clients_and_keys() {
    let rig = Rig::new(|c| c.suspicious_activity.unusual_usage_threshold = 10);
    for _ in 0..10 {
        rig.guard
            .record_api_usage("/api/rooms", ip("198.51.100.1"), Duration::from_millis(3));
        rig.guard
            .record_auth_success(ip("198.51.100.1"), Some("APIkey"));
    }
    assert!(rig.events(EventType::UnusualApiUsage).is_empty());
    for _ in 0..5 {
        rig.guard
            .record_api_usage("/api/rooms", ip("198.51.100.1"), Duration::from_millis(3));
        rig.guard
            .record_auth_success(ip("198.51.100.2"), Some("APIkey")); // keys count across clients
    }
    let ev = rig.events(EventType::UnusualApiUsage);
    assert_eq!(ev.len(), 2, "one per subject per hour: {ev:?}");
    assert!(
        ev.iter()
            .any(|e| e.details.get("endpoint") == Some(&serde_json::json!("/api/rooms")))
    );
    assert!(ev.iter().any(|e| e.key_id.as_deref() == Some("APIkey")));
    assert!(
        rig.guard.check_api(ip("198.51.100.1")).is_ok(),
        "alert only, never a block"
    );
    let s = rig.guard.stats();
    assert_eq!(
        (
            s.api_requests_total,
            s.api_response_micros_total,
            s.anomalies_total
        ),
        (15, 45_000, 2)
    );
}

#[test]
fn record_auth_attempt_wraps_success_and_failure() {
    let rig = Rig::new(|_| {});
    assert_eq!(
        rig.guard
            .record_auth_attempt(ip("198.51.100.1"), true, None),
        None
    );
    let out = rig
        .guard
        .record_auth_attempt(ip("198.51.100.1"), false, Some("ab12cd34"))
        .expect("a failure");
    assert_eq!(out.failures_in_window, 1);
}

#[test]
fn a_million_distinct_sources_stay_within_the_cap() {
    let cap = 100_000;
    let rig = Rig::new(|c| c.suspicious_activity.max_tracked_clients = cap);
    rig.lock_out("198.51.100.1"); // a lockout that must survive
    let start = std::time::Instant::now();
    for n in 0..1_000_000u32 {
        let a = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + n));
        assert!(rig.guard.check_api(a).is_ok());
        if n % 2 == 0 {
            rig.guard
                .record_auth_failure(a, Some(&format!("APIspray{}", n % 5000)), None);
        }
    }
    let s = rig.guard.stats();
    eprintln!(
        "1e6 sources: {:?}, tracked {} clients / {} keys, ~{} KiB, {} evictions",
        start.elapsed(),
        s.tracked_clients,
        s.tracked_keys,
        s.approx_memory_bytes / 1024,
        s.evictions_total
    );
    assert!(
        s.tracked_clients <= cap && s.tracked_clients >= cap * 9 / 10,
        "{}",
        s.tracked_clients
    );
    assert!(s.tracked_keys <= cap / 10);
    // ≈ 48 MB at the cap by the estimate in state.rs.
    assert!(
        s.approx_memory_bytes < 64 << 20,
        "{}",
        s.approx_memory_bytes
    );
    assert!(
        rig.guard.check_api(ip("198.51.100.1")).is_err(),
        "the lockout survived the spray"
    );
}
