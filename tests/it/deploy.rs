//! The deployment files, checked with what exists on a CI machine: the
//! systemd unit by `systemd-analyze` (and Warden's readiness notification by
//! a real notify socket), the container's health probe against a running
//! binary, and the Dockerfile — no Docker engine here — against the
//! repository it builds (its commands, paths, settings and user).

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::Binary;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Everything `systemd-analyze verify` and `security` say about a unit
/// that is wrong: empty when it is clean and at most "2.0" exposed.
fn unit_problems(unit: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.service");
    std::fs::write(&path, unit).expect("unit");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (scripts/test.sh installs the systemd package)");
    let mut problems = String::new();
    if !verify.status.success() {
        problems.push_str(&format!("verify exited {}\n", verify.status));
    }
    // Unknown keys and unparsable values are only warnings (exit 0): any line counts.
    problems.push_str(&String::from_utf8_lossy(&verify.stdout));
    problems.push_str(&String::from_utf8_lossy(&verify.stderr));
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20", "--no-pager"])
        .arg(&path)
        .output()
        .expect("systemd-analyze security");
    if !security.status.success() {
        problems.push_str(&format!(
            "security exposure above 2.0:\n{}",
            String::from_utf8_lossy(&security.stdout)
        ));
    }
    problems
}

/// The unit as shipped, with `ExecStart=` pointing at the binary under test
/// (`verify` checks that the program exists).
fn shipped_unit() -> String {
    let unit = read("deploy/systemd/warden.service");
    assert_eq!(
        unit.matches("/usr/local/bin/warden ").count(),
        1,
        "one ExecStart"
    );
    unit.replace(
        "/usr/local/bin/warden ",
        &format!("{} ", Binary::path().display()),
    )
}

#[test]
fn the_systemd_unit_verifies_cleanly_and_a_broken_one_does_not() {
    let unit = shipped_unit();
    let problems = unit_problems(&unit);
    assert!(
        problems.is_empty(),
        "deploy/systemd/warden.service:\n{problems}"
    );
    for line in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=warden",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "Restart=on-failure",
    ] {
        assert!(unit.contains(line), "the unit lacks {line:?}");
    }
    // The check itself catches what a typo would do.
    let broken = [
        unit.replace("Type=notify", "Type=notfiy"),
        unit.replace("ProtectHome=yes", "ProtectHome=yes\nProtectHomes=yes"),
        unit.replace("NoNewPrivileges=yes", "NoNewPrivileges=maybe"),
        unit.replace(&Binary::path().display().to_string(), "/nonexistent/warden"),
        unit.replace("ProtectSystem=strict", "ProtectSystem=no")
            .replace("CapabilityBoundingSet=\n", "")
            .replace("SystemCallFilter=", "#SystemCallFilter=")
            .replace("PrivateUsers=yes", "PrivateUsers=no")
            .replace("ProtectKernelTunables=yes", "")
            .replace("RestrictNamespaces=yes", ""),
    ];
    for b in broken {
        assert!(!unit_problems(&b).is_empty(), "not caught:\n{b}");
    }
}

#[test]
fn serve_notifies_systemd_when_ready_and_when_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock_path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut bin = Binary::new();
    bin.env
        .push(("NOTIFY_SOCKET".into(), sock_path.display().to_string()));
    let mut served = bin.serve(&[]);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 within 30 s");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means ready: /health answers at once.
    let probe = bin.run(&["health", "--url", &served.url], "");
    assert!(probe.status.success(), "{probe:?}");
    served.terminate();
    let n = sock.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

