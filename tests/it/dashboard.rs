//! The dashboard end to end, in Debian's real headless Chromium.
//!
//! Starts the built `warden serve` on a fixed free port in a temporary working
//! directory and runs `tests/browser/e2e.mjs` (Node + playwright-core) against
//! it. The script signs in, sends signed webhooks, checks hostile names, the
//! CSP, the admin panel and the non-admin view; when it prints `RESTART` this
//! test stops the server and answers `STOPPED` (the pages must show they are
//! offline), and on `START` starts it again on the same port and directory (a
//! new process, the same history and room state) and answers `RESTARTED` on
//! the script's stdin, so the page must resume without a reset; on `RESTART_FRESH` it
//! removes the database first (a new history) and answers `RESTARTED_FRESH`,
//! so the page must reset and say why in words. Screenshots land in `target/screenshots/`.
//!
//! Never skipped: without Chromium, Node or playwright-core the test fails and
//! says how to install them (`scripts/test.sh` does it on CI).
//!
//! Also here, in-process: the data of the page's pictures
//! (`GET /api/security/timeline`) and the counting of repeated denials that a
//! page retrying a refused stream would otherwise write one by one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden::audit::{EventType, StoredEvent};
use warden::clock::Clock;

use crate::support::{self, Binary, KEY, SECRET};

