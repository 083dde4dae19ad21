//! Guard behaviour with a manual clock and a real in-memory audit sink.

mod sf;

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::audit::{Audit, EventType, NewEvent, Severity};
use crate::clock::Clock;
use crate::config::Config;

const T0: i64 = 1_700_000_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn net(s: &str) -> IpNet {
    s.parse().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).expect("test net")
}

struct Rig {
    guard: Guard,
    clock: Clock,
    audit: Audit,
}

impl Rig {
    fn new(edit: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = Config::defaults();
        edit(&mut cfg);
        let clock = Clock::manual(T0);
        let audit = Audit::in_memory();
        Self { guard: Guard::new(&cfg, clock.clone(), audit.clone()), clock, audit }
    }

    fn events(&self, kind: EventType) -> Vec<NewEvent> {
        self.audit.recent().into_iter().filter(|e| e.kind == kind).collect()
    }

    /// One request that fails authentication: admitted, then answered 401.
    fn fail(&self, addr: &str) -> FailureOutcome {
        assert!(self.guard.check_api(ip(addr)).is_ok(), "{addr} refused before failing");
        self.guard.record_auth_failure(ip(addr), None, Some("3f2a9c1d"))
    }
}

#[test]
fn fifth_failure_is_answered_and_sixth_request_refused() {
    let rig = Rig::new(|_| {});
    for n in 1..=4 {
        let out = rig.fail("198.51.100.1");
        assert_eq!((out.failures_in_window, out.locked_until_ms), (n, None));
    }
    let fifth = rig.fail("198.51.100.1"); // this one still got its 401
    assert!(fifth.newly_locked);
    assert_eq!(fifth.locked_until_ms, Some(T0 + 15 * 60_000));
    for _ in 0..3 {
        let r = rig.guard.check_api(ip("198.51.100.1")).expect_err("locked out");
        assert_eq!((r.kind, r.status, r.retry_after_secs), (RefusalKind::LockedOut, 403, Some(900)));
        assert!(r.headers().contains(&("Retry-After", "900".into())));
    }
    assert!(rig.guard.check_api(ip("198.51.100.2")).is_ok(), "the neighbour is not affected");
    assert_eq!(rig.events(EventType::SuspiciousLogin).len(), 1);
    let mfa = rig.events(EventType::MultipleFailedAuth);
    assert_eq!(mfa.len(), 1);
    assert_eq!(mfa[0].severity, Severity::High);
    assert_eq!(mfa[0].identity.as_deref(), Some("3f2a9c1d"));
    assert_eq!(rig.events(EventType::IpBlocked).len(), 1, "one IP_BLOCKED per lockout, not per request");
    assert_eq!(rig.guard.blocked(), vec![Blocked { client: "198.51.100.1".into(), until_ms: T0 + 900_000 }]);
    assert_eq!(rig.guard.stats().active_lockouts, 1);
}

#[test]
fn lockout_expires_and_the_client_starts_afresh() {
    let rig = Rig::new(|_| {});
    (0..5).for_each(|_| drop(rig.fail("198.51.100.1")));
    rig.clock.advance(Duration::from_millis(900_000 - 1));
    let r = rig.guard.check_api(ip("198.51.100.1")).expect_err("still locked");
    assert_eq!(r.retry_after_secs, Some(1));
    rig.clock.advance(Duration::from_millis(1));
    assert!(rig.guard.check_api(ip("198.51.100.1")).is_ok());
    assert_eq!(rig.fail("198.51.100.1").failures_in_window, 1);
    assert!(rig.guard.blocked().is_empty());
}

#[test]
fn failures_against_one_key_from_many_clients_alert_but_block_nothing() {
    let rig = Rig::new(|_| {});
    let ips: Vec<String> = (1..=5).map(|n| format!("203.0.113.{n}")).collect();
    for (n, a) in ips.iter().enumerate() {
        assert!(rig.guard.check_webhook(ip(a)).is_ok());
        rig.guard.record_auth_failure(ip(a), Some("APIvictimkey1"), None);
        let expected = usize::from(n == 4);
        assert_eq!(rig.events(EventType::MultipleFailedAuth).len(), expected, "after {} clients", n + 1);
    }
    let e = &rig.events(EventType::MultipleFailedAuth)[0];
    assert_eq!((e.key_id.as_deref(), e.severity), (Some("APIvictimkey1"), Severity::High));
    assert_eq!(e.details.get("distinct_clients"), Some(&serde_json::json!(5)));
    // Correctly signed requests with that key, from those clients and others, all pass.
    for a in ips.iter().map(String::as_str).chain(["192.0.2.77"]) {
        assert!(rig.guard.check_webhook(ip(a)).is_ok(), "{a}");
        assert!(rig.guard.check_api(ip(a)).is_ok(), "{a}");
        rig.guard.record_auth_success(ip(a), Some("APIvictimkey1"));
        assert!(!rig.guard.is_blocked(ip(a)));
    }
    assert!(rig.guard.blocked().is_empty());
    assert_eq!(rig.events(EventType::MultipleFailedAuth).len(), 1, "once per window");
}

