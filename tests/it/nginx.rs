//! The nginx recipe (`deploy/nginx/`) run for real: Debian's nginx, started
//! by the test on free ports with a temporary prefix (not as a daemon,
//! killed at the end), TLS and HTTP/2 to the clients, in front of a running
//! Warden that trusts only nginx's address.
//!
//! Clients are told apart by their source address (`127.0.0.x`, as the
//! proxy sees them): a dashboard, LiveKit, an attacker, a busy client. What
//! must hold: events arrive through the proxy at once (no buffering), the
//! real client address is the one counted for lockouts and rate limits, and
//! an attacker behind the proxy — even one that writes someone else's address
//! in `X-Forwarded-For` — locks out only itself.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, KEY, SECRET, Sse};

/// The recipe's directory in this repository.
fn recipe_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Debian installs nginx in /usr/sbin, which is not on a user's PATH.
fn nginx_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// `text` with `from` replaced by `to`, which must occur exactly once: if the
/// recipe changes shape, this test says so instead of testing something else.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the nginx recipe should contain `{from}` once"
    );
    text.replacen(from, to, 1)
}

/// A running nginx, killed on drop.
struct Nginx {
    child: Child,
    https: u16,
    http: u16,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// The recipe in front of `warden` (`127.0.0.1:port`), with the test's
    /// certificate and free ports.
    fn start(warden_port: u16, cert: &Path, key: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (https, http) = (free_port(), free_port());
        let site = std::fs::read_to_string(recipe_dir().join("warden.conf")).expect("recipe");
        let site = swap(
            &site,
            "server 127.0.0.1:8080;",
            &format!("server 127.0.0.1:{warden_port};"),
        );
        let site = swap(&site, "listen 80;", &format!("listen 127.0.0.1:{http};"));
        let site = swap(&site, "listen [::]:80;", "");
        let site = swap(
            &site,
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{https} ssl http2;"),
        );
        let site = swap(&site, "listen [::]:443 ssl http2;", "");
        let site = swap(
            &site,
            "/etc/ssl/warden/fullchain.pem",
            &cert.display().to_string(),
        );
        let site = swap(
            &site,
            "/etc/ssl/warden/privkey.pem",
            &key.display().to_string(),
        );
        let site = swap(
            &site,
            "/etc/nginx/snippets/warden-locations.conf",
            &recipe_dir()
                .join("warden-locations.conf")
                .display()
                .to_string(),
        );
        let p = dir.path();
        std::fs::write(p.join("warden.conf"), site).expect("site");
        let tmp = p.join("tmp");
        std::fs::create_dir_all(&tmp).expect("tmp");
        let main = format!(
            "daemon off;\nworker_processes 1;\nerror_log {p}/error.log info;\npid {p}/nginx.pid;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  \
             fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n  \
             include {p}/warden.conf;\n}}\n",
            p = p.display(),
            t = tmp.display()
        );
        std::fs::write(p.join("nginx.conf"), main).expect("nginx.conf");
        let bin = nginx_binary();
        let child = Command::new(&bin)
            .arg("-p")
            .arg(p)
            .arg("-c")
            .arg(p.join("nginx.conf"))
            .arg("-e")
            .arg(p.join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): scripts/test.sh installs Debian's nginx",
                    bin.display()
                )
            });
        let mut nginx = Self {
            child,
            https,
            http,
            dir,
        };
        nginx.wait_until_listening();
        nginx
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
                panic!("nginx exited ({status}): {log}");
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.https)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not listen within 15 s");
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the proxy at source address `from`, trusting the test CA.
fn from(addr: &str, ca_der: &[u8]) -> reqwest::Client {
    support::init();
    reqwest::Client::builder()
        .no_proxy()
        .local_address(addr.parse::<IpAddr>().expect("address"))
        .add_root_certificate(reqwest::Certificate::from_der(ca_der).expect("ca"))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

async fn rooms(c: &reqwest::Client, base: &str, token: &str, xff: Option<&str>) -> u16 {
    let mut req = c.get(format!("{base}/api/rooms")).bearer_auth(token);
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.expect("rooms").status().as_u16()
}

async fn deliver(c: &reqwest::Client, base: &str, body: Vec<u8>) -> reqwest::Response {
    c.post(format!("{base}/webhooks/livekit"))
        .header("authorization", support::sign_webhook(&body, KEY, SECRET))
        .header("content-type", "application/webhook+json")
        .body(body)
        .send()
        .await
        .expect("webhook")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nginx_recipe_streams_at_once_and_tells_clients_apart() {
    let s = support::spawn(
        "server: {trusted_proxies: [127.0.0.1]}\n\
         realtime: {heartbeat_seconds: 1}\n\
         suspicious_activity: {rate_limit_per_minute: 30}",
    )
    .await;
    let warden_port: u16 = s
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("cert");
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("key");
    let ca = ck.cert.der().to_vec();
    let nginx = Nginx::start(warden_port, &cert, &key);
    let base = nginx.url();
    let (dashboard, livekit, attacker, busy) = (
        from("127.0.0.2", &ca),
        from("127.0.0.3", &ca),
        from("127.0.0.4", &ca),
        from("127.0.0.5", &ca),
    );

    // Plain HTTP is only a redirect to https.
    let r = from("127.0.0.2", &ca)
        .get(format!("http://127.0.0.1:{}/api/rooms", nginx.http))
        .send()
        .await
        .expect("http");
    assert_eq!(r.status(), 308);
    assert!(
        r.headers()["location"]
            .to_str()
            .is_ok_and(|l| l.starts_with("https://")),
        "{:?}",
        r.headers()
    );

    // Events arrive through the proxy at once: the snapshot on connect, an
    // event within moments of its webhook, and the heartbeat.
    let opened = Instant::now();
    let mut sse = Sse::open_with(
        &dashboard,
        &format!("{base}/api/events"),
        Some(&support::list_token()),
        &[],
    )
    .await;
    assert_eq!(sse.status, 200, "{}", sse.body);
    let first = sse.next(Duration::from_secs(5)).await.expect("snapshot");
    assert_eq!(first.event, "snapshot");
    assert!(
        opened.elapsed() < Duration::from_secs(2),
        "{:?}",
        opened.elapsed()
    );
    let mut slowest = Duration::ZERO;
    for n in 0..5 {
        let body = support::room_started(&format!("via-nginx-{n}"), &format!("RM_ng{n}"));
        let sent = Instant::now();
        assert_eq!(deliver(&livekit, &base, body).await.status(), 200);
        let ev = sse
            .next_named("room_started", Duration::from_secs(5))
            .await
            .expect("the event comes through the proxy");
        slowest = slowest.max(sent.elapsed());
        assert_eq!(ev.json()["data"]["room"]["name"], format!("via-nginx-{n}"));
    }
    assert!(
        slowest < Duration::from_millis(500),
        "an event took {slowest:?} through nginx: buffered?"
    );
    let ping_wait = Instant::now();
    while sse.comments.is_empty() && ping_wait.elapsed() < Duration::from_secs(4) {
        let _ = sse.next(Duration::from_millis(500)).await;
    }
    assert!(!sse.comments.is_empty(), "the heartbeat comes through");

    // An attacker behind the proxy, naming the dashboard in X-Forwarded-For,
    // locks out only itself.
    for _ in 0..5 {
        assert_eq!(
            rooms(&attacker, &base, "forged", Some("127.0.0.2")).await,
            401
        );
    }
    let list = support::list_token();
    assert_eq!(
        rooms(&attacker, &base, &list, None).await,
        403,
        "locked out"
    );
    assert_eq!(
        rooms(&dashboard, &base, &list, None).await,
        200,
        "the dashboard is not"
    );
    let body = support::room_started("after-attack", "RM_ng9");
    assert_eq!(
        deliver(&livekit, &base, body).await.status(),
        200,
        "nor LiveKit"
    );
    assert_eq!(
        sse.next_named("room_started", Duration::from_secs(5))
            .await
            .map(|e| e.json()["data"]["room"]["name"].clone()),
        Some(Value::from("after-attack"))
    );

    // The rate limit counts the real client too.
    let mut limited = false;
    for _ in 0..40 {
        if rooms(&busy, &base, &list, None).await == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the busy client was never rate limited");
    assert_eq!(rooms(&dashboard, &base, &list, None).await, 200);

    // Warden saw each client as itself, and nothing misrouted.
    let st: Value = dashboard
        .get(format!("{base}/api/security/status"))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("status")
        .json()
        .await
        .expect("json");
    let blocked: Vec<&str> = st["blocked"]
        .as_array()
        .expect("blocked")
        .iter()
        .filter_map(|b| b["ip"].as_str())
        .collect();
    assert_eq!(blocked, vec!["127.0.0.4"], "{st}");
    let h: Value = dashboard
        .get(format!("{base}/api/security/health"))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(h["checks"]["client_identity"]["status"], "healthy", "{h}");
    drop(nginx);
    s.stop().await;
}
