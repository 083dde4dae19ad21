use std::collections::{BTreeMap, BTreeSet};

use super::*;

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

#[test]
fn rendered_metrics_parse_as_exposition_and_carry_the_counts() {
    let m = Metrics::new();
    m.webhook("accepted");
    m.webhook("accepted");
    m.webhook("invalid_signature");
    m.sse_connection(3);
    m.sse_connection(-1);
    m.sse_refusal("per_ip_limit");
    m.deliveries(7);
    m.slow_consumer_cut();
    m.replay_reset();
    m.webhook_to_enqueue(Duration::from_millis(2));
    m.enqueue_to_write(Duration::from_secs(10));
    m.lockout();
    m.rate_limit_hit("api");
    m.security_event(EventType::WebhookReplay);
    m.audit_dropped();
    m.alert("sent");
    let text = m.render();
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        samples.get(r#"warden_webhooks_total{result="accepted"}"#),
        Some(&2.0),
        "{text}"
    );
    assert_eq!(
        samples.get(r#"warden_webhooks_total{result="invalid_signature"}"#),
        Some(&1.0)
    );
    assert_eq!(samples.get("warden_sse_connections"), Some(&2.0));
    assert_eq!(samples.get("warden_deliveries_total"), Some(&7.0));
    assert_eq!(
        samples.get(r#"warden_security_events_total{type="WEBHOOK_REPLAY"}"#),
        Some(&1.0)
    );
    assert_eq!(
        samples.get(r#"warden_webhook_to_enqueue_seconds_bucket{le="0.0025"}"#),
        Some(&1.0)
    );
    assert_eq!(
        samples.get(r#"warden_webhook_to_enqueue_seconds_bucket{le="0.001"}"#),
        Some(&0.0)
    );
    // 10 s is above every finite bucket: only +Inf holds it.
    assert_eq!(
        samples.get(r#"warden_enqueue_to_write_seconds_bucket{le="2.5"}"#),
        Some(&0.0)
    );
    assert_eq!(
        samples.get(r#"warden_enqueue_to_write_seconds_bucket{le="+Inf"}"#),
        Some(&1.0)
    );
    assert_eq!(m.audit_dropped_count(), 1);
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    for f in [
        "warden_lockouts",
        "warden_rate_limit_hits",
        "warden_slow_consumer_cuts",
        "warden_replay_resets",
        "warden_audit_dropped",
    ] {
        assert!(families.contains(f), "{f} missing:\n{text}");
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