#[test]
fn a_locked_out_webhook_source_gets_429_so_livekit_retries() {
    let rig = Rig::new(|_| {});
    for _ in 0..5 {
        assert!(rig.guard.check_webhook(ip("192.0.2.10")).is_ok());
        rig.guard.record_auth_failure(ip("192.0.2.10"), Some("APIlivekit"), None);
    }
    let r = rig.guard.check_webhook(ip("192.0.2.10")).expect_err("locked out");
    assert_eq!((r.kind, r.status, r.retry_after_secs), (RefusalKind::LockedOut, 429, Some(900)));
    assert_eq!(rig.guard.check_api(ip("192.0.2.10")).expect_err("locked out").status, 403);
}

#[test]
fn ipv6_rotation_within_one_prefix_is_one_client() {
    let rig = Rig::new(|_| {});
    for n in 1..=5 {
        rig.fail(&format!("2001:db8:aa:bb::{n:x}"));
    }
    let r = rig.guard.check_api(ip("2001:db8:aa:bb:1234:5678:9abc:def0")).expect_err("same /64");
    assert_eq!(r.kind, RefusalKind::LockedOut);
    assert!(rig.guard.check_api(ip("2001:db8:aa:bc::1")).is_ok(), "another /64");
    assert_eq!(rig.guard.blocked()[0].client, "2001:db8:aa:bb::/64");
    // A /56 prefix folds both together.
    let wide = Rig::new(|c| c.suspicious_activity.ipv6_prefix_length = 56);
    (1..=5).for_each(|n| drop(wide.fail(&format!("2001:db8:aa:{n:x}::1"))));
    assert!(wide.guard.check_api(ip("2001:db8:aa:ff::1")).is_err());
}

#[test]
fn ipv4_mapped_is_the_ipv4_client_and_does_not_merge_others() {
    let rig = Rig::new(|_| {});
    (0..5).for_each(|_| drop(rig.fail("::ffff:198.51.100.9")));
    assert_eq!(rig.guard.check_api(ip("198.51.100.9")).expect_err("same client").kind, RefusalKind::LockedOut);
    assert!(rig.guard.check_api(ip("198.51.100.10")).is_ok());
    assert!(rig.guard.check_api(ip("::ffff:198.51.100.10")).is_ok());
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let rig = Rig::new(|c| c.server.trusted_proxies = vec![net("10.0.0.0/8")]);
    let junk = ",".repeat(10_240);
    let lines = ["6.6.6.6, bogus", "198.51.100.4:1234, 10.0.0.7", junk.as_str()];
    assert_eq!(rig.guard.client_ip(ip("10.0.0.1"), &lines), ip("198.51.100.4"));
    assert_eq!(rig.guard.client_ip(ip("192.0.2.1"), &lines), ip("192.0.2.1"));
}

#[test]
fn allowlisted_clients_are_never_locked_out_but_failures_are_recorded() {
    let rig = Rig::new(|c| c.suspicious_activity.allowlist = vec![net("192.0.2.0/24")]);
    for _ in 0..20 {
        let out = rig.fail("192.0.2.5");
        assert!(out.allowlisted && out.locked_until_ms.is_none());
    }
    assert!(rig.guard.check_api(ip("192.0.2.5")).is_ok());
    assert_eq!(rig.guard.failure_count(ip("192.0.2.5")), 5);
    let mfa = rig.events(EventType::MultipleFailedAuth);
    assert_eq!(mfa.len(), 1);
    assert_eq!(mfa[0].details.get("locked"), Some(&serde_json::json!(false)));
    assert_eq!(rig.guard.stats().auth_failures_total, 20);
}

