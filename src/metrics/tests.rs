use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::guard::GuardStats;
use crate::hub::HubStats;

/// A small checker of the text exposition format (Prometheus 0.0.4 / OpenMetrics):
/// `# HELP`/`# TYPE`/`# UNIT` lines, samples `name{k="v",…} value`, every sample
/// belonging to a declared family, `# EOF` last. Returns the samples by full series text.
fn parse_exposition(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let mut lines: Vec<&str> = text.lines().collect();
    if lines.last() == Some(&"# EOF") {
        lines.pop();
    }
    for (n, line) in lines.iter().enumerate() {
        let err = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !valid_name(name) {
                return Err(err("bad metric name"));
            }
            match kw {
                "HELP" | "UNIT" => {}
                "TYPE" => {
                    let t = parts.next().unwrap_or("");
                    if ![
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "untyped",
                        "unknown",
                    ]
                    .contains(&t)
                    {
                        return Err(err("bad type"));
                    }
                    if families.insert(name.to_owned(), t.to_owned()).is_some() {
                        return Err(err("family declared twice"));
                    }
                }
                _ => return Err(err("unknown comment keyword")),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| err("no value"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| err("value is not a number"))?,
        };
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                check_labels(
                    labels
                        .strip_suffix('}')
                        .ok_or_else(|| err("unclosed labels"))?,
                )
                .map_err(|e| err(&e))?;
                name
            }
            None => series,
        };
        if !valid_name(name) {
            return Err(err("bad sample name"));
        }
        let declared = ["", "_total", "_bucket", "_sum", "_count", "_created"]
            .iter()
            .any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| families.contains_key(base))
            });
        if !declared {
            return Err(err("sample of an undeclared family"));
        }
        samples.insert(series.to_owned(), value);
    }
    Ok(samples)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn check_labels(mut s: &str) -> Result<(), String> {
    while !s.is_empty() {
        let (key, rest) = s.split_once("=\"").ok_or("label without =\"")?;
        if !valid_name(key) {
            return Err(format!("bad label name {key:?}"));
        }
        let mut escaped = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                let close = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                close
            })
            .map(|(i, _)| i)
            .ok_or("unterminated label value")?;
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
    Ok(())
}

fn render(m: &Metrics, format: Format) -> (String, BTreeMap<String, f64>) {
    let text = m.render(format, &Readings::default());
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (text, samples)
}

