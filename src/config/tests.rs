use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

fn err(yaml: &str) -> String {
    from_yaml(yaml, &Env::default())
        .expect_err("should be refused")
        .to_string()
}

#[test]
fn defaults_parse_and_match_the_spec() {
    let c = Config::defaults();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert!(c.wss_enforcement.enabled && c.wss_enforcement.redirect_http_to_https);
    assert_eq!(c.wss_enforcement.allowed_protocols, ["wss", "https"]);
    assert_eq!(c.key_rotation.rotation_interval.as_secs(), 24 * 3600);
    assert_eq!(c.key_rotation.overlap_period.as_secs(), 30 * 60);
    assert!(!c.key_rotation.auto_rotation);
    assert!(c.access_validation.strict_mode);
    assert_eq!(c.suspicious_activity.max_failed_attempts, 5);
    assert_eq!(c.suspicious_activity.lockout_duration.as_secs(), 15 * 60);
    assert_eq!(c.suspicious_activity.rate_limit_per_minute, 100);
    assert_eq!(c.suspicious_activity.unusual_usage_threshold, 1000);
    assert_eq!(c.webhooks.rate_limit_per_minute, 1000);
    assert_eq!(c.webhooks.max_body_bytes, 262_144);
    assert_eq!(c.webhooks.replay_window.as_secs(), 600);
    assert_eq!(c.webhooks.leeway.as_secs(), 60);
    assert_eq!(c.realtime.max_connections, 1000);
    assert_eq!(c.realtime.max_connections_per_ip, 5);
    assert_eq!(c.realtime.heartbeat.as_secs(), 15);
    assert_eq!(c.realtime.max_connection_age.as_secs(), 24 * 3600);
    assert_eq!(c.realtime.batch_interval.as_millis(), 100);
    assert_eq!(c.realtime.max_batch_size, 50);
    assert_eq!(c.realtime.history_size, 10_000);
    assert!(c.realtime.hash_identities);
    assert!(c.logging.mask_sensitive_data);
    assert_eq!(c.logging.log_level, "info");
    assert_eq!(c.logging.audit_log_retention_days, 90);
    assert_eq!(
        c.logging.security_log_file,
        PathBuf::from("logs/security.log")
    );
    assert_eq!(c.alerts.min_severity, crate::security::Severity::High);
    assert_eq!(c.storage.backend, Backend::Sqlite);
    assert_eq!(c.storage.path, PathBuf::from("data/warden.db"));
    assert_eq!(c.livekit.keys_file, PathBuf::from("data/keys.yaml"));
}

#[test]
fn every_section_is_read_from_a_file() {
    let yaml = r#"
server: {listen: "0.0.0.0:9000", trusted_proxies: ["10.0.0.0/8", "192.0.2.7"], tls: {cert: c.pem, key: k.pem}}
wss_enforcement: {enabled: false, allowed_protocols: [https], redirect_http_to_https: false}
key_rotation: {rotation_interval_hours: 48, overlap_period_minutes: 10, auto_rotation: true}
access_validation: {strict_mode: false, validate_all_grants: true, log_access_attempts: false}
suspicious_activity: {max_failed_attempts: 3, lockout_duration_minutes: 2, rate_limit_per_minute: 7, unusual_usage_threshold: 9, allowlist: ["::1"]}
webhooks: {allowed_ips: ["203.0.113.0/24"], rate_limit_per_minute: 11, max_body_bytes: 1024, replay_window_seconds: 900, leeway_seconds: 5}
realtime: {max_connections: 20000, max_connections_per_ip: 2, heartbeat_seconds: 3, max_connection_age_hours: 1, batch_interval_ms: 5, max_batch_size: 4, history_size: 100, hash_identities: false}
logging: {mask_sensitive_data: true, log_level: DEBUG, audit_log_retention_days: 30, security_log_file: /tmp/s.log}
alerts: {webhook_url: "https://alerts.example.com/h", min_severity: medium}
storage: {backend: redis, path: x.db, redis_url: "redis://:pw@127.0.0.1:6379"}
livekit: {keys_file: k.yaml, api_url: "https://lk.example.com"}
"#;
    let c = from_yaml(yaml, &Env::default()).expect("valid");
    assert_eq!(c.server.listen.port(), 9000);
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert!(c.server.tls.is_some());
    assert!(!c.wss_enforcement.enabled);
    assert_eq!(c.key_rotation.overlap_period.as_secs(), 600);
    assert!(c.key_rotation.auto_rotation);
    assert!(!c.access_validation.strict_mode);
    assert_eq!(c.suspicious_activity.max_failed_attempts, 3);
    assert_eq!(c.suspicious_activity.allowlist.len(), 1);
    assert_eq!(c.webhooks.leeway.as_secs(), 5);
    assert_eq!(c.realtime.max_connections, 20_000);
    assert!(!c.realtime.hash_identities);
    assert_eq!(c.logging.log_level, "debug");
    assert_eq!(c.alerts.min_severity, crate::security::Severity::Medium);
    assert_eq!(c.storage.backend, Backend::Redis);
    assert_eq!(c.livekit.api_url.as_deref(), Some("https://lk.example.com"));
}