#[test]
fn the_health_probe_follows_the_configured_listen_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let bin = Binary::new();
    // As in the container: all addresses, behind a declared proxy.
    bin.write_config(&format!(
        "server: {{listen: \"0.0.0.0:{port}\", trusted_proxies: [127.0.0.1]}}\n"
    ));
    let down = bin.run(&["health"], "");
    assert_eq!(down.status.code(), Some(1), "nothing is listening yet");
    let err = String::from_utf8_lossy(&down.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(&format!("127.0.0.1:{port}/health")), "{err}");
    let mut child = bin
        .command(&["serve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut up = None;
    while Instant::now() < deadline {
        let out = bin.run(&["health"], "");
        if out.status.success() {
            up = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    let up = up.expect("`warden health` never succeeded");
    assert_eq!(String::from_utf8_lossy(&up.stdout).trim(), "ok");
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (op, rest) = current.split_once(' ').unwrap_or((current.as_str(), ""));
        out.push((op.to_ascii_uppercase(), rest.trim().to_owned()));
        current.clear();
    }
    out
}

#[test]
fn the_dockerfile_builds_what_ci_builds_and_runs_as_documented() {
    let text = read("Dockerfile");
    let ins = instructions(&text);
    let ops = |op: &str| -> Vec<&str> {
        ins.iter()
            .filter(|(o, _)| o == op)
            .map(|(_, r)| r.as_str())
            .collect()
    };
    // Multi-stage: a Rust build stage, then a small runtime without a shell.
    let froms = ops("FROM");
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[0].starts_with("rust:${RUST_VERSION}-slim") && froms[0].ends_with("AS build"));
    assert!(
        froms[1].starts_with("gcr.io/distroless/cc-debian12"),
        "{}",
        froms[1]
    );
    for f in &froms {
        assert!(!f.contains(":latest"), "pinned tags only: {f}");
    }
    // The toolchain is at least the crate's declared minimum.
    let arg = ops("ARG")
        .into_iter()
        .find_map(|a| a.strip_prefix("RUST_VERSION="))
        .expect("ARG RUST_VERSION");
    let manifest = read("Cargo.toml");
    let msrv = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"'))
        .expect("rust-version");
    let v = |s: &str| -> (u32, u32) {
        let mut p = s.split('.').map(|n| n.parse::<u32>().expect("version"));
        (p.next().expect("major"), p.next().expect("minor"))
    };
    assert!(
        v(arg) >= v(msrv),
        "RUST_VERSION {arg} < rust-version {msrv}"
    );
    // The build is README's release command, pinned to Cargo.lock.
    let readme = read("README.md");
    assert!(readme.contains("cargo build --release"));
    let run = ops("RUN").join(" && ");
    assert!(
        run.contains("cargo build --release --locked --bin warden"),
        "{run}"
    );
    assert!(repo("Cargo.lock").is_file());
    // What the runtime stage runs exists: the binary's serve and health commands.
    let health = ops("HEALTHCHECK");
    assert_eq!(health.len(), 1);
    assert!(
        health[0].contains(r#"CMD ["/usr/local/bin/warden", "health"]"#),
        "{}",
        health[0]
    );
    assert_eq!(ops("ENTRYPOINT"), vec![r#"["/usr/local/bin/warden"]"#]);
    assert_eq!(ops("CMD"), vec![r#"["serve"]"#]);
    let bin = Binary::new();
    for cmd in [["serve", "--help"], ["health", "--help"]] {
        assert!(bin.run(&cmd, "").status.success(), "warden {cmd:?}");
    }
    // Non-root, with the data volume it owns.
    let user = ops("USER");
    assert_eq!(user, vec!["65532:65532"], "distroless's nonroot user");
    assert_eq!(ops("VOLUME"), vec![r#"["/data"]"#]);
    assert!(
        ops("COPY")
            .iter()
            .any(|c| c.contains("--chown=65532:65532") && c.ends_with(" /data")),
        "/data is created owned by the runtime user"
    );
    assert_eq!(
        ops("WORKDIR").last(),
        Some(&"/"),
        "data/ resolves to the /data volume"
    );
    // Its environment is a valid configuration, listening where EXPOSE says,
    // and the start-up rule holds: refused without TLS or a trusted proxy…
    let env: Vec<(String, String)> = ops("ENV")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let listen = &env
        .iter()
        .find(|(k, _)| k == "WARDEN_SERVER__LISTEN")
        .expect("listen")
        .1;
    assert!(listen.starts_with("0.0.0.0:"), "{listen}");
    let port = listen.rsplit(':').next().expect("port");
    assert_eq!(ops("EXPOSE"), vec![port]);
    let mut image = Binary::without_keys();
    image.env.extend(env.iter().cloned());
    let check = image.run(&["config", "check"], "");
    assert!(check.status.success(), "{check:?}");
    let effective = String::from_utf8_lossy(&check.stdout);
    assert!(effective.contains("/data/logs/security.log"), "{effective}");
    // (Killed after 10 s if it ever started instead: it must not.)
    let mut child = image
        .command(&["serve"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let refused = child.wait_with_output().expect("output");
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("server.trusted_proxies"),
        "{refused:?}"
    );
    // …and accepted with one, as the Dockerfile's comment shows.
    image
        .env
        .push(("WARDEN_SERVER__TRUSTED_PROXIES".into(), "172.17.0.1".into()));
    let ok = image.run(&["config", "check"], "");
    assert!(ok.status.success(), "{ok:?}");
    assert!(text.contains("WARDEN_SERVER__TRUSTED_PROXIES=172.17.0.1"));
    // The build context leaves out the build output.
    let ignore = read(".dockerignore");
    assert!(ignore.lines().any(|l| l.trim() == "target"), "{ignore}");
}