/// The whole browser run may take this long before the script is killed.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(300);

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Fails (never skips) when a tool the browser suite drives is missing.
fn require_browser_tools(root: &Path) -> PathBuf {
    let chromium = std::env::var_os("CHROMIUM_PATH")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let how = "install them with `scripts/test.sh` (CI does), or by hand: \
               `apt-get install -y chromium chromium-driver nodejs npm && npm ci --prefix tests/browser`";
    assert!(
        chromium.exists(),
        "Chromium not found at {} — {how}",
        chromium.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "`node` not found on PATH — {how}"
    );
    let pw = root.join("tests/browser/node_modules/playwright-core/package.json");
    assert!(
        pw.exists(),
        "playwright-core is not installed in tests/browser — {how}"
    );
    chromium
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// `GET /health` over a plain socket: true on a 200.
fn healthy(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// One `warden serve` process on a fixed port, its output in a log file.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `warden serve` and waits for `/health`. A restarted server may
    /// find the port briefly busy (it exits): it is retried until the deadline.
    fn start(bin: &Binary, port: u16, generation: u32) -> Server {
        let log = bin.dir.path().join(format!("serve-{generation}.log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut server = Server::spawn(bin, port, &log);
            while Instant::now() < deadline && !matches!(server.child.try_wait(), Ok(Some(_))) {
                if healthy(port) {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            assert!(
                Instant::now() < deadline,
                "warden did not become healthy:\n{}",
                server.output()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    fn spawn(bin: &Binary, port: u16, log: &Path) -> Server {
        let out = std::fs::File::create(log).expect("create the server log");
        let err = out.try_clone().expect("clone the log handle");
        let listen = format!("127.0.0.1:{port}");
        let child = bin
            .command(&["serve", "--listen", &listen])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn warden serve");
        Server {
            child,
            log: log.to_path_buf(),
        }
    }

    /// SIGTERM, then SIGKILL if it has not drained within 10 s.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills the script if it outlives [`SCRIPT_DEADLINE`], so a hung browser cannot hang CI.
fn watchdog(pid: u32) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if rx.recv_timeout(SCRIPT_DEADLINE).is_err() {
            eprintln!("dashboard e2e: the browser script ran past {SCRIPT_DEADLINE:?}; killing it");
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    tx
}

#[test]
fn dashboard_in_headless_chromium() {
    let root = repo_root();
    let chromium = require_browser_tools(&root);
    let bin = Binary::new();
    // A key of Warden's own store, so the admin panel has a key with an age to show.
    let created = bin.run(&["keys", "create"], "");
    assert!(
        created.status.success(),
        "warden keys create: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    // Tokens expire on the second (the expired-session step), and the pages of the
    // run, all from 127.0.0.1, share one client's API budget.
    bin.write_config(
        "webhooks: {leeway_seconds: 0}\nsuspicious_activity: {rate_limit_per_minute: 1000}\n",
    );
    let port = free_port();
    let mut server = Server::start(&bin, port, 0);
    let shots = root.join("target/screenshots");

    let mut script = Command::new("node")
        .arg("tests/browser/e2e.mjs")
        .current_dir(&root)
        .env("WARDEN_URL", format!("http://127.0.0.1:{port}"))
        .env("LIVEKIT_API_KEY", KEY)
        .env("LIVEKIT_API_SECRET", SECRET)
        .env("SCREENSHOT_DIR", &shots)
        .env("CHROMIUM_PATH", &chromium)
        .env("E2E_RESTART", "stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn node tests/browser/e2e.mjs");
    let done = watchdog(script.id());
    let mut stdin = script.stdin.take().expect("piped stdin");
    let stdout = script.stdout.take().expect("piped stdout");
    let mut report = String::new();
    let mut generation = 0;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the script's output");
        println!("{line}");
        report.push_str(&line);
        report.push('\n');
        if line.trim() == "RESTART" {
            // Stopped until the script has looked at its pages while Warden is unreachable.
            server.stop();
            writeln!(stdin, "STOPPED").expect("answer the script");
        }
        if line.trim() == "START" {
            generation += 1;
            server = Server::start(&bin, port, generation);
            writeln!(stdin, "RESTARTED").expect("answer the script");
        }
        if line.trim() == "RESTART_FRESH" {
            // A replaced data directory (keys and pepper kept): a new history, so a reset.
            server.stop();
            for f in ["warden.db", "warden.db-wal", "warden.db-shm"] {
                let _ = std::fs::remove_file(bin.dir.path().join("data").join(f));
            }
            generation += 1;
            server = Server::start(&bin, port, generation);
            writeln!(stdin, "RESTARTED_FRESH").expect("answer the script");
        }
    }
    let status = script.wait().expect("wait for the script");
    let _ = done.send(());
    server.stop();
    assert!(
        generation == 2,
        "the script never asked for both restarts:\n{report}"
    );
    assert!(
        status.success(),
        "the browser suite failed ({status}); screenshots in {}\n{report}\n--- server log ---\n{}",
        shots.display(),
        server.output()
    );
}

/// A valid token that may watch nothing: every stream request is a 403.
fn watch_nothing_token() -> String {
    support::access_token(
        KEY,
        SECRET,
        "no-rooms",
        json!({"roomJoin": true, "room": "lobby"}),
        3600,
    )
}

async fn timeline(base: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = support::client().get(format!("{base}/api/security/timeline"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("timeline request")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timeline_is_admin_only_and_counts_the_last_hour_per_minute() {
    let s = support::spawn("").await;
    let base = s.url.clone();
    let none = timeline(&base, None).await;
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.expect("json error");
    assert_eq!(body["error"], "unauthorized", "{body}");
    assert_eq!(
        timeline(&base, Some(&support::list_token())).await.status(),
        403
    );

    let first = support::room_started("tl-a", "RM_tl_a");
    assert_eq!(support::deliver(&base, &first).await, 200);
    let second = support::room_started("tl-b", "RM_tl_b");
    assert_eq!(support::deliver(&base, &second).await, 200);
    // A duplicate (LiveKit's retry) is acknowledged but not accepted again.
    assert_eq!(support::deliver(&base, &first).await, 200);
    let _open = support::Sse::watch_all(&base).await;
    s.state.audit.flush().await;

    let admin = support::admin_token();
    let resp = timeline(&base, Some(&admin)).await;
    assert_eq!(resp.status(), 200);
    let t: Value = resp.json().await.expect("timeline json");
    assert_eq!(t["bucket_seconds"], 60);
    let start =
        warden::clock::parse_rfc3339_ms(t["start"].as_str().expect("start")).expect("rfc3339");
    let now = s.state.clock.now_ms();
    assert_eq!(start % 60_000, 0, "buckets are whole minutes");
    assert!(
        (now - 3_600_000..=now - 3_540_000).contains(&start),
        "start {start} now {now}"
    );
    let hooks: Vec<u64> = serde_json::from_value(t["webhooks_accepted"].clone()).expect("series");
    assert_eq!(hooks.len(), 60);
    assert_eq!(hooks.iter().sum::<u64>(), 2, "{hooks:?}");
    assert_eq!(hooks[58] + hooks[59], 2, "in the newest minute(s)");
    let by_type = t["security_events"].as_object().expect("by type");
    assert_eq!(by_type.len(), EventType::ALL.len());
    for (kind, series) in by_type {
        assert_eq!(series.as_array().map(Vec::len), Some(60), "{kind}");
    }
    // The 403 above (a non-admin token) is one UNAUTHORIZED_ACCESS in this hour.
    let denials: u64 = serde_json::from_value::<Vec<u64>>(by_type["UNAUTHORIZED_ACCESS"].clone())
        .expect("series")
        .iter()
        .sum();
    assert_eq!(denials, 1);
    assert_eq!(t["connections"]["open"], 1, "{t}");
    assert_eq!(t["connections"]["max"], 1000);
    s.stop().await;
}

/// The stored `UNAUTHORIZED_ACCESS` events, oldest first.
async fn denials(s: &support::TestServer) -> Vec<StoredEvent> {
    s.state.audit.flush().await;
    let mut events = s
        .state
        .audit
        .query(Some(EventType::UnauthorizedAccess), None, 1000, None)
        .expect("query")
        .events;
    events.reverse();
    events
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_hammered_with_a_refused_token_is_one_event_then_one_summary() {
    let clock = Clock::manual(support::now() * 1000);
    let s = support::spawn_clocked("", &[], clock.clone()).await;
    let token = watch_nothing_token();
    let c = support::client();
    const TRIES: u64 = 25;
    for i in 0..TRIES {
        let r = c
            .get(format!("{}/api/events", s.url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("stream request");
        assert_eq!(r.status(), 403, "try {i}");
        let body: Value = r.json().await.expect("json error");
        assert_eq!(body["error"], "forbidden");
        clock.advance(Duration::from_secs(1));
    }
    let first = denials(&s).await;
    assert_eq!(
        first.len(),
        1,
        "one event for {TRIES} identical denials: {first:?}"
    );
    // The metric still counts every denial (rates are watched there).
    let scrape = c
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text");
    let counted = scrape
        .lines()
        .find(|l| l.contains("security_events_total{") && l.contains("\"UNAUTHORIZED_ACCESS\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(counted, Some(TRIES as f64), "{scrape}");
    assert_eq!(first[0].event.details["route"], "/api/events");
    assert!(first[0].event.details.get("count").is_none());

    // The window (60 s from the first) ends; the worker writes the summary without new traffic.
    clock.advance(Duration::from_secs(40));
    let deadline = Instant::now() + Duration::from_secs(15);
    let all = loop {
        let all = denials(&s).await;
        if all.len() > 1 || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(all.len(), 2, "{all:?}");
    let summary = &all[1].event;
    assert_eq!(summary.details["count"], TRIES - 1);
    assert_eq!(summary.details["reason"], first[0].event.details["reason"]);
    assert_eq!(summary.source_ip, first[0].event.source_ip);
    let seen = |k: &str| {
        warden::clock::parse_rfc3339_ms(summary.details[k].as_str().expect("time"))
            .expect("rfc3339")
    };
    let t0 = warden::clock::parse_rfc3339_ms(&all[0].timestamp).expect("ts");
    assert_eq!(seen("first_seen"), t0 + 1000);
    assert_eq!(seen("last_seen"), t0 + (TRIES as i64 - 1) * 1000);
    // The timeline counts every denial: the first, and the summary as its repeats.
    let t: Value = c
        .get(format!("{}/api/security/timeline", s.url))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("timeline")
        .json()
        .await
        .expect("timeline json");
    let drawn: u64 =
        serde_json::from_value::<Vec<u64>>(t["security_events"]["UNAUTHORIZED_ACCESS"].clone())
            .expect("series")
            .iter()
            .sum();
    assert_eq!(drawn, TRIES, "{t}");
    // Both are links of the one chain.
    assert_eq!(all[1].prev_hash, all[0].hash);
    warden::audit::verify_chain(s.state.audit.store()).expect("the chain verifies");

    // A new run starts with a written event; shutdown writes its open summary.
    for _ in 0..3 {
        let r = c
            .get(format!("{}/api/events", s.url))
            .bearer_auth(&token)
            .send()
            .await
            .expect("stream request");
        assert_eq!(r.status(), 403);
    }
    assert_eq!(denials(&s).await.len(), 3);
    let audit = s.state.audit.clone();
    s.stop().await;
    let after = audit
        .query(Some(EventType::UnauthorizedAccess), None, 10, None)
        .expect("query")
        .events;
    assert_eq!(after.len(), 4, "the open run was summarised at shutdown");
    assert_eq!(after[0].event.details["count"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn counted_denials_of_an_erased_person_are_erased_with_the_rest() {
    let s = support::spawn("").await;
    let c = support::client();
    for _ in 0..3 {
        let r = c
            .get(format!("{}/api/events", s.url))
            .bearer_auth(watch_nothing_token())
            .send()
            .await
            .expect("stream request");
        assert_eq!(r.status(), 403);
    }
    let hash = s.state.pepper.hash_identity("no-rooms");
    let before = denials(&s).await;
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].event.identity.as_deref(), Some(hash.as_str()));
    let r = c
        .post(format!("{}/api/security/subjects/erase", s.url))
        .bearer_auth(support::admin_token())
        .json(&json!({"identity": "no-rooms"}))
        .send()
        .await
        .expect("erase");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let after = denials(&s).await;
    assert_eq!(
        after.len(),
        2,
        "the first and the summary of its repeats: {after:?}"
    );
    assert_eq!(after[1].event.details["count"], 2);
    assert!(
        after.iter().all(|e| e.event.identity.is_none()),
        "an identity outlived the erasure: {after:?}"
    );
    let audit = s.state.audit.clone();
    s.stop().await;
    let last = audit
        .query(Some(EventType::UnauthorizedAccess), None, 10, None)
        .expect("query")
        .events;
    assert_eq!(
        last.len(),
        2,
        "nothing about the person was written at shutdown"
    );
}