#[test]
fn every_labelled_series_exists_at_zero_before_anything_happens() {
    let m = Metrics::new();
    let (text, samples) = render(&m, Format::Text);
    let zero = |series: &str| {
        assert_eq!(samples.get(series), Some(&0.0), "{series} missing:\n{text}");
    };
    for t in EventType::ALL {
        zero(&format!(
            "warden_security_events_total{{type=\"{}\"}}",
            t.as_str()
        ));
    }
    for r in WEBHOOK_RESULTS {
        zero(&format!("warden_webhooks_total{{result=\"{r}\"}}"));
    }
    for r in SSE_REFUSALS {
        zero(&format!("warden_sse_refusals_total{{reason=\"{r}\"}}"));
    }
    for s in RATE_LIMIT_SCOPES {
        zero(&format!("warden_rate_limit_hits_total{{scope=\"{s}\"}}"));
    }
    for o in ["sent", "failed", "refused", "deduplicated", "dropped"] {
        zero(&format!("warden_alerts_total{{outcome=\"{o}\"}}"));
    }
    for r in ["per_ip_limit", "total_limit", "fd_exhausted"] {
        zero(&format!("warden_tcp_refusals_total{{reason=\"{r}\"}}"));
    }
    for r in ["revoked", "stalled", "expired"] {
        zero(&format!("warden_sse_cuts_total{{reason=\"{r}\"}}"));
    }
    for route in ROUTES {
        for class in STATUS_CLASSES {
            zero(&format!(
                "warden_http_requests_total{{route=\"{route}\",status=\"{class}\"}}"
            ));
        }
        zero(&format!(
            "warden_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}}"
        ));
    }
    zero("warden_active_lockouts");
    zero("warden_key_rotation_due");
    assert_eq!(
        samples.get(&format!(
            "warden_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        Some(&1.0)
    );
    // A single node has no Redis: the family is declared, with no sample.
    assert!(text.contains("# TYPE warden_redis_up gauge"), "{text}");
    assert!(!samples.keys().any(|k| k.starts_with("warden_redis_up")));
}

#[test]
fn counts_land_in_their_series_and_readings_are_shown() {
    let m = Metrics::new();
    m.webhook("accepted");
    m.webhook("accepted");
    m.webhook("unauthorized");
    m.webhook("some_new_code"); // an unlisted error code: `other`
    m.sse_connection(3);
    m.sse_connection(-1);
    m.sse_refusal("per_ip_limit");
    m.webhook_to_enqueue(Duration::from_millis(2));
    m.webhook_lag(-5); // a sender clock ahead: 0 s
    m.webhook_lag(45_000);
    m.security_event(EventType::WebhookReplay);
    m.audit_dropped();
    m.alert("sent");
    m.http_request(Some("/api/rooms"), 200, Duration::from_micros(300));
    m.http_request(Some("/api/rooms"), 404, Duration::from_millis(3));
    // A raw path is never a label: it is not a route template.
    m.http_request(
        Some("/api/rooms?token=secret"),
        503,
        Duration::from_secs(20),
    );
    m.http_request(None, 404, Duration::from_millis(1));
    let readings = Readings {
        hub: HubStats {
            rooms: 2,
            participants: 5,
            agents: 1,
            delivered_frames: 7,
            ..HubStats::default()
        },
        guard: GuardStats {
            rate_limited_by_policy: [1, 2, 3],
            active_lockouts: 4,
            lockouts_total: 6,
            ..GuardStats::default()
        },
        keys: KeyReadings {
            by_state: [1, 2, 0],
            oldest_active_age_seconds: Some(90.5),
            rotation_due: true,
        },
        alert_queue: 3,
        redis_up: Some(false),
    };
    let text = m.render(Format::Text, &readings);
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let expect = [
        (r#"warden_webhooks_total{result="accepted"}"#, 2.0),
        (r#"warden_webhooks_total{result="unauthorized"}"#, 1.0),
        (r#"warden_webhooks_total{result="other"}"#, 1.0),
        ("warden_sse_connections", 2.0),
        (r#"warden_sse_refusals_total{reason="per_ip_limit"}"#, 1.0),
        (
            r#"warden_webhook_to_enqueue_seconds_bucket{le="0.001"}"#,
            0.0,
        ),
        (
            r#"warden_webhook_to_enqueue_seconds_bucket{le="0.0025"}"#,
            1.0,
        ),
        (r#"warden_webhook_lag_seconds_bucket{le="0.5"}"#, 1.0),
        (r#"warden_webhook_lag_seconds_bucket{le="30.0"}"#, 1.0),
        (r#"warden_webhook_lag_seconds_bucket{le="+Inf"}"#, 2.0),
        ("warden_webhook_lag_seconds_sum", 45.0),
        (
            r#"warden_security_events_total{type="WEBHOOK_REPLAY"}"#,
            1.0,
        ),
        ("warden_audit_dropped_total", 1.0),
        (r#"warden_alerts_total{outcome="sent"}"#, 1.0),
        (
            r#"warden_http_requests_total{route="/api/rooms",status="2xx"}"#,
            1.0,
        ),
        (
            r#"warden_http_requests_total{route="/api/rooms",status="4xx"}"#,
            1.0,
        ),
        (
            r#"warden_http_requests_total{route="other",status="5xx"}"#,
            1.0,
        ),
        (
            r#"warden_http_requests_total{route="other",status="4xx"}"#,
            1.0,
        ),
        (
            r#"warden_http_request_duration_seconds_bucket{route="/api/rooms",le="0.0005"}"#,
            1.0,
        ),
        (
            r#"warden_http_request_duration_seconds_count{route="/api/rooms"}"#,
            2.0,
        ),
        (
            r#"warden_http_request_duration_seconds_bucket{route="other",le="10.0"}"#,
            1.0,
        ),
        ("warden_rooms", 2.0),
        ("warden_participants", 5.0),
        ("warden_agents", 1.0),
        ("warden_deliveries_total", 7.0),
        (r#"warden_rate_limit_hits_total{scope="sse"}"#, 3.0),
        ("warden_active_lockouts", 4.0),
        ("warden_lockouts_total", 6.0),
        (r#"warden_keys{state="retiring"}"#, 2.0),
        ("warden_key_age_seconds", 90.5),
        ("warden_key_rotation_due", 1.0),
        ("warden_alert_queue_depth", 3.0),
        ("warden_redis_up", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(samples.get(series), Some(&value), "{series}:\n{text}");
    }
    assert!(!text.contains("secret"), "{text}");
    assert_eq!(m.audit_dropped_count(), 1);
}

#[test]
fn both_formats_declare_every_family_with_help_and_type() {
    let m = Metrics::new();
    for format in [Format::Text, Format::OpenMetrics] {
        let (text, _) = render(&m, format);
        let declared = |kw: &str| -> BTreeSet<String> {
            text.lines()
                .filter_map(|l| l.strip_prefix(kw))
                .filter_map(|l| l.split(' ').next())
                .map(str::to_owned)
                .collect()
        };
        let (help, types) = (declared("# HELP "), declared("# TYPE "));
        assert_eq!(help, types, "{format:?}");
        assert!(types.len() > 40, "{types:?}");
        let counter = if format == Format::Text {
            "warden_webhooks_total"
        } else {
            "warden_webhooks"
        };
        assert!(
            text.contains(&format!("# TYPE {counter} counter\n")),
            "{text}"
        );
        assert!(text.contains("warden_webhooks_total{result=\"accepted\"} 0\n"));
        assert_eq!(text.ends_with("\n# EOF\n"), format == Format::OpenMetrics);
        assert_eq!(
            text.matches("# EOF").count(),
            usize::from(format == Format::OpenMetrics)
        );
        // OpenMetrics: no family is declared with a `_total` suffix.
        if format == Format::OpenMetrics {
            assert!(!types.iter().any(|t| t.ends_with("_total")), "{types:?}");
        }
    }
}

#[test]
fn the_checker_rejects_malformed_exposition() {
    assert!(parse_exposition("# TYPE a counter\na_total 1\n# EOF").is_ok());
    assert!(
        parse_exposition("b_total 1\n").is_err(),
        "undeclared family"
    );
    assert!(
        parse_exposition("# TYPE a counter\na_total{x=\"1} 1\n").is_err(),
        "unterminated label"
    );
    assert!(
        parse_exposition("# TYPE a counter\na_total one\n").is_err(),
        "bad value"
    );
    assert!(parse_exposition("# TYPE 1a counter\n").is_err(), "bad name");
}

/// Every route the router serves is counted under its own template: a route
/// added to `http.rs` without its entry here would be counted as `other`.
#[test]
fn every_route_of_the_router_is_a_metric_route() {
    let src = include_str!("../http.rs");
    let mut found = 0;
    for part in src.split(".route(").skip(1) {
        let Some(template) = part
            .trim_start()
            .strip_prefix('"')
            .and_then(|t| t.split('"').next())
        else {
            continue;
        };
        found += 1;
        assert!(
            ROUTES.contains(&template),
            "{template} is served but not in metrics::ROUTES"
        );
    }
    assert!(found >= 15, "only {found} routes read from http.rs");
}
