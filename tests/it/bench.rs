//! The benchmark's load generator end to end: `warden-bench --only warden
//! --quick` against the real (debug) `warden` binary. Proves the generator
//! signs webhooks Warden accepts, opens authenticated streams, finds every
//! event on them, and writes the table — not Warden's speed (a debug build
//! on a shared machine says nothing about that).

use std::process::Command;

use serde_json::Value;

/// Runs `warden-bench --quick` with `args`; returns the table and the JSON figures.
fn run_quick(args: &[&str]) -> (String, Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (md, json) = (dir.path().join("latest.md"), dir.path().join("latest.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_warden-bench"))
        .arg("--quick")
        .args(args)
        .args(["--warden-bin", env!("CARGO_BIN_EXE_warden")])
        .arg("--out")
        .arg(&md)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("warden-bench runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "warden-bench failed: {stderr}");
    let table = std::fs::read_to_string(&md).expect("the table file");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), table.trim(), "stdout and --out differ");
    let text = std::fs::read_to_string(&json).expect("the json file");
    (table, serde_json::from_str(&text).expect("valid json"))
}

#[test]
fn quick_benchmark_against_warden_delivers_every_event_and_writes_the_table() {
    let (table, figures) = run_quick(&["--only", "warden"]);
    let fig = |k: &str| figures["Warden"][k].clone();
    assert!(table.contains("| scenario | figure | Warden | Node | Warden advantage |"));
    assert!(!table.contains("| error |"), "{table}");
    let fanouts = [
        ("fan-out to 1 (20 events at 50/s)", 20),
        ("fan-out to 100 (20 events at 50/s)", 2000),
    ];
    for (scenario, n) in fanouts {
        let key = format!("{scenario} / deliveries received / expected (duplicates)");
        assert_eq!(fig(&key), format!("{n} / {n} (0)").as_str(), "{table}");
        let statuses = fig(&format!("{scenario} / webhook statuses"));
        assert_eq!(statuses, "200×20", "{table}");
    }
    // Issue 23: the same fan-out over plain HTTP/1.1 and over TLS, and their p99 ratio.
    let plain = "fan-out to 1000 (10 events at 5/s)";
    let tls = "fan-out to 1000 over TLS HTTP/1.1 (10 events at 5/s)";
    for scenario in [plain, tls] {
        let key = format!("{scenario} / deliveries received / expected (duplicates)");
        assert_eq!(fig(&key), "10000 / 10000 (0)", "{table}");
    }
    let ratio = fig(&format!(
        "{tls} / delivery p99, TLS ÷ plain HTTP/1.1 (the step above)"
    ));
    assert!(ratio.as_f64().is_some_and(|r| r > 0.0), "{table}");
    let slow = "slow consumer (50 subscribers; 1× without and with, 20 events at 50/s per phase)";
    for phase in ["without", "with"] {
        let key =
            format!("{slow} / {phase} stalled client: deliveries received / expected (duplicates)");
        assert_eq!(fig(&key), "1000 / 1000 (0)", "{table}");
        let each = fig(&format!(
            "{slow} / {phase} stalled client: p99 ms of each phase"
        ));
        let one = each.as_str().and_then(|s| s.parse::<f64>().ok());
        assert!(one.is_some_and(|v| v > 0.0), "one phase a side: {table}");
    }
    let cut = fig(&format!("{slow} / stalled clients cut off by the server"));
    assert!(cut.as_str().is_some_and(|s| s.ends_with(" / 1")), "{table}");
    let flood = "webhook ingest (16 in flight, 2 s)";
    let accepted = fig(&format!("{flood} / accepted webhooks/s (2xx)"));
    assert!(accepted.as_f64().is_some_and(|r| r > 0.0), "{table}");
    let statuses = fig(&format!("{flood} / statuses"));
    let only_200 = statuses
        .as_str()
        .is_some_and(|s| s.starts_with("200×") && !s.contains(','));
    assert!(only_200, "{table}");
    let held = fig("idle 200 connections (2 s hold) / still open at end of hold");
    assert_eq!(held, "200 / 200", "{table}");
    assert_eq!(
        fig("connection storm (300 connects) / statuses"),
        "200×300",
        "{table}"
    );
}

/// The floor (`--serve-floor`) takes the same fan-out steps and delivers
/// every event once, so its figures are the same measurement as Warden's.
#[test]
fn quick_floor_delivers_every_event_and_gets_its_columns() {
    // Its own ports: the other test's servers may be starting at the same time.
    let args = [
        "--only",
        "floor",
        "--scenarios",
        "fanout,flood,slow",
        "--port-base",
        "18700",
    ];
    let (table, figures) = run_quick(&args);
    assert!(
        table
            .contains("| scenario | figure | Warden | Node | Warden advantage | floor | × floor |"),
        "{table}"
    );
    assert!(!table.contains("| error |"), "{table}");
    assert!(
        !table.contains("webhook ingest"),
        "the floor runs fan-out only: {table}"
    );
    assert!(!table.contains("slow consumer"), "{table}");
    for (scenario, n) in [
        ("fan-out to 1 (20 events at 50/s)", 20),
        ("fan-out to 100 (20 events at 50/s)", 2000),
    ] {
        let key = format!("{scenario} / deliveries received / expected (duplicates)");
        assert_eq!(
            figures["floor"][&key],
            format!("{n} / {n} (0)").as_str(),
            "{table}"
        );
        let statuses = &figures["floor"][format!("{scenario} / webhook statuses")];
        assert_eq!(statuses, "200×20", "{table}");
    }
}
