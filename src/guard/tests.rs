//! Guard behaviour with a manual clock and a real in-memory audit sink.

mod limits;
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
    s.parse()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .expect("test net")
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
        Self {
            guard: Guard::new(&cfg, clock.clone(), audit.clone()),
            clock,
            audit,
        }
    }

    fn events(&self, kind: EventType) -> Vec<NewEvent> {
        self.audit
            .recent()
            .into_iter()
            .filter(|e| e.kind == kind)
            .collect()
    }

    /// Five failed requests: the client is locked out.
    fn lock_out(&self, addr: &str) {
        for _ in 0..5 {
            self.fail(addr);
        }
        assert!(self.guard.is_blocked(ip(addr)));
    }

    /// One request that fails authentication: admitted, then answered 401.
    fn fail(&self, addr: &str) -> FailureOutcome {
        assert!(
            self.guard.check_api(ip(addr)).is_ok(),
            "{addr} refused before failing"
        );
        self.guard
            .record_auth_failure(ip(addr), None, Some("3f2a9c1d"))
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
        let r = rig
            .guard
            .check_api(ip("198.51.100.1"))
            .expect_err("locked out");
        assert_eq!(
            (r.kind, r.retry_after_secs),
            (RefusalKind::LockedOut, Some(900))
        );
    }
    assert!(
        rig.guard.check_api(ip("198.51.100.2")).is_ok(),
        "the neighbour is not affected"
    );
    assert_eq!(rig.events(EventType::SuspiciousLogin).len(), 1);
    let mfa = rig.events(EventType::MultipleFailedAuth);
    assert_eq!(mfa.len(), 1);
    assert_eq!(mfa[0].severity, Severity::High);
    assert_eq!(mfa[0].identity.as_deref(), Some("3f2a9c1d"));
    assert_eq!(
        rig.events(EventType::IpBlocked).len(),
        1,
        "one IP_BLOCKED per lockout, not per request"
    );
    assert_eq!(
        rig.guard.blocked(),
        vec![Blocked {
            client: "198.51.100.1".into(),
            until_ms: T0 + 900_000
        }]
    );
    assert_eq!(rig.guard.stats().active_lockouts, 1);
}

#[test]
fn lockout_expires_and_the_client_starts_afresh() {
    let rig = Rig::new(|_| {});
    rig.lock_out("198.51.100.1");
    rig.clock.advance(Duration::from_millis(900_000 - 1));
    let r = rig
        .guard
        .check_api(ip("198.51.100.1"))
        .expect_err("still locked");
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
        rig.guard
            .record_auth_failure(ip(a), Some("APIvictimkey1"), None);
        let expected = usize::from(n == 4);
        assert_eq!(
            rig.events(EventType::MultipleFailedAuth).len(),
            expected,
            "after {} clients",
            n + 1
        );
    }
    let e = &rig.events(EventType::MultipleFailedAuth)[0];
    assert_eq!(
        (e.key_id.as_deref(), e.severity),
        (Some("APIvictimkey1"), Severity::High)
    );
    assert_eq!(
        e.details.get("distinct_clients"),
        Some(&serde_json::json!(5))
    );
    // Correctly signed requests with that key, from those clients and others, all pass.
    for a in ips.iter().map(String::as_str).chain(["192.0.2.77"]) {
        assert!(rig.guard.check_webhook(ip(a)).is_ok(), "{a}");
        assert!(rig.guard.check_api(ip(a)).is_ok(), "{a}");
        rig.guard.record_auth_success(ip(a), Some("APIvictimkey1"));
        assert!(!rig.guard.is_blocked(ip(a)));
    }
    assert!(rig.guard.blocked().is_empty());
    assert_eq!(
        rig.events(EventType::MultipleFailedAuth).len(),
        1,
        "once per window"
    );
}

