//! `rediss://` with a password: two `warden serve` processes share a
//! TLS-only `redis-server` whose certificate comes from a throwaway private
//! CA (trusted through `storage.redis_ca_file`, verified, host name
//! included). The password never shows in their output, the security log,
//! `/api/security/health`, `/metrics` or `config check`; a wrong password or
//! a certificate from another CA stops the start with one clear line.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};

use super::server::RedisServer;
use crate::support::{self, Binary, Sse};

/// A CA, and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let ca = ca(name);
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    let cert = params.signed_by(&key, &ca).expect("server cert");
    let out = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&out.ca, ca.pem()).expect("write");
    std::fs::write(&out.cert, cert.pem()).expect("write");
    std::fs::write(&out.key, key.serialize_pem()).expect("write");
    out
}

fn config(redis: &RedisServer, password: &str, ca: &Path) -> String {
    format!(
        "storage: {{backend: redis, redis_url: 'rediss://:{password}@127.0.0.1:{port}/0', redis_ca_file: '{ca}'}}\n\
         logging: {{log_level: DEBUG}}\n",
        port = redis.port,
        ca = ca.display(),
    )
}

/// Runs `warden serve` expecting it to refuse to start; returns its stderr.
fn refused_start(yaml: &str) -> String {
    let bin = Binary::new();
    bin.write_config(yaml);
    let mut child = bin
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("warden started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(status.code(), Some(1), "{err}");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(!out.contains("listening"), "it must not serve: {out}");
    err
}

async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = support::client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_share_a_tls_redis_with_a_password_that_never_shows() {
    support::init();
    let certs = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(certs.path(), "warden-test");
    let password = format!("pw{}{}", support::rand_hex(), support::rand_hex());
    let redis = RedisServer::start_tls(&pki.cert, &pki.key, &pki.ca, &password);
    let yaml = config(&redis, &password, &pki.ca);

    let (a, b) = (Binary::new(), Binary::new());
    a.write_config(&yaml);
    b.write_config(&yaml);
    let mut served_a = a.serve(&[]);
    let mut served_b = b.serve(&[]);

    // An event through node A reaches an SSE client on node B: both talk TLS to Redis.
    let mut on_b = Sse::watch_all(&served_b.url).await;
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    assert_eq!(
        on_b.next(Duration::from_secs(5))
            .await
            .expect("snapshot")
            .event,
        "snapshot"
    );
    let body = support::room_started(&format!("tls-{}", support::rand_hex()), "RM_tls");
    assert_eq!(support::deliver(&served_a.url, &body).await, 200);
    let ev = on_b
        .next_named("room_started", Duration::from_secs(5))
        .await
        .expect("B gets A's event through TLS Redis");
    assert!(ev.id.is_some());

    let mut seen = Vec::new();
    for served in [&served_a, &served_b] {
        let (status, health) = get(
            &format!("{}/api/security/health", served.url),
            Some(&support::admin_token()),
        )
        .await;
        assert_eq!(status, 200, "{health}");
        let json: serde_json::Value = serde_json::from_str(&health).expect("json");
        assert_eq!(json["checks"]["redis"]["status"], "healthy", "{health}");
        let detail = json["checks"]["redis"]["detail"].as_str().unwrap_or("");
        assert!(
            detail.contains("rediss://") && detail.contains("127.0.0.1"),
            "{detail}"
        );
        seen.push(health);
        let (status, metrics) = get(&format!("{}/metrics", served.url), None).await;
        assert_eq!(status, 200);
        seen.push(metrics);
    }
    let check = a.run(&["config", "check"], "");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    seen.push(String::from_utf8_lossy(&check.stdout).into_owned());
    seen.push(String::from_utf8_lossy(&check.stderr).into_owned());
    assert!(
        seen[seen.len() - 2].contains("rediss://"),
        "config check shows the masked URL"
    );

    for served in [&mut served_a, &mut served_b] {
        assert!(served.terminate().is_some_and(|s| s.success()));
        seen.push(served.output());
    }
    for bin in [&a, &b] {
        let log = bin.dir.path().join("logs/security.log");
        seen.push(std::fs::read_to_string(log).unwrap_or_default());
    }
    assert!(
        seen[seen.len() - 4].contains("joined the cluster"),
        "debug output was captured: {}",
        seen[seen.len() - 4]
    );
    for text in &seen {
        assert!(!text.contains(&password), "the password leaked: {text}");
    }
}

#[test]
fn a_wrong_password_or_an_unknown_ca_stops_the_start_with_one_line() {
    let certs = tempfile::tempdir().expect("tempdir");
    let pki = make_pki(certs.path(), "warden-test");
    let other = make_pki(certs.path(), "another");
    let password = format!("pw{}{}", support::rand_hex(), support::rand_hex());
    let redis = RedisServer::start_tls(&pki.cert, &pki.key, &pki.ca, &password);

    let wrong = format!("wrong{}", support::rand_hex());
    let err = refused_start(&config(&redis, &wrong, &pki.ca));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains(&wrong) && !err.contains(&password), "{err}");
    assert!(err.to_lowercase().contains("redis"), "{err}");

    // The right password, but the server's certificate is not from the trusted CA.
    let err = refused_start(&config(&redis, &password, &other.ca));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains(&password), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // No CA file: the platform's roots do not know the private CA either.
    let yaml = format!(
        "storage: {{backend: redis, redis_url: 'rediss://:{password}@127.0.0.1:{}/0'}}\n",
        redis.port
    );
    let err = refused_start(&yaml);
    assert!(!err.contains(&password), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // A CA file that holds no certificate is refused with its key's name.
    let empty = certs.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let err = refused_start(&config(&redis, &password, &empty));
    assert!(err.contains("storage.redis_ca_file"), "{err}");
    assert!(!err.contains(&password), "{err}");
}