#[test]
fn blocklist_is_refused_everywhere_and_reported_once_per_period() {
    let rig = Rig::new(|c| c.suspicious_activity.blocklist = vec![net("203.0.113.0/24")]);
    for _ in 0..3 {
        let r = rig.guard.check_api(ip("203.0.113.50")).expect_err("blocked");
        assert_eq!((r.kind, r.status, r.retry_after_secs), (RefusalKind::Blocked, 403, None));
        assert_eq!(rig.guard.check_webhook(ip("::ffff:203.0.113.50")).expect_err("blocked").status, 403);
    }
    assert_eq!(rig.events(EventType::IpBlocked).len(), 1);
    rig.clock.advance(Duration::from_secs(15 * 60));
    assert!(rig.guard.check_api(ip("203.0.113.50")).is_err());
    assert_eq!(rig.events(EventType::IpBlocked).len(), 2);
    assert!(!rig.guard.unblock(ip("203.0.113.50")), "config cannot be unblocked");
    assert!(rig.guard.check_api(ip("203.0.114.1")).is_ok());
}

#[test]
fn unblock_lifts_a_lockout() {
    let rig = Rig::new(|_| {});
    (0..5).for_each(|_| drop(rig.fail("198.51.100.1")));
    assert!(rig.guard.is_blocked(ip("198.51.100.1")));
    assert!(rig.guard.unblock(parse_client("198.51.100.1").expect("address")));
    assert!(!rig.guard.unblock(ip("198.51.100.1")), "nothing left to lift");
    assert!(rig.guard.check_api(ip("198.51.100.1")).is_ok());
    assert_eq!(rig.guard.failure_count(ip("198.51.100.1")), 0);
    assert!(rig.guard.blocked().is_empty());
    assert!(parse_client("not an ip").is_err());
    assert_eq!(parse_client("2001:db8::/64").expect("cidr"), ip("2001:db8::"));
}

fn params(items: &[sf::Item]) -> Vec<(String, i64)> {
    items[0].1.iter().map(|(k, v)| (k.clone(), if let sf::Bare::Int(i) = v { *i } else { -1 })).collect()
}

#[test]
fn rate_limit_headers_are_structured_fields() {
    let rig = Rig::new(|c| c.suspicious_activity.rate_limit_per_minute = 3);
    let ok = rig.guard.check_api(ip("198.51.100.1")).expect("first request");
    let h: std::collections::HashMap<_, _> = ok.headers().into_iter().collect();
    let policy = sf::parse_list(&h["RateLimit-Policy"]).expect("RateLimit-Policy is an sf-list");
    assert_eq!(policy[0].0, sf::Bare::Str("api".into()));
    assert_eq!(params(&policy), [("q".into(), 3), ("w".into(), 60)]);
    let limit = sf::parse_list(&h["RateLimit"]).expect("RateLimit is an sf-list");
    assert_eq!(params(&limit), [("r".into(), 2), ("t".into(), 20)]);
    rig.guard.check_api(ip("198.51.100.1")).expect("second");
    rig.guard.check_api(ip("198.51.100.1")).expect("third");
    let r = rig.guard.check_api(ip("198.51.100.1")).expect_err("fourth is over the limit");
    assert_eq!((r.kind, r.status, r.retry_after_secs), (RefusalKind::RateLimited, 429, Some(20)));
    let h: std::collections::HashMap<_, _> = r.headers().into_iter().collect();
    assert_eq!(params(&sf::parse_list(&h["RateLimit"]).expect("sf-list")), [("r".into(), 0), ("t".into(), 20)]);
    assert_eq!(h["Retry-After"], "20");
    rig.clock.advance(Duration::from_secs(20));
    assert!(rig.guard.check_api(ip("198.51.100.1")).is_ok(), "one more after one period");
}

#[test]
fn rate_limit_events_are_deduplicated_per_client_and_window() {
    let rig = Rig::new(|c| c.suspicious_activity.rate_limit_per_minute = 5);
    let refused = (0..50).filter(|_| rig.guard.check_api(ip("198.51.100.1")).is_err()).count();
    assert_eq!(refused, 45);
    assert_eq!(rig.events(EventType::RateLimitExceeded).len(), 1);
    assert!((0..10).any(|_| rig.guard.check_api(ip("198.51.100.2")).is_err()));
    assert_eq!(rig.events(EventType::RateLimitExceeded).len(), 2, "another client, another event");
    rig.clock.advance(Duration::from_secs(61));
    (0..10).for_each(|_| drop(rig.guard.check_api(ip("198.51.100.1"))));
    assert_eq!(rig.events(EventType::RateLimitExceeded).len(), 3, "next window");
    assert_eq!(rig.guard.stats().rate_limited_total, 45 + 1 + 5, "any() stops at the first refusal of client 2");
}

