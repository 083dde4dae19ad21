//! What an operator sees (#19): the start-up block and the log lines of a
//! real server, and the commands that talk to it — `status` (found through
//! the runtime file, exit codes), `unblock` from a locked-out host,
//! `ingestion pause|resume`, `audit tail -f --type --since` — plus the
//! command line's manners (broken pipes, hints, one-line errors).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Binary, SECRET};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

/// Log lines (JSON) of a server's output with `message`.
fn lines_with(output: &str, message: &str) -> Vec<Value> {
    output
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"] == message)
        .collect()
}

#[test]
fn status_finds_the_server_through_its_runtime_file_and_exits_1_when_it_is_gone() {
    let bin = Binary::new();
    let run_file = bin.dir.path().join("data").join("warden.run.json");
    // Not running: the local report on stdout, one line on stderr, exit 1.
    let o = bin.run(&["status"], "");
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(json_out(&o)["running"], false);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no instance answered"),
        "{}",
        stderr(&o)
    );

    // Started on a port the configuration does not know (--listen 127.0.0.1:0).
    let mut served = bin.serve(&[]);
    assert!(run_file.exists(), "serve wrote no runtime file");
    let o = bin.run(&["status"], "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let live = json_out(&o);
    assert_eq!(live["running"], true, "{live}");
    assert_eq!(live["instance"]["url"], served.url.as_str());
    assert_eq!(live["instance"]["pid"], served.child.id());
    assert!(live["checks"]["keys"]["status"] == "healthy", "{live}");
    // A fresh install is healthy: no alert sink is a choice, not a fault.
    assert_eq!(live["checks"]["alert_sink"]["status"], "healthy", "{live}");
    assert_eq!(live["overall_status"], "healthy", "{live}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains(SECRET));
    let o = bin.run(&["health"], "");
    assert_eq!(
        code(&o),
        0,
        "health follows the runtime file too: {}",
        stderr(&o)
    );

    // A clean stop removes the file; status then exits 1.
    served.terminate();
    assert!(!run_file.exists(), "the runtime file outlived the server");
    let o = bin.run(&["status", "--json"], "");
    assert_eq!(code(&o), 1);
    assert_eq!(json_out(&o)["running"], false);

    // A killed server leaves its file; the dead pid is recognised.
    let mut served = bin.serve(&[]);
    let pid = served.child.id();
    let _ = served.child.kill();
    let _ = served.child.wait();
    assert!(run_file.exists());
    let o = bin.run(&["status"], "");
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("pid {pid}, which is not running")),
        "{}",
        stderr(&o)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unblock_works_from_the_locked_out_host_itself() {
    let bin = Binary::new();
    let served = bin.serve(&[]);
    let c = support::client();
    let bad = support::access_token(
        support::KEY,
        "not-the-secret-0123456789012345678901",
        "x",
        serde_json::json!({"roomList": true}),
        60,
    );
    let mut last = 0;
    for _ in 0..8 {
        last = c
            .get(format!("{}/api/rooms", served.url))
            .bearer_auth(&bad)
            .send()
            .await
            .expect("req")
            .status()
            .as_u16();
    }
    assert_eq!(last, 403, "127.0.0.1 should be locked out by now");
    // The CLI runs on the locked-out host; its admin token is its way out.
    let o = bin.run(&["unblock", "127.0.0.1"], "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("unblocked 127.0.0.1"));
    let again = c
        .get(format!("{}/api/rooms", served.url))
        .bearer_auth(&bad)
        .send()
        .await
        .expect("req")
        .status();
    assert_eq!(again, 401, "the lockout was not lifted");
    // A wrong token still does not pass a lockout: lock out again, then try.
    for _ in 0..8 {
        let _ = c
            .get(format!("{}/api/rooms", served.url))
            .bearer_auth(&bad)
            .send()
            .await;
    }
    let r = c
        .get(format!("{}/api/security/status", served.url))
        .bearer_auth(&bad)
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 403, "a bad token passed a lockout");
    let o = bin.run(&["audit", "tail", "--type", "IP_BLOCKED", "--json"], "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let unblocks = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["details"]["action"] == "unblock")
        .count();
    assert_eq!(unblocks, 1, "the unblock is not in the audit log");
    let o = bin.run(&["unblock", "not-an-ip"], "");
    assert_eq!(code(&o), 2, "bad usage");
}

#[tokio::test(flavor = "multi_thread")]
async fn ingestion_pause_and_resume_from_the_command_line() {
    let bin = Binary::new();
    let served = bin.serve(&[]);
    let o = bin.run(&["ingestion", "pause"], "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let body = support::room_started("paused", "RM_paused");
    assert_eq!(support::deliver(&served.url, &body).await, 503);
    let o = bin.run(&["ingestion", "resume"], "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(support::deliver(&served.url, &body).await, 200);
    drop(served);
    let o = bin.run(&["ingestion", "pause"], "");
    assert_eq!(code(&o), 1, "no server: nothing to pause");
    assert!(
        stderr(&o).contains("no instance answered"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn audit_tail_filters_by_type_and_time_and_follows() {
    let bin = Binary::new();
    let _served = bin.serve(&[]);
    assert_eq!(code(&bin.run(&["ingestion", "pause"], "")), 0);
    assert_eq!(code(&bin.run(&["unblock", "192.0.2.7"], "")), 0);
    let o = bin.run(&["audit", "tail", "--type", "INGESTION_PAUSED"], "");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let types: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON lines off a terminal"))
        .map(|e| e["type"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(types, ["INGESTION_PAUSED"]);
    let o = bin.run(&["audit", "tail", "--since", "2999-01-01T00:00:00Z"], "");
    assert_eq!(code(&o), 0);
    assert!(o.stdout.is_empty(), "nothing is from the future");
    let o = bin.run(&["audit", "tail", "--since", "1h"], "");
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 2);
    let o = bin.run(&["audit", "tail", "--type", "INGESTON_PAUSED"], "");
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("did you mean INGESTION_PAUSED"),
        "{}",
        stderr(&o)
    );

    // -f: an event recorded after the start is printed within a few seconds.
    let mut follow = bin
        .command(&["audit", "tail", "-f", "-n", "1", "--type", "IP_BLOCKED"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let (tx, rx) = std::sync::mpsc::channel();
    let out = follow.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the last event");
    assert!(first.contains("192.0.2.7"), "{first}");
    assert_eq!(code(&bin.run(&["unblock", "198.51.100.9"], "")), 0);
    let next = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a followed event");
    assert!(next.contains("198.51.100.9"), "{next}");
    let _ = follow.kill();
    let _ = follow.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_says_what_happened_to_each_webhook_and_how_to_wire_livekit() {
    let bin = Binary::new();
    let mut served = bin.serve(&[]);
    let identity = format!("alice-{}", support::rand_hex());
    let body = support::participant_joined("standup", "RM_standup", "PA_a", &identity, "Alice");
    assert_eq!(support::deliver(&served.url, &body).await, 200);
    assert_eq!(support::deliver(&served.url, &body).await, 200);
    let r = support::client()
        .post(format!("{}/webhooks/livekit", served.url))
        .header("authorization", "garbage")
        .body(body.clone())
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    let r = support::client()
        .get(format!("{}/health", served.url))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    served.terminate();
    let out = served.output();

    let started = lines_with(&out, "warden started");
    assert_eq!(started.len(), 1, "{out}");
    let s = &started[0];
    assert_eq!(
        s["webhook_url"],
        format!("{}/webhooks/livekit", served.url).as_str()
    );
    assert_eq!(s["dashboard_url"], format!("{}/", served.url).as_str());
    assert_eq!(s["config"], "built-in defaults");
    assert_eq!(s["keys"], support::KEY);
    for field in [
        "version",
        "data_dir",
        "storage",
        "listen",
        "trusted_proxies",
    ] {
        assert!(s[field].is_string(), "{field} missing: {s}");
    }

    let accepted = lines_with(&out, "webhook accepted");
    assert_eq!(accepted.len(), 1, "one accepted, one duplicate: {out}");
    let a = &accepted[0];
    assert_eq!(a["level"], "INFO");
    assert_eq!(a["event"], "participant_joined");
    assert_eq!(a["room"], "standup");
    assert!(
        a["webhook.id"]
            .as_str()
            .is_some_and(|id| id.starts_with("EV_")),
        "{a}"
    );
    assert!(a["lag_ms"].as_i64().is_some_and(|l| l >= 0), "{a}");
    let ms = a["duration_ms"].as_f64().expect("duration_ms");
    assert_eq!((ms * 100.0).round() / 100.0, ms, "not rounded: {ms}");
    assert_eq!(lines_with(&out, "webhook duplicate").len(), 1, "{out}");
    let refused = lines_with(&out, "webhook refused");
    assert_eq!(refused.len(), 1, "{out}");
    assert!(refused[0]["reason"].is_string(), "{}", refused[0]);
    assert!(
        !out.contains(&identity),
        "an identity reached the log: {out}"
    );
    // Probes are DEBUG: not in an INFO log.
    assert!(
        !lines_with(&out, "request")
            .iter()
            .any(|l| l["http.route"] == "/health"),
        "{out}"
    );
    // The security event of the bad signature names its type, severity and source.
    let security = lines_with(&out, "security event");
    let bad = security
        .iter()
        .find(|l| l["security.type"] == "WEBHOOK_INVALID_SIGNATURE")
        .unwrap_or_else(|| panic!("no security event line: {out}"));
    assert_eq!(bad["security.severity"], "medium", "{bad}");
    assert_eq!(bad["security.source"], "127.0.0.1");
}

#[test]
fn a_closed_pipe_ends_quietly_and_errors_come_with_hints() {
    let bin = Binary::new();
    for args in [&["config", "defaults"][..], &["config", "check"]] {
        let mut child = bin
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // The reader goes away before the command writes (`| head -0`).
        drop(child.stdout.take());
        let o = child.wait_with_output().expect("wait");
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{args:?}: {}", stderr(&o));
    }
    bin.write_config("realtime:\n  histroy_size: 5\n");
    let o = bin.run(&["config", "check"], "");
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(e.contains("did you mean `history_size`?"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    bin.write_config("realtime: 5\n");
    let e = stderr(&bin.run(&["config", "check"], ""));
    assert!(
        e.contains("expected a section") && !e.contains("Raw"),
        "{e}"
    );
    // From a directory where warden never ran: say where it looked.
    let empty = Binary::without_keys();
    let e = stderr(&empty.run(&["token", "create", "--identity", "x"], ""));
    assert!(
        e.contains("data/keys.yaml") && e.contains("relative to"),
        "{e}"
    );
    let e = stderr(&empty.run(&["audit", "tail"], ""));
    assert!(e.contains("data/warden.db"), "{e}");
    // Each error said once, not "X: X".
    let e = stderr(&empty.run(&["--config", "/nonexistent/warden.yaml", "status"], ""));
    assert_eq!(e.matches("No such file").count(), 1, "{e}");
    let e = stderr(&empty.run(&["token", "inspect", "abc"], ""));
    assert_eq!(e.matches("found 1").count(), 1, "{e}");
    // --listen takes a host name.
    let o = bin.run(&["serve", "--listen", "localhost"], "");
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("HOST:PORT"), "{}", stderr(&o));
}

#[test]
fn serve_accepts_localhost_as_listen_address() {
    let bin = Binary::new();
    let mut child = bin
        .command(&["serve", "--listen", "localhost:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut listening = None;
    while Instant::now() < deadline && listening.is_none() {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            listening = line.strip_prefix("warden listening on ").map(str::to_owned);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let url = listening.expect("serve --listen localhost:0 did not start");
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
}