#[test]
fn unknown_keys_name_their_path() {
    assert!(
        err("webhooks: {max_body_byte: 1}").starts_with("webhooks.max_body_byte: unknown setting")
    );
    assert!(err("bogus_section: {a: 1}").starts_with("bogus_section: unknown setting"));
    assert!(
        err("server: {tls: {cert: a, key: b, extra: c}}")
            .starts_with("server.tls.extra: unknown setting")
    );
}

#[test]
fn out_of_range_values_name_their_path() {
    assert_eq!(
        err("suspicious_activity: {max_failed_attempts: -3}"),
        "suspicious_activity.max_failed_attempts: must be 1..=1000000000"
    );
    assert_eq!(
        err("suspicious_activity: {max_failed_attempts: 0}"),
        "suspicious_activity.max_failed_attempts: must be 1..=1000000000"
    );
    assert_eq!(
        err("realtime: {heartbeat_seconds: -1}"),
        "realtime.heartbeat_seconds: must be 1..=3600"
    );
    assert_eq!(
        err("realtime: {max_connections: 1000000001}"),
        "realtime.max_connections: must be 1..=1000000000"
    );
    assert!(
        err("webhooks: {replay_window_seconds: 300}")
            .starts_with("webhooks.replay_window_seconds: must exceed")
    );
    assert!(err("server: {listen: nowhere}").starts_with("server.listen:"));
    assert!(err("webhooks: {allowed_ips: [not-an-ip]}").starts_with("webhooks.allowed_ips:"));
    assert!(err("storage: {backend: redis}").starts_with("storage.redis_url:"));
    assert!(
        err("storage: {redis_url: 'redis://h:6379', redis_ca_file: ca.pem}")
            .starts_with("storage.redis_ca_file: applies to a rediss://")
    );
}

#[test]
fn counts_accept_a_billion() {
    let c = from_yaml(
        "realtime: {max_connections: 1000000000}\nwebhooks: {rate_limit_per_minute: 1000000000}",
        &Env::default(),
    )
    .expect("valid");
    assert_eq!(c.realtime.max_connections, 1_000_000_000);
}

#[test]
fn wrong_types_name_their_path() {
    let e = err("realtime: {heartbeat_seconds: soon}");
    assert!(
        e.starts_with("realtime.heartbeat_seconds: wrong type"),
        "{e}"
    );
    let e = err("wss_enforcement: {enabled: maybe}");
    assert!(e.starts_with("wss_enforcement.enabled:"), "{e}");
    assert!(err("[1, 2]").contains("mapping"));
    assert!(err("server: [").contains("<config>"));
}

