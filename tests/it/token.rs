//! Interop with LiveKit's official SDKs, both ways: npm `livekit-server-sdk`
//! and PyPI `livekit-api`. The SDKs must be installed (CI does); a missing SDK
//! fails the test with the command that installs it.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use warden::keys::KeyRing;
use warden::redact::Secret;
use warden::token::{self, ClaimGrants, TokenPolicy, VIDEO_GRANT_NAMES, VideoGrant};

const KEY: &str = "APIinteropTst23";
const SECRET: &str = "q7Lw3Mx8Nc4Pv6Rz1Sd5Tg0Uj2Ya7Eo3Ii9Qeb9Fh2K";

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn node() -> Command {
    let dir = interop_dir();
    assert!(
        dir.join("node_modules/livekit-server-sdk/package.json")
            .exists(),
        "LiveKit's Node SDK is not installed: run `cd tests/interop && npm ci` (or `npm install --no-audit --no-fund`)"
    );
    let mut c = Command::new("node");
    c.arg(dir.join("token.mjs"));
    c
}

fn python() -> Command {
    let dir = interop_dir();
    let py = dir.join(".venv/bin/python");
    assert!(
        py.exists(),
        "LiveKit's Python SDK is not installed: run `python3 -m venv tests/interop/.venv && tests/interop/.venv/bin/pip install -r tests/interop/requirements.txt`"
    );
    let mut c = Command::new(py);
    c.arg(dir.join("token.py"));
    c
}

