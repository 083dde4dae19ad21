//! Webhook interop against LiveKit's own code (tests/interop/webhook.mjs):
//! deliveries made by the official Node SDK are accepted by `Receiver::receive`,
//! and `warden webhook send` is accepted by the official `WebhookReceiver`.
//! Needs `cd tests/interop && npm install --no-audit --no-fund` (CI does it);
//! without it these tests fail saying so.

use std::io::{BufRead, BufReader, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};

use serde_json::Value;
use warden::audit::Audit;
use warden::clock::Clock;
use warden::config::Config;
use warden::keys::KeyRing;
use warden::pepper::Pepper;
use warden::redact::Secret;
use warden::webhook::{Outcome, Receiver, ReceiverSettings, ReplayStore, Seen};

const KEY: &str = "APIinteropK3y9";
const SECRET: &str = "b9Fh2Kq7Lw3Mx8Nc4Pv6Rz1Sd5Tg0Uj2Ya7Eo3Ii9Qe";
const PEPPER: &str = "interop-pepper-0123456789abcdef0123";

fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop");
    assert!(
        dir.join("node_modules/livekit-server-sdk/package.json")
            .exists(),
        "LiveKit's Node SDK is not installed: run `cd tests/interop && npm install --no-audit --no-fund` (CI does)"
    );
    dir
}

fn node(args: &[&str]) -> Command {
    let mut cmd = Command::new("node");
    cmd.current_dir(interop_dir()).arg("webhook.mjs").args(args);
    cmd
}

fn receiver() -> (Receiver, Audit) {
    let audit = Audit::in_memory();
    let rx = Receiver::new(
        KeyRing::from_keys([(KEY.to_owned(), Secret::new(SECRET))]),
        Pepper::new(PEPPER),
        audit.clone(),
        Clock::system(),
        ReceiverSettings::from_config(&Config::defaults()),
    );
    (rx, audit)
}

fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(Value::as_str)
}

