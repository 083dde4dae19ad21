//! The dashboard end to end, in Debian's real headless Chromium.
//!
//! Starts the built `warden serve` on a fixed free port in a temporary working
//! directory and runs `tests/browser/e2e.mjs` (Node + playwright-core) against
//! it. The script signs in, sends signed webhooks, checks hostile names, the
//! CSP, the admin panel and the non-admin view; when it prints `RESTART` this
//! test restarts the server on the same port and directory (a new process,
//! the same history and room state) and answers `RESTARTED` on the script's
//! stdin, so the page must resume without a reset; on `RESTART_FRESH` it
//! removes the database first (a new history) and answers `RESTARTED_FRESH`,
//! so the page must reset and say why in words. Screenshots land in `target/screenshots/`.
//!
//! Never skipped: without Chromium, Node or playwright-core the test fails and
//! says how to install them (`scripts/test.sh` does it on CI).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Binary, KEY, SECRET};

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
            server.stop();
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