#[test]
fn a_locked_out_webhook_source_is_admitted_only_pending_its_signature_else_429() {
    let rig = Rig::new(|_| {});
    for _ in 0..5 {
        let a = rig.guard.check_webhook(ip("192.0.2.10")).expect("admitted");
        assert_eq!(a.locked_until_ms, None);
        rig.guard
            .record_auth_failure(ip("192.0.2.10"), Some("APIlivekit"), None);
    }
    // Admitted, with the condition attached; no IP_BLOCKED yet (nothing was refused).
    let a = rig
        .guard
        .check_webhook(ip("192.0.2.10"))
        .expect("a locked-out source may still bring a valid signature");
    assert_eq!(a.locked_until_ms, Some(T0 + 900_000));
    assert!(a.rate.is_some(), "the webhook rate limit still applies");
    assert!(rig.events(EventType::IpBlocked).is_empty());
    // What ingest answers when the signature does not verify: the lockout, once reported.
    for _ in 0..2 {
        let r = rig
            .guard
            .webhook_lockout(ip("192.0.2.10"), a.locked_until_ms.expect("locked"));
        assert_eq!(
            (r.kind, r.retry_after_secs),
            (RefusalKind::LockedOut, Some(900))
        );
    }
    assert_eq!(rig.events(EventType::IpBlocked).len(), 1);
    assert_eq!(
        rig.guard
            .check_api(ip("192.0.2.10"))
            .expect_err("locked out")
            .kind,
        RefusalKind::LockedOut
    );
    // The neighbour is unaffected.
    let n = rig.guard.check_webhook(ip("192.0.2.11")).expect("admitted");
    assert_eq!(n.locked_until_ms, None);
}

#[test]
fn ipv6_rotation_within_one_prefix_is_one_client() {
    let rig = Rig::new(|_| {});
    for n in 1..=5 {
        rig.fail(&format!("2001:db8:aa:bb::{n:x}"));
    }
    let r = rig
        .guard
        .check_api(ip("2001:db8:aa:bb:1234:5678:9abc:def0"))
        .expect_err("same /64");
    assert_eq!(r.kind, RefusalKind::LockedOut);
    assert!(
        rig.guard.check_api(ip("2001:db8:aa:bc::1")).is_ok(),
        "another /64"
    );
    assert_eq!(rig.guard.blocked()[0].client, "2001:db8:aa:bb::/64");
    // A /56 prefix folds both together.
    let wide = Rig::new(|c| c.suspicious_activity.ipv6_prefix_length = 56);
    for n in 1..=5 {
        wide.fail(&format!("2001:db8:aa:{n:x}::1"));
    }
    assert!(wide.guard.check_api(ip("2001:db8:aa:ff::1")).is_err());
}

#[test]
fn ipv4_mapped_is_the_ipv4_client_and_does_not_merge_others() {
    let rig = Rig::new(|_| {});
    rig.lock_out("::ffff:198.51.100.9");
    assert_eq!(
        rig.guard
            .check_api(ip("198.51.100.9"))
            .expect_err("same client")
            .kind,
        RefusalKind::LockedOut
    );
    assert!(rig.guard.check_api(ip("198.51.100.10")).is_ok());
    assert!(rig.guard.check_api(ip("::ffff:198.51.100.10")).is_ok());
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let rig = Rig::new(|c| c.server.trusted_proxies = vec![net("10.0.0.0/8")]);
    let junk = ",".repeat(10_240);
    let lines = [
        "6.6.6.6, bogus",
        "198.51.100.4:1234, 10.0.0.7",
        junk.as_str(),
    ];
    assert_eq!(
        rig.guard.client_ip(ip("10.0.0.1"), &lines),
        ip("198.51.100.4")
    );
    assert_eq!(
        rig.guard.client_ip(ip("192.0.2.1"), &lines),
        ip("192.0.2.1")
    );
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
    assert_eq!(
        mfa[0].details.get("locked"),
        Some(&serde_json::json!(false))
    );
    assert_eq!(rig.guard.stats().auth_failures_total, 20);
}

