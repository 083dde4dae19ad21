//! Start-up refusals name the key; the environment beats the file.

use crate::support::Binary;

fn serve_refused(bin: &Binary) -> String {
    let o = bin.run(&["serve", "--listen", "127.0.0.1:0"], "");
    assert_eq!(
        o.status.code(),
        Some(1),
        "serve should refuse: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn unknown_keys_wrong_types_and_ranges_stop_start_up_naming_the_key() {
    for (yaml, key) in [
        ("webhooks: {max_body_byte: 1}", "webhooks.max_body_byte"),
        ("bogus_section: {a: 1}", "bogus_section"),
        (
            "realtime: {heartbeat_seconds: soon}",
            "realtime.heartbeat_seconds",
        ),
        (
            "suspicious_activity: {max_failed_attempts: -3}",
            "suspicious_activity.max_failed_attempts",
        ),
    ] {
        let bin = Binary::new();
        bin.write_config(yaml);
        let err = serve_refused(&bin);
        assert!(err.contains(key), "{yaml}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn config_is_found_via_env_and_flag_and_env_overrides_win() {
    let bin = Binary::new();
    std::fs::write(
        bin.dir.path().join("a.yaml"),
        "realtime: {max_connections: 7}\n",
    )
    .expect("write");
    let mut c = bin.command(&["config", "check"]);
    c.env("LIVEKIT_SECURITY_CONFIG", "a.yaml");
    let o = c.output().expect("run");
    assert!(String::from_utf8_lossy(&o.stdout).contains("max_connections: 7"));
    let mut c = bin.command(&["config", "check", "--config", "a.yaml"]);
    c.env("WARDEN_REALTIME__MAX_CONNECTIONS", "9");
    let o = c.output().expect("run");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("max_connections: 9") && !out.contains("max_connections: 7"),
        "{out}"
    );
}

#[test]
fn exposed_plain_http_is_refused_with_the_reason() {
    let bin = Binary::new();
    let o = bin.run(&["serve", "--listen", "0.0.0.0:0"], "");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("server.tls") && err.contains("wss_enforcement"),
        "{err}"
    );
}