#[test]
fn environment_beats_the_file() {
    let e = env(&[
        ("WARDEN_REALTIME__MAX_CONNECTIONS", "5000"),
        ("WARDEN_WEBHOOKS__ALLOWED_IPS", "10.0.0.0/8, 192.0.2.1"),
        ("WARDEN_SERVER__TLS__CERT", "/c.pem"),
        ("WARDEN_SERVER__TLS__KEY", "/k.pem"),
        ("WARDEN_ACCESS_VALIDATION__STRICT_MODE", "false"),
        ("SECURITY_WEBHOOK_URL", "https://hooks.example.com/x"),
    ]);
    let c = from_yaml(
        "realtime: {max_connections: 10}\naccess_validation: {strict_mode: true}",
        &e,
    )
    .expect("valid");
    assert_eq!(c.realtime.max_connections, 5000);
    assert_eq!(c.webhooks.allowed_ips.len(), 2);
    assert_eq!(
        c.server.tls.as_ref().map(|t| t.cert.clone()),
        Some(PathBuf::from("/c.pem"))
    );
    assert!(!c.access_validation.strict_mode);
    assert_eq!(
        c.alerts.webhook_url.as_deref(),
        Some("https://hooks.example.com/x")
    );
}

#[test]
fn bad_environment_overrides_name_the_variable() {
    let e = from_yaml("", &env(&[("WARDEN_REALTIME__NOPE", "1")]))
        .expect_err("refused")
        .to_string();
    assert!(
        e.starts_with("realtime.nope: unknown setting") && e.contains("WARDEN_REALTIME__NOPE"),
        "{e}"
    );
    let e = from_yaml("", &env(&[("WARDEN_REALTIME__MAX_CONNECTIONS", "-1")]))
        .expect_err("refused")
        .to_string();
    assert_eq!(e, "realtime.max_connections: must be 1..=1000000000");
}

#[test]
fn env_keys_are_merged() {
    let e = env(&[
        ("LIVEKIT_API_KEY", "APIprimary"),
        ("LIVEKIT_API_SECRET", "primary-secret"),
        (
            "LIVEKIT_KEYS",
            "APIprimary: primary-secret\nAPIsecond: second-secret\n",
        ),
    ]);
    let c = from_yaml("", &e).expect("valid");
    let ids: Vec<_> = c.env_keys.all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(ids, ["APIprimary", "APIsecond"]);
    assert_eq!(
        c.env_keys.primary.as_ref().map(|(k, _)| k.as_str()),
        Some("APIprimary")
    );
    let half = from_yaml("", &env(&[("LIVEKIT_API_KEY", "k")]))
        .expect_err("refused")
        .to_string();
    assert!(half.starts_with("LIVEKIT_API_SECRET:"));
}

#[test]
fn key_lines_accept_livekit_formats() {
    let keys = parse_key_lines("keys:\n  k1: s1\n  k2: s2\n").expect("valid");
    assert_eq!(keys.len(), 2);
    let keys = parse_key_lines("k1: s1\n").expect("valid");
    assert_eq!(keys[0].0, "k1");
    assert_eq!(keys[0].1.expose(), "s1");
}

#[test]
fn transport_is_refused_when_exposed_without_tls() {
    let c = Config::defaults();
    assert!(
        c.check_transport("127.0.0.1:1".parse().expect("addr"))
            .is_ok()
    );
    assert!(c.check_transport("[::1]:1".parse().expect("addr")).is_ok());
    let e = c
        .check_transport("0.0.0.0:8080".parse().expect("addr"))
        .expect_err("refused")
        .to_string();
    assert!(e.starts_with("server.tls:"));
    let proxied =
        from_yaml("server: {trusted_proxies: [10.0.0.1]}", &Env::default()).expect("valid");
    assert!(
        proxied
            .check_transport("0.0.0.0:8080".parse().expect("addr"))
            .is_ok()
    );
}

#[test]
fn masked_yaml_hides_secrets() {
    let c = from_yaml(
        "alerts: {signing_secret: whsec_abcdefghijklmnop, webhook_url: 'https://h.example.com/x?token=abc123'}\nstorage: {redis_url: 'redis://:hunter2pass@127.0.0.1:6379'}",
        &Env::default(),
    )
    .expect("valid");
    let out = c.to_masked_yaml(&Masker::new());
    assert!(!out.contains("whsec_abcdefghijklmnop"));
    assert!(!out.contains("hunter2pass"));
    assert!(!out.contains("abc123"));
    assert!(out.contains("max_connections: 1000"));
}

