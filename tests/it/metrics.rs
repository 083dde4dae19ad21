//! `/metrics` as Prometheus sees it: a real scrape checked by Debian's
//! `promtool` (scripts/test.sh installs the `prometheus` package) in both
//! formats, content negotiation, and the shipped alert rules (`promtool
//! check rules` and their unit tests) and Grafana dashboard (its PromQL
//! checked by promtool) against a real scrape.
//!
//! A test with a real Prometheus scraping Warden was tried and left out:
//! Prometheus 2.42 applies discovered targets on a fixed 5 s tick, so the
//! second scrape comes 7–8 s after start on an idle machine and over 10 s on
//! a busy one.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `GET /metrics` from loopback with `accept`: (content type, vary, body).
async fn scrape(base: &str, accept: Option<&str>) -> (String, String, String) {
    let mut req = support::client().get(format!("{base}/metrics"));
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = req.send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (ct, vary) = (header("content-type"), header("vary"));
    (ct, vary, r.text().await.expect("body"))
}

/// The sample names of an exposition (`x_total`, `x_bucket`, …).
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The value of one series, exactly as written (labels included).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

/// Every `warden_*` and `process_*` name in a PromQL text.
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in promql.match_indices(['w', 'p']) {
        let rest = &promql[i..];
        let before = promql[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        if rest.starts_with("warden_") || rest.starts_with("process_") {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            out.insert(rest[..end].to_owned());
        }
    }
    out
}

