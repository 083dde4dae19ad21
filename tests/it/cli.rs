//! The command line: help, exit codes 0/1/2, one-line errors, `redact`, `config`.

use crate::support::{Binary, SECRET};

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn help_lists_every_command_and_each_has_help() {
    let bin = Binary::new();
    let o = bin.run(&["--help"], "");
    assert_eq!(code(&o), 0);
    let text = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "serve", "config", "keys", "token", "webhook", "redact", "audit", "status",
    ] {
        assert!(text.contains(cmd), "--help does not list {cmd}");
        let o = bin.run(&[cmd, "--help"], "");
        assert_eq!(code(&o), 0, "{cmd} --help");
    }
    for sub in [
        &["keys", "rotate"][..],
        &["token", "create"],
        &["webhook", "send"],
        &["audit", "tail"],
        &["config", "check"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        assert_eq!(code(&bin.run(&args, "")), 0, "{sub:?} --help");
    }
}

#[test]
fn bad_usage_exits_2() {
    let bin = Binary::new();
    for args in [
        &["frobnicate"][..],
        &["serve", "--nope"],
        &["token", "create"],
        &["token", "inspect"],
        &[],
    ] {
        let o = bin.run(args, "");
        assert_eq!(
            code(&o),
            2,
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn invalid_input_exits_1_with_one_line() {
    let bin = Binary::new();
    std::fs::write(
        bin.dir.path().join("bad.yaml"),
        "suspicious_activity: {max_failed_attempts: 5000000000}\n",
    )
    .expect("write");
    let o = bin.run(&["config", "check", "bad.yaml"], "");
    assert_eq!(code(&o), 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("suspicious_activity.max_failed_attempts: must be 1..=1000000000"),
        "{err}"
    );
    let o = bin.run(&["config", "check", "missing.yaml"], "");
    assert_eq!(code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing.yaml"));
}

#[test]
fn config_defaults_is_the_embedded_reference_and_check_masks_secrets() {
    let bin = Binary::new();
    let o = bin.run(&["config", "defaults"], "");
    assert_eq!(code(&o), 0);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        warden::config::DEFAULTS_YAML
    );
    std::fs::write(
        bin.dir.path().join("c.yaml"),
        "alerts: {signing_secret: whsec_c2VjcmV0LXNpZ25pbmcta2V5}\nstorage: {redis_url: 'redis://:hunter2pass@127.0.0.1:1'}\n",
    )
    .expect("write");
    let o = bin.run(&["config", "check", "c.yaml"], "");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("max_connections: 1000"));
    assert!(
        !out.contains("whsec_c2Vj") && !out.contains("hunter2pass") && !out.contains(SECRET),
        "{out}"
    );
}

#[test]
fn redact_masks_stdin() {
    let bin = Binary::new();
    let input = format!(
        "api_key={SECRET} region=eu\nAuthorization: Bearer abc.def.ghi\ncommit 3f2a9c1d4b5e6f708192a3b4c5d6e7f801234567\n"
    );
    let o = bin.run(&["redact"], &input);
    assert_eq!(code(&o), 0);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains(SECRET) && !out.contains("abc.def.ghi"),
        "{out}"
    );
    assert!(
        out.contains("region=eu") && out.contains("3f2a9c1d4b5e6f708192a3b4c5d6e7f801234567"),
        "{out}"
    );
}

/// A line that only a known secret makes secret: no pattern matches it.
fn signed_with(secret: &str) -> String {
    format!("webhook from livekit signed with {secret} ok\n")
}

fn redact(bin: &Binary, input: &str) -> (String, String) {
    let o = bin.run(&["redact"], input);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn redact_masks_the_secrets_of_every_key_source() {
    let masked = "webhook from livekit signed with ***MASKED*** ok\n";
    let in_keys = "KeysEnvOnly7xQ2mP9vR4tW8yZ1bC3dF5gHj";
    let in_api = "ApiSecretOnly3nB6vC9xZ2lK5jH8gF1dSaq";
    // Without a source, the patterns alone leave the line as it is.
    let bare = Binary::without_keys();
    assert_eq!(redact(&bare, &signed_with(in_keys)).0, signed_with(in_keys));

    let mut keys_env = Binary::without_keys();
    keys_env
        .env
        .push(("LIVEKIT_KEYS".into(), format!("APIkeysOnly1: {in_keys}")));
    assert_eq!(redact(&keys_env, &signed_with(in_keys)).0, masked);

    let mut pair = Binary::without_keys();
    pair.env
        .push(("LIVEKIT_API_KEY".into(), "APIpairOnly1".into()));
    pair.env.push(("LIVEKIT_API_SECRET".into(), in_api.into()));
    assert_eq!(redact(&pair, &signed_with(in_api)).0, masked);

    // LIVEKIT_API_SECRET alone: the configuration refuses it, redact still
    // masks it and says why on stderr (without the secret).
    let mut half = Binary::without_keys();
    half.env.push(("LIVEKIT_API_SECRET".into(), in_api.into()));
    let (out, err) = redact(&half, &signed_with(in_api));
    assert_eq!(out, masked);
    assert!(
        err.contains("LIVEKIT_API_KEY") && !err.contains(in_api),
        "{err}"
    );

    // A key only in the key file (created by `keys create`, printed once).
    let home = Binary::without_keys();
    let created = home.run(&["keys", "create"], "");
    assert_eq!(
        code(&created),
        0,
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created = String::from_utf8_lossy(&created.stdout).into_owned();
    let in_file = created
        .lines()
        .find_map(|l| l.strip_prefix("api_secret:"))
        .map(str::trim)
        .expect("keys create prints the secret");
    let (out, err) = redact(&home, &signed_with(in_file));
    assert_eq!(out, masked, "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn status_asks_the_running_instance_or_reports_locally() {
    let bin = Binary::new();
    let o = bin.run(&["status", "--url", "http://127.0.0.1:9"], "");
    // SPEC: 1 when nothing answers, with the local report still on stdout.
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stderr));
    let local: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(local["running"], false);
    let mut served = bin.serve(&[]);
    let o = bin.run(&["status", "--url", &served.url], "");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let live: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert!(
        live["overall_status"].is_string() && live["keys"].is_array(),
        "{live}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains(SECRET));
    served.terminate();
}