#[test]
fn official_sdk_deliveries_of_every_event_type_are_accepted() {
    let out = node(&["make", KEY, SECRET])
        .output()
        .expect("run node (is Node.js installed?)");
    assert!(
        out.status.success(),
        "webhook.mjs make failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let mut names: Vec<&str> = lines.iter().filter_map(|l| str_at(l, "/event")).collect();
    names.dedup();
    assert_eq!(
        names,
        warden::event::BROADCAST_EVENTS,
        "every broadcast event type is covered"
    );
    let (rx, audit) = receiver();
    let seen = ReplayStore::memory(1000);
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for case in &lines {
        let (name, body, auth) = (
            str_at(case, "/name"),
            str_at(case, "/body"),
            str_at(case, "/auth"),
        );
        let (name, body, auth) = (
            name.expect("name"),
            body.expect("body"),
            auth.expect("auth"),
        );
        let (event, digest) = match rx.receive(ip, &[auth], body.as_bytes()) {
            Ok(Outcome::Event(e, digest)) => (e, digest),
            other => panic!("{name}: SDK delivery not broadcast: {other:?}\n{body}"),
        };
        let window = rx.replay_window();
        assert_eq!(
            seen.check(&event.id, digest, 0, window),
            Seen::New,
            "{name}"
        );
        assert_eq!(event.event, name);
        let wire: Value = serde_json::to_value(&event).expect("json");
        check_expectations(name, &wire, &case["expect"], event.room_name());
        assert_minimised(name, &wire.to_string());
        // LiveKit retries: the same delivery again is the same id and body, a retry.
        match rx.receive(ip, &[auth], body.as_bytes()) {
            Ok(Outcome::Event(again, digest)) => assert_eq!(
                seen.check(&again.id, digest, 1, window),
                Seen::Retry,
                "{name}"
            ),
            other => panic!("{name}: the retry was refused: {other:?}"),
        }
    }
    assert!(
        audit.recent().is_empty(),
        "no security event for genuine deliveries: {:?}",
        audit.recent()
    );
}

fn assert_minimised(name: &str, text: &str) {
    let secrets = [
        "TURNsecretFromSdk",
        "room-metadata",
        "participant-metadata",
        "attribute-value",
        "sk_SDKSECRET",
        "rtmp://",
        "job-metadata",
        "W_sdkworker",
        "A_sdkagent",
        "AD_sdk1",
        "agent-identity",
    ];
    for leak in secrets {
        assert!(!text.contains(leak), "{name}: {leak} kept in {text}");
    }
    assert!(!text.contains("<b>"), "{name}: markup kept in {text}");
}

fn check_expectations(name: &str, wire: &Value, expect: &Value, room_key: Option<&str>) {
    assert_eq!(room_key, str_at(expect, "/room"), "{name}: room key");
    assert_eq!(
        str_at(wire, "/data/room/name"),
        str_at(expect, "/room"),
        "{name}: room name"
    );
    if let Some(identity) = str_at(expect, "/identity") {
        let hashed = Pepper::new(PEPPER).hash_identity(identity);
        assert_eq!(
            str_at(wire, "/data/participant/identity"),
            Some(hashed.as_str()),
            "{name}: identity"
        );
        assert_eq!(
            str_at(wire, "/data/participant/state"),
            str_at(expect, "/state"),
            "{name}: state"
        );
        assert_eq!(
            str_at(wire, "/data/participant/name"),
            Some("Ada Lovelace"),
            "{name}: sanitised name"
        );
    }
    if let Some(kind) = str_at(expect, "/kind") {
        assert_eq!(
            str_at(wire, "/data/participant/kind"),
            Some(kind),
            "{name}: kind"
        );
    }
    if let Some(j) = expect.get("job") {
        let got = &wire["data"]["job"];
        assert_eq!(
            [&got["id"], &got["agent_name"], &got["type"], &got["status"]],
            [&j[0], &j[1], &j[2], &j[3]],
            "{name}: job"
        );
        assert_eq!(
            str_at(wire, "/data/job/error"),
            str_at(expect, "/error"),
            "{name}: job error"
        );
    }
    if let Some(t) = expect.get("track") {
        let got = &wire["data"]["track"];
        assert_eq!(
            [&got["sid"], &got["kind"], &got["source"], &got["muted"]],
            [&t[0], &t[1], &t[2], &t[3]],
            "{name}: track"
        );
    }
    if let Some(g) = expect.get("egress") {
        assert_eq!(
            [
                &wire["data"]["egress"]["id"],
                &wire["data"]["egress"]["status"]
            ],
            [&g[0], &g[1]],
            "{name}: egress"
        );
    }
    if let Some(i) = expect.get("ingress") {
        assert_eq!(
            [
                &wire["data"]["ingress"]["id"],
                &wire["data"]["ingress"]["state"]
            ],
            [&i[0], &i[1]],
            "{name}: ingress"
        );
    }
}

/// The official `WebhookReceiver` behind a tiny HTTP server; killed on drop.
struct SdkServer {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
    url: String,
}

impl SdkServer {
    fn start(secret: &str) -> Self {
        let mut child = node(&["serve", KEY, secret])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node (is Node.js installed?)");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().expect("a line from the server").expect("read");
        let port = first
            .strip_prefix("LISTENING ")
            .expect("LISTENING <port>")
            .trim()
            .to_owned();
        Self {
            child,
            lines,
            url: format!("http://127.0.0.1:{port}/webhooks/livekit"),
        }
    }

    fn report(&mut self) -> Value {
        let line = self.lines.next().expect("a report line").expect("read");
        serde_json::from_str(&line).expect("json report")
    }
}

impl Drop for SdkServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn warden_send(url: &str, event: &str, secret: &str) -> std::process::Output {
    let dir =
        std::env::temp_dir().join(format!("warden-it-webhook-{}-{event}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut args = vec![
        "webhook",
        "send",
        "--url",
        url,
        "--event",
        event,
        "--room",
        "drill-room",
        "--identity",
        "drill-user",
    ];
    if event.starts_with("agent_job_") {
        args.extend(["--agent", "drill-voice"]);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .current_dir(&dir)
        .env_clear()
        .env("LIVEKIT_API_KEY", KEY)
        .env("LIVEKIT_API_SECRET", secret)
        .args(&args)
        .output()
        .expect("run warden");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn warden_webhook_send_is_accepted_by_the_official_receiver() {
    let mut server = SdkServer::start(SECRET);
    let (rx, _) = receiver();
    for &event in warden::event::BROADCAST_EVENTS {
        let out = warden_send(&server.url, event, SECRET);
        let report = server.report();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{event}: exit {:?}, stdout {stdout}, stderr {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.starts_with("200"), "{event}: printed {stdout}");
        assert_eq!(
            report["ok"], true,
            "{event}: WebhookReceiver refused: {report}"
        );
        assert_eq!(str_at(&report, "/event"), Some(event));
        assert_eq!(
            str_at(&report, "/room"),
            Some("drill-room"),
            "{event}: {report}"
        );
        assert_eq!(
            str_at(&report, "/contentType"),
            Some("application/webhook+json")
        );
        assert_eq!(report["auth_headers"], 1);
        if event.starts_with("participant_") || event.starts_with("track_") {
            assert_eq!(
                str_at(&report, "/identity"),
                Some("drill-user"),
                "{event}: {report}"
            );
        }
        if event.starts_with("track_") {
            assert_eq!(str_at(&report, "/track"), Some("MICROPHONE"));
        }
        if event.starts_with("agent_job_") {
            assert_eq!(
                str_at(&report, "/agent"),
                Some("drill-voice"),
                "{event}: {report}"
            );
        }
        // What the official receiver accepted, Warden's accepts too, with the same meaning.
        let (body, auth) = (
            str_at(&report, "/body").expect("body"),
            str_at(&report, "/auth").expect("auth"),
        );
        match rx.receive(IpAddr::V4(Ipv4Addr::LOCALHOST), &[auth], body.as_bytes()) {
            Ok(Outcome::Event(e, _)) => assert_eq!(
                (e.event.as_str(), e.room_name()),
                (event, Some("drill-room"))
            ),
            other => panic!("{event}: Warden refused its own drill: {other:?}"),
        }
    }
}

#[test]
fn warden_webhook_send_exits_1_when_the_receiver_refuses() {
    let mut server = SdkServer::start(SECRET);
    let out = warden_send(
        &server.url,
        "room_started",
        "a-different-secret-of-sufficient-length-43ch",
    );
    let report = server.report();
    assert_eq!(
        report["ok"], false,
        "the official receiver must refuse a wrong key: {report}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") && !stderr.contains("a-different-secret"),
        "stderr: {stderr}"
    );
}