/// `promtool args…` with `stdin`: (success, stdout + stderr).
fn promtool(args: &[&str], dir: &Path, stdin: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (scripts/test.sh installs the prometheus package)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A server with a key of its own (next to the environment's) that has
/// seen a webhook, an SSE refusal, a token in a query string and an unknown
/// path with a secret-looking segment. Returns the owned key's id too.
async fn busy_server() -> (support::TestServer, String) {
    let s = support::spawn("").await;
    let (key_id, _) = s
        .state
        .keys
        .create_key(s.state.clock.now_ms(), "test")
        .expect("an owned key");
    let c = support::client();
    let body = support::room_started("metrics-room", "RM_metrics");
    assert_eq!(support::deliver(&s.url, &body).await, 200);
    for path in [
        "/api/events",
        "/api/rooms?token=leak-me-not",
        "/no/such/secret-path",
    ] {
        let r = c.get(format!("{}{path}", s.url)).send().await.expect("req");
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
    }
    (s, key_id)
}

#[tokio::test]
async fn a_real_scrape_passes_promtool_and_counts_routes_never_paths() {
    let (s, key_id) = busy_server().await;
    let (_, _, text) = scrape(&s.url, Some("text/plain")).await;
    let (ok, said) = promtool(&["check", "metrics"], Path::new("."), &text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");
    for (series, want) in [
        (r#"warden_webhooks_total{result="accepted"}"#, 1.0),
        (r#"warden_webhooks_total{result="rate_limited"}"#, 0.0),
        (r#"warden_sse_refusals_total{reason="unauthorized"}"#, 1.0),
        (r#"warden_sse_refusals_total{reason="global_limit"}"#, 0.0),
        (
            r#"warden_security_events_total{type="SUBJECT_ERASED"}"#,
            0.0,
        ),
        (
            r#"warden_http_requests_total{route="/webhooks/livekit",status="2xx"}"#,
            1.0,
        ),
        (
            r#"warden_http_requests_total{route="/api/rooms",status="4xx"}"#,
            1.0,
        ),
        (
            r#"warden_http_requests_total{route="/api/events",status="4xx"}"#,
            1.0,
        ),
        (
            r#"warden_http_requests_total{route="other",status="4xx"}"#,
            1.0,
        ),
        (
            r#"warden_http_request_duration_seconds_count{route="/api/rooms"}"#,
            1.0,
        ),
        ("warden_rooms", 1.0),
        ("warden_participants", 0.0),
        ("warden_agents", 0.0),
        (r#"warden_keys{state="active"}"#, 2.0),
        ("warden_key_rotation_due", 0.0),
        ("warden_alert_queue_depth", 0.0),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series}:\n{text}");
    }
    let version = format!(
        "warden_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&version), "{text}");
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        let v = value(&text, name).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        assert!(v > 0.0, "{name} = {v}");
    }
    let age = value(&text, "warden_key_age_seconds").expect("the owned key's age");
    assert!((0.0..60.0).contains(&age), "{age}");
    // Request-controlled text, rooms, key ids and addresses never become label values.
    for leak in [
        "leak-me-not",
        "secret-path",
        "metrics-room",
        "RM_metrics",
        support::KEY,
        &key_id,
        "127.0.0.1",
    ] {
        assert!(!text.contains(leak), "{leak} in:\n{text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn accept_picks_text_or_openmetrics_and_the_response_varies_on_it() {
    let (s, _) = busy_server().await;
    for accept in [
        None,
        Some("text/plain"),
        Some("*/*"),
        Some("text/plain;version=0.0.4"),
    ] {
        let (ct, vary, text) = scrape(&s.url, accept).await;
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8", "{accept:?}");
        assert!(vary.eq_ignore_ascii_case("accept"), "{vary}");
        assert!(
            text.contains("# TYPE warden_webhooks_total counter\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{accept:?}");
    }
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for accept in ["application/openmetrics-text", prometheus] {
        let (ct, vary, text) = scrape(&s.url, Some(accept)).await;
        assert_eq!(
            ct,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert!(vary.eq_ignore_ascii_case("accept"), "{vary}");
        assert!(text.ends_with("\n# EOF\n"), "{text}");
        assert!(text.contains("# TYPE warden_webhooks counter\n"), "{text}");
        assert!(
            text.contains("# TYPE process_cpu_seconds counter\n"),
            "{text}"
        );
        assert!(text.contains("\nwarden_webhooks_total{result=\"accepted\"} 1\n"));
        assert!(!text.contains("# TYPE warden_webhooks_total"), "{text}");
        // Prometheus' own OpenMetrics parser reads it: promtool's backfill,
        // which wants a timestamp on every sample.
        let stamped: String = text
            .lines()
            .map(|l| {
                if l.starts_with('#') {
                    format!("{l}\n")
                } else {
                    format!("{l} 1700000000\n")
                }
            })
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("scrape.om"), stamped).expect("write");
        let args = [
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "scrape.om",
            "blocks",
        ];
        let (ok, said) = promtool(&args, dir.path(), "");
        assert!(ok, "{said}\n{text}");
    }
    s.stop().await;
}

#[tokio::test]
async fn alert_rules_pass_promtool_and_their_unit_tests_on_metrics_that_exist() {
    let dir = repo("deploy/prometheus");
    let (ok, said) = promtool(&["check", "rules", "alerts.yml"], &dir, "");
    assert!(ok && said.contains("SUCCESS: 11 rules found"), "{said}");
    let (ok, said) = promtool(&["test", "rules", "alerts.test.yml"], &dir, "");
    assert!(ok && said.contains("SUCCESS"), "{said}");
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).expect("alerts.yml");
    let (s, _) = busy_server().await;
    let (_, _, text) = scrape(&s.url, None).await;
    let names = sample_names(&text);
    let used = metric_names(&rules);
    assert!(used.len() >= 10, "{used:?}");
    for name in &used {
        // warden_redis_up exists in cluster mode only (redis_up_follows_redis_in_cluster_mode).
        assert!(
            names.contains(name) || name == "warden_redis_up",
            "{name} is not in a scrape"
        );
    }
    s.stop().await;
}

/// Every PromQL expression in the Grafana dashboard.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(repo("deploy/grafana/warden.json")).expect("warden.json");
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    assert_eq!(dash["uid"], "warden");
    let panels = dash["panels"].as_array().expect("panels");
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 30, "{exprs:?}");
    exprs
}

#[tokio::test]
async fn the_grafana_dashboard_parses_and_queries_only_metrics_that_exist() {
    let exprs = dashboard_queries();
    let (s, _) = busy_server().await;
    let (_, _, text) = scrape(&s.url, None).await;
    let names = sample_names(&text);
    let mut used = BTreeSet::new();
    for e in &exprs {
        let found = metric_names(e);
        assert!(!found.is_empty(), "queries no Warden metric: {e}");
        used.extend(found);
    }
    for name in &used {
        assert!(
            names.contains(name) || name == "warden_redis_up",
            "{name} is not in a scrape"
        );
    }
    // Each query is valid PromQL: promtool checks it as a recording rule
    // (Grafana's variables replaced by what they stand for).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        let quoted = serde_json::to_string(&e).expect("json string");
        rules.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {quoted}\n"
        ));
    }
    std::fs::write(dir.path().join("dashboard.yml"), &rules).expect("rules");
    let (ok, said) = promtool(&["check", "rules", "dashboard.yml"], dir.path(), "");
    assert!(ok, "{said}\n{rules}");
    // The main families each have a panel.
    for family in [
        "warden_webhooks_total",
        "warden_http_requests_total",
        "warden_http_request_duration_seconds_bucket",
        "warden_sse_connections",
        "warden_security_events_total",
        "warden_rooms",
        "warden_participants",
        "warden_key_rotation_due",
        "process_resident_memory_bytes",
    ] {
        assert!(used.contains(family), "no panel shows {family}");
    }
    s.stop().await;
}

#[tokio::test]
async fn sse_refusals_are_counted_by_reason_and_open_streams_by_gauge() {
    let s = support::spawn(
        "realtime: {max_connections: 3, max_connections_per_ip: 1}\nserver: {trusted_proxies: [127.0.0.1]}",
    )
    .await;
    let url = format!("{}/api/events", s.url);
    let tok = support::list_token();
    let open = |ip: &'static str| {
        let (url, tok) = (url.clone(), tok.clone());
        async move { support::Sse::open(&url, Some(&tok), &[("x-forwarded-for", ip)]).await }
    };
    let a1 = open("198.51.100.1").await;
    let b1 = open("198.51.100.2").await;
    assert_eq!((a1.status, b1.status), (200, 200));
    assert_eq!(open("198.51.100.1").await.status, 429);
    let c1 = open("198.51.100.3").await;
    assert_eq!(c1.status, 200);
    assert_eq!(open("198.51.100.4").await.status, 503);
    // Through the trusted proxy, as a client on its host (loopback).
    let text = support::client()
        .get(format!("{}/metrics", s.url))
        .header("x-forwarded-for", "127.0.0.1")
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    for (series, want) in [
        (r#"warden_sse_refusals_total{reason="per_ip_limit"}"#, 1.0),
        (r#"warden_sse_refusals_total{reason="global_limit"}"#, 1.0),
        (r#"warden_sse_refusals_total{reason="unauthorized"}"#, 0.0),
        ("warden_sse_connections", 3.0),
        (
            r#"warden_http_requests_total{route="/api/events",status="2xx"}"#,
            3.0,
        ),
        (
            r#"warden_http_requests_total{route="/api/events",status="4xx"}"#,
            1.0,
        ),
        (
            r#"warden_http_requests_total{route="/api/events",status="5xx"}"#,
            1.0,
        ),
    ] {
        assert_eq!(value(&text, series), Some(want), "{series}:\n{text}");
    }
    drop((a1, b1, c1));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_up_follows_redis_in_cluster_mode() {
    let mut redis = crate::cluster::server::RedisServer::start();
    let yaml = format!(
        "storage: {{backend: redis, redis_url: \"{}\"}}",
        redis.url()
    );
    let s = support::spawn(&yaml).await;
    let (_, _, text) = scrape(&s.url, None).await;
    assert_eq!(value(&text, "warden_redis_up"), Some(1.0), "{text}");
    let (ok, said) = promtool(&["check", "metrics"], Path::new("."), &text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}");
    assert!(!text.contains(&redis.url()), "the Redis URL stays out");
    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut up = Some(1.0);
    while up != Some(0.0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        up = value(&scrape(&s.url, None).await.2, "warden_redis_up");
    }
    assert_eq!(up, Some(0.0), "Redis down shows as 0");
    s.stop().await;
}