/// Runs an SDK script; Ok(stdout) or Err(stderr).
fn sdk(mut cmd: Command, args: &[&str]) -> Result<String, String> {
    let out = cmd
        .args(args)
        .env("LK_KEY", KEY)
        .env("LK_SECRET", SECRET)
        .output()
        .expect("SDK script runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn specs() -> Vec<Value> {
    vec![
        json!({"identity": "viewer", "video": {"roomList": true}}),
        json!({"identity": "room-admin", "video": {"roomAdmin": true, "room": "demo"}}),
        json!({"identity": "admin", "video": {"roomAdmin": true, "roomCreate": true}}),
        json!({"identity": "joiner", "name": "Ada", "metadata": "{\"a\":1}", "attributes": {"team": "blue"},
               "video": {"roomJoin": true, "room": "demo", "canPublish": false, "canSubscribe": true,
                         "canPublishSources": ["camera", "microphone"]}}),
        json!({"identity": "rec", "kind": "egress",
               "video": {"roomRecord": true, "hidden": true, "recorder": true, "canUpdateOwnMetadata": true}}),
        json!({"identity": "agent-1", "kind": "agent", "video": {"agent": true, "roomJoin": true, "room": "demo", "canPublishData": false}}),
    ]
}

fn ring() -> KeyRing {
    KeyRing::from_keys([(KEY.to_owned(), Secret::new(SECRET))])
}

fn now_ms() -> i64 {
    warden::clock::Clock::system().now_ms()
}

/// Grants that default to true in LiveKit; everything else must be false unless asked for.
const DEFAULT_TRUE: &[&str] = &["canPublish", "canSubscribe", "canPublishData"];

fn grants_of(spec: &Value) -> ClaimGrants {
    ClaimGrants {
        identity: spec["identity"].as_str().unwrap_or_default().to_owned(),
        name: spec["name"].as_str().unwrap_or_default().to_owned(),
        metadata: spec["metadata"].as_str().unwrap_or_default().to_owned(),
        kind: spec["kind"].as_str().unwrap_or_default().to_owned(),
        attributes: serde_json::from_value(spec.get("attributes").cloned().unwrap_or(json!({})))
            .expect("attributes"),
        video: serde_json::from_value(spec["video"].clone())
            .expect("LiveKit grant names deserialise"),
        ..ClaimGrants::default()
    }
}

/// Checks what Warden verified against what the SDK was asked to mint.
fn assert_same_grants(who: &str, spec: &Value, claims: &token::Claims) {
    assert_eq!(
        claims.sub,
        spec["identity"].as_str().unwrap_or_default(),
        "{who}: identity"
    );
    assert_eq!(claims.iss, KEY, "{who}");
    let expected = grants_of(spec);
    assert_eq!(
        (
            &claims.grants.name,
            &claims.grants.metadata,
            &claims.grants.kind
        ),
        (&expected.name, &expected.metadata, &expected.kind),
        "{who}"
    );
    assert_eq!(
        claims.grants.attributes, expected.attributes,
        "{who}: attributes"
    );
    assert_eq!(
        claims.grants.video.room_name(),
        expected.video.room_name(),
        "{who}: room"
    );
    assert_eq!(
        claims.grants.video.can_publish_sources, expected.video.can_publish_sources,
        "{who}: canPublishSources"
    );
    for (name, value) in spec["video"].as_object().expect("video") {
        if let Some(b) = value.as_bool() {
            assert_eq!(claims.grants.video.get(name), Ok(b), "{who}: {name}");
        }
    }
    for name in VIDEO_GRANT_NAMES
        .iter()
        .filter(|n| !DEFAULT_TRUE.contains(n) && spec["video"].get(**n).is_none())
    {
        assert_eq!(
            claims.grants.video.get(name),
            Ok(false),
            "{who}: {name} was never granted"
        );
    }
}

/// Checks what an SDK verified (its JSON view) against the spec Warden minted.
fn assert_sdk_saw(who: &str, spec: &Value, seen: &Value) {
    assert_eq!(seen["identity"], spec["identity"], "{who}: identity");
    for field in ["name", "metadata", "kind"] {
        assert_eq!(
            seen[field].as_str().unwrap_or_default(),
            spec[field].as_str().unwrap_or_default(),
            "{who}: {field}"
        );
    }
    assert_eq!(
        seen["attributes"],
        spec.get("attributes").cloned().unwrap_or(json!({})),
        "{who}: attributes"
    );
    for (name, value) in spec["video"].as_object().expect("video") {
        assert_eq!(&seen["video"][name], value, "{who}: video.{name}");
    }
    let video: VideoGrant =
        serde_json::from_value(seen["video"].clone()).expect("SDK view uses LiveKit names");
    for name in VIDEO_GRANT_NAMES
        .iter()
        .filter(|n| !DEFAULT_TRUE.contains(n) && spec["video"].get(**n).is_none())
    {
        assert_eq!(
            video.get(name),
            Ok(false),
            "{who}: {name} was never granted"
        );
    }
}

#[test]
fn sdk_tokens_verify_in_warden_with_the_same_grants() {
    let ring = ring();
    for spec in specs() {
        for (who, cmd) in [("node", node()), ("python", python())] {
            let jwt = sdk(cmd, &["mint", &spec.to_string()])
                .unwrap_or_else(|e| panic!("{who} mint {spec}: {e}"));
            let claims = token::verify(&jwt, &ring, now_ms(), &TokenPolicy::default())
                .unwrap_or_else(|e| panic!("{who} token for {spec} refused: {e}"));
            assert_same_grants(who, &spec, &claims);
        }
    }
}

#[test]
fn warden_tokens_verify_in_both_sdks() {
    let ring = ring();
    for spec in specs() {
        let jwt = token::mint(&ring, &grants_of(&spec), None, now_ms()).expect("mints");
        for (who, cmd) in [("node", node()), ("python", python())] {
            let out = sdk(cmd, &["verify", &jwt])
                .unwrap_or_else(|e| panic!("{who} refused Warden's token for {spec}: {e}"));
            assert_sdk_saw(who, &spec, &serde_json::from_str(&out).expect("json"));
        }
    }
}

#[test]
fn sdks_refuse_what_warden_must_refuse() {
    // A Warden token signed with another secret: both SDKs say no, like Warden.
    let other = KeyRing::from_keys([(KEY.to_owned(), Secret::new("x".repeat(43)))]);
    let jwt = token::mint(&other, &grants_of(&specs()[0]), None, now_ms()).expect("mints");
    assert!(token::verify(&jwt, &ring(), now_ms(), &TokenPolicy::default()).is_err());
    for (who, cmd) in [("node", node()), ("python", python())] {
        assert!(
            sdk(cmd, &["verify", &jwt]).is_err(),
            "{who} accepted a token with a wrong signature"
        );
    }
}

#[test]
fn cli_token_create_and_inspect_round_trip_with_the_sdks() {
    let home = super::keys::Home::new("");
    std::fs::create_dir_all(home.key_file().parent().expect("dir")).expect("dir");
    std::fs::write(home.key_file(), format!("{KEY}: {SECRET}\n")).expect("key file");
    std::fs::set_permissions(
        home.key_file(),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let jwt = home.ok(&[
        "token",
        "create",
        "--identity",
        "alice",
        "--room",
        "r1",
        "--grant",
        "roomAdmin,canPublish",
        "--ttl",
        "1h",
    ]);
    let jwt = jwt.trim();
    assert_eq!(jwt.lines().count(), 1);
    for (who, cmd) in [("node", node()), ("python", python())] {
        let seen: Value = serde_json::from_str(
            &sdk(cmd, &["verify", jwt]).unwrap_or_else(|e| panic!("{who}: {e}")),
        )
        .expect("json");
        assert_eq!(
            (
                &seen["identity"],
                &seen["video"]["roomAdmin"],
                &seen["video"]["room"]
            ),
            (&json!("alice"), &json!(true), &json!("r1")),
            "{who}"
        );
    }
    let sdk_jwt = sdk(
        python(),
        &[
            "mint",
            &json!({"identity": "from-sdk", "video": {"roomList": true}}).to_string(),
        ],
    )
    .expect("mints");
    let inspected: Value =
        serde_json::from_str(&home.ok(&["token", "inspect", &sdk_jwt])).expect("claims JSON");
    assert_eq!(
        (&inspected["sub"], &inspected["video"]["roomList"]),
        (&json!("from-sdk"), &json!(true))
    );
    let bad = home.run(&["token", "inspect", &format!("{sdk_jwt}x")]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.trim().lines().count() == 1 && !err.contains(&sdk_jwt[..20]),
        "{err}"
    );
    let unknown = home.run(&[
        "token",
        "create",
        "--identity",
        "x",
        "--grant",
        "roomList,superuser",
    ]);
    assert_eq!(unknown.status.code(), Some(1));
}