#[test]
fn blocklist_is_refused_everywhere_and_reported_once_per_period() {
    let rig = Rig::new(|c| c.suspicious_activity.blocklist = vec![net("203.0.113.0/24")]);
    for _ in 0..3 {
        let r = rig
            .guard
            .check_api(ip("203.0.113.50"))
            .expect_err("blocked");
        assert_eq!((r.kind, r.retry_after_secs), (RefusalKind::Blocked, None));
        assert_eq!(
            rig.guard
                .check_webhook(ip("::ffff:203.0.113.50"))
                .expect_err("blocked")
                .kind,
            RefusalKind::Blocked
        );
    }
    assert_eq!(rig.events(EventType::IpBlocked).len(), 1);
    rig.clock.advance(Duration::from_secs(15 * 60));
    assert!(rig.guard.check_api(ip("203.0.113.50")).is_err());
    assert_eq!(rig.events(EventType::IpBlocked).len(), 2);
    assert!(
        !rig.guard.unblock(ip("203.0.113.50")),
        "config cannot be unblocked"
    );
    assert!(rig.guard.check_api(ip("203.0.114.1")).is_ok());
}

#[test]
fn unblock_lifts_a_lockout() {
    let rig = Rig::new(|_| {});
    rig.lock_out("198.51.100.1");
    assert!(rig.guard.is_blocked(ip("198.51.100.1")));
    assert!(
        rig.guard
            .unblock(parse_client("198.51.100.1").expect("address"))
    );
    assert!(
        !rig.guard.unblock(ip("198.51.100.1")),
        "nothing left to lift"
    );
    assert!(rig.guard.check_api(ip("198.51.100.1")).is_ok());
    assert_eq!(rig.guard.failure_count(ip("198.51.100.1")), 0);
    assert!(rig.guard.blocked().is_empty());
    assert!(parse_client("not an ip").is_err());
    assert_eq!(
        parse_client("2001:db8::/64").expect("cidr"),
        ip("2001:db8::")
    );
}

#[test]
fn a_refusal_decided_by_the_cluster_looks_like_a_local_one() {
    let rig = Rig::new(|c| c.suspicious_activity.rate_limit_per_minute = 3);
    let (near, far) = (ip("198.51.100.20"), ip("198.51.100.21"));
    let far_key = rig.guard.client_key(far);
    // Before sharing is enabled (one node), the cluster's word is ignored.
    rig.guard
        .apply_shared_rate_limits(&[(far_key, Policy::Api, T0 + 20_000)]);
    assert!(rig.guard.check_api(far).is_ok());
    assert!(rig.guard.take_rate_deltas().is_empty(), "nothing counted");

    rig.guard.enable_shared_rates();
    for _ in 0..3 {
        assert!(rig.guard.check_api(near).is_ok());
    }
    let local = rig.guard.check_api(near).expect_err("over the local limit");
    let deltas = rig.guard.take_rate_deltas();
    assert_eq!(
        deltas,
        [RateDelta {
            client: rig.guard.client_key(near),
            policy: Policy::Api,
            count: 3
        }],
        "admitted requests only"
    );
    // Another node found `far` over the limit; its window ends in 20 s.
    rig.guard
        .apply_shared_rate_limits(&[(far_key, Policy::Api, T0 + 20_000)]);
    let shared = rig
        .guard
        .check_api(far)
        .expect_err("refused by the cluster");
    assert_eq!(shared, local, "same kind, rate state and retry");
    let rate = shared.rate.as_ref().expect("rate state");
    assert_eq!(
        (rate.policy_name, rate.limit, rate.window_secs),
        ("api", 3, 60)
    );
    assert_eq!(
        (rate.remaining, rate.reset_secs, shared.retry_after_secs),
        (0, 20, Some(20))
    );
    assert!(rig.guard.check_webhook(far).is_ok(), "per policy");
    let scoped = rig.events(EventType::RateLimitExceeded);
    assert!(
        scoped
            .iter()
            .any(|e| e.details.get("scope").and_then(|v| v.as_str()) == Some("cluster")),
        "{scoped:?}"
    );
    rig.clock.advance(Duration::from_secs(20));
    assert!(rig.guard.check_api(far).is_ok(), "the window ended");
}