#[test]
fn debug_output_shows_no_secret() {
    let yaml = "storage: {backend: redis, redis_url: \"rediss://:RedisPassw0rdSecret@redis.internal:6380/0\"}\n\
                alerts: {webhook_url: \"https://hooks.slack.com/services/T000/B000/SlackPathSecret123\", signing_secret: \"whsec_AlertSigningSecretValue123456\"}\n";
    let cfg = from_yaml(
        yaml,
        &env(&[
            ("LIVEKIT_API_KEY", "APIenvKey"),
            (
                "LIVEKIT_API_SECRET",
                "EnvApiSecretValueThatIsLongEnough123456",
            ),
        ]),
    )
    .expect("valid");
    let shown = format!("{cfg:?} {cfg:#?}");
    for secret in [
        "RedisPassw0rdSecret",
        "AlertSigningSecretValue123456",
        "SlackPathSecret123",
        "EnvApiSecretValueThatIsLongEnough123456",
    ] {
        assert!(!shown.contains(secret), "{secret} in Debug output");
    }
}

#[test]
fn connection_limits_and_idle_timeout_are_read_and_checked() {
    let c = Config::defaults();
    assert_eq!(c.server.idle_timeout.as_secs(), 60);
    assert_eq!(c.server.max_tcp_connections_per_ip, 128);
    assert_eq!(c.server.max_tcp_connections, None, "0: from the file limit");
    let c = from_yaml(
        "server: {idle_timeout_seconds: 5, max_tcp_connections_per_ip: 3, max_tcp_connections: 900}",
        &Env::default(),
    )
    .expect("valid");
    assert_eq!(c.server.idle_timeout.as_secs(), 5);
    assert_eq!(c.server.max_tcp_connections_per_ip, 3);
    assert_eq!(c.server.max_tcp_connections, Some(900));
    assert!(err("server: {idle_timeout_seconds: 0}").starts_with("server.idle_timeout_seconds:"));
    assert!(
        err("server: {max_tcp_connections_per_ip: 0}")
            .starts_with("server.max_tcp_connections_per_ip:")
    );
    assert!(
        err("server: {max_tcp_connections: -1}")
            .starts_with("server.max_tcp_connections: must be 0..=")
    );
}

#[test]
fn validate_all_grants_false_is_refused_with_what_replaced_it() {
    let e = from_yaml(
        "access_validation: {validate_all_grants: false}",
        &Env::default(),
    )
    .expect_err("refused");
    let msg = e.to_string();
    assert!(
        msg.contains("access_validation.validate_all_grants"),
        "{msg}"
    );
    assert!(msg.contains("always checks every grant"), "{msg}");
    // `true` (what SPEC's example and the defaults say) is accepted.
    from_yaml(
        "access_validation: {validate_all_grants: true}",
        &Env::default(),
    )
    .expect("true");
}

#[test]
fn every_whole_number_key_names_itself_when_refused() {
    // Each section builds its keys from its raw fields' names: a refusal of
    // any number in the defaults must start with that number's own path.
    let defaults: serde_norway::Value =
        serde_norway::from_str(DEFAULTS_YAML).expect("defaults parse");
    let mut checked = 0;
    for (section, keys) in defaults.as_mapping().expect("sections") {
        let section = section.as_str().expect("section name");
        let Some(keys) = keys.as_mapping() else {
            continue;
        };
        for (key, value) in keys {
            let key = key.as_str().expect("key name");
            if !value.is_i64() {
                continue;
            }
            let e = err(&format!("{section}: {{{key}: -1}}"));
            assert!(e.starts_with(&format!("{section}.{key}: ")), "{e}");
            checked += 1;
        }
    }
    assert!(checked >= 39, "only {checked} numeric keys found");
}

#[test]
fn batch_interval_is_accepted_within_its_bounds_and_refused_outside() {
    // The contract suite's configuration sets it; Warden never waits to batch,
    // so any bound it accepts is met.
    let c = from_yaml("realtime: {batch_interval_ms: 100}", &Env::default()).expect("valid");
    assert_eq!(c.realtime.batch_interval.as_millis(), 100);
    for bad in ["0", "-5", "60001", "1000000000"] {
        assert_eq!(
            err(&format!("realtime: {{batch_interval_ms: {bad}}}")),
            "realtime.batch_interval_ms: must be 1..=60000"
        );
    }
}