#[test]
fn webhook_and_sse_limits_are_separate_policies() {
    let rig = Rig::new(|c| {
        c.webhooks.rate_limit_per_minute = 2;
        c.webhooks.allowed_ips = vec![net("192.0.2.0/24")];
        c.realtime.max_connections_per_ip = 3;
    });
    let r = rig.guard.check_webhook(ip("198.51.100.1")).expect_err("not an allowed source");
    assert_eq!((r.kind, r.status), (RefusalKind::NotAllowedSource, 403));
    assert!(rig.guard.check_webhook(ip("192.0.2.1")).is_ok() && rig.guard.check_webhook(ip("192.0.2.1")).is_ok());
    let r = rig.guard.check_webhook(ip("192.0.2.1")).expect_err("webhook limit");
    assert_eq!((r.status, r.rate.as_ref().map(|i| i.policy_name)), (429, Some("webhook")));
    assert!(rig.guard.check_api(ip("192.0.2.1")).is_ok(), "the API budget is untouched");
    assert!((0..3).all(|_| rig.guard.check_sse_connect(ip("192.0.2.1")).is_ok()));
    let r = rig.guard.check_sse_connect(ip("192.0.2.1")).expect_err("connect burst spent");
    assert_eq!((r.retry_after_secs, r.rate.map(|i| (i.limit, i.window_secs))), (Some(1), Some((3, 3))));
    rig.clock.advance(Duration::from_secs(1));
    assert!(rig.guard.check_sse_connect(ip("192.0.2.1")).is_ok());
}

#[test]
fn unusual_usage_on_threshold_for_clients_and_keys() {
    let rig = Rig::new(|c| c.suspicious_activity.unusual_usage_threshold = 10);
    for _ in 0..10 {
        rig.guard.record_api_usage("/api/rooms", ip("198.51.100.1"), Duration::from_millis(3));
        rig.guard.record_auth_success(ip("198.51.100.1"), Some("APIkey"));
    }
    assert!(rig.events(EventType::UnusualApiUsage).is_empty());
    for _ in 0..5 {
        rig.guard.record_api_usage("/api/rooms", ip("198.51.100.1"), Duration::from_millis(3));
        rig.guard.record_auth_success(ip("198.51.100.2"), Some("APIkey")); // keys count across clients
    }
    let ev = rig.events(EventType::UnusualApiUsage);
    assert_eq!(ev.len(), 2, "one per subject per hour: {ev:?}");
    assert!(ev.iter().any(|e| e.details.get("endpoint") == Some(&serde_json::json!("/api/rooms"))));
    assert!(ev.iter().any(|e| e.key_id.as_deref() == Some("APIkey")));
    assert!(rig.guard.check_api(ip("198.51.100.1")).is_ok(), "alert only, never a block");
    let s = rig.guard.stats();
    assert_eq!((s.api_requests_total, s.api_response_micros_total, s.anomalies_total), (15, 45_000, 2));
}

#[test]
fn record_auth_attempt_wraps_success_and_failure() {
    let rig = Rig::new(|_| {});
    assert_eq!(rig.guard.record_auth_attempt(ip("198.51.100.1"), true, None), None);
    let out = rig.guard.record_auth_attempt(ip("198.51.100.1"), false, Some("ab12cd34")).expect("a failure");
    assert_eq!(out.failures_in_window, 1);
}

#[test]
fn a_million_distinct_sources_stay_within_the_cap() {
    let cap = 100_000;
    let rig = Rig::new(|c| c.suspicious_activity.max_tracked_clients = cap);
    (0..5).for_each(|_| drop(rig.fail("198.51.100.1"))); // a lockout that must survive
    let start = std::time::Instant::now();
    for n in 0..1_000_000u32 {
        let a = IpAddr::from(std::net::Ipv4Addr::from(0x0b00_0000 + n));
        assert!(rig.guard.check_api(a).is_ok());
        if n % 2 == 0 {
            rig.guard.record_auth_failure(a, Some(&format!("APIspray{}", n % 5000)), None);
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
    assert!(s.tracked_clients <= cap && s.tracked_clients >= cap * 9 / 10, "{}", s.tracked_clients);
    assert!(s.tracked_keys <= cap / 10);
    // ≈ 32 MiB at the cap by the estimate in state.rs (allocated, so up to 2× the in-use size).
    assert!(s.approx_memory_bytes < 64 << 20, "{}", s.approx_memory_bytes);
    assert!(rig.guard.check_api(ip("198.51.100.1")).is_err(), "the lockout survived the spray");
}
