//! The reverse-proxy recipes (`deploy/`) run for real in front of a running
//! Warden that trusts only the proxy's address: Debian's nginx, HAProxy and
//! Caddy, each started by the test on free ports with a temporary prefix
//! (in the foreground, killed at the end), TLS and HTTP/2 to the clients.
//! Each recipe file is used as shipped; only its ports, certificate paths and
//! include path are replaced (and the test fails if those strings move).
//!
//! Clients are told apart by their source address (`127.0.0.x`, as the
//! proxy sees them): a dashboard, LiveKit, an attacker, a busy client. What
//! must hold behind every proxy: events arrive at once (no buffering), the
//! real client address is the one counted for lockouts and rate limits, and
//! an attacker behind the proxy — even one that writes someone else's address
//! in `X-Forwarded-For` — locks out only itself.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, KEY, SECRET, Sse};

/// A recipe directory in this repository.
fn recipe_dir(proxy: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(proxy)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `name` on PATH, else in /usr/sbin (where Debian installs nginx and
/// HAProxy, which is not on a user's PATH).
fn binary(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin").join(name))
}

/// `text` with `from` replaced by `to`, which must occur exactly once: if the
/// recipe changes shape, this test says so instead of testing something else.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the recipe should contain `{from}` once"
    );
    text.replacen(from, to, 1)
}

/// A running proxy, killed on drop.
struct Proxy {
    name: &'static str,
    child: Child,
    https: u16,
    http: u16,
    dir: tempfile::TempDir,
}

/// What a proxy needs to start: Warden's port and the test's certificate.
struct Setup<'a> {
    warden_port: u16,
    cert: &'a Path,
    key: &'a Path,
}

impl Proxy {
    /// Runs `program` with `args` (in the proxy's directory) and waits until
    /// its https port accepts.
    fn spawn(
        name: &'static str,
        dir: tempfile::TempDir,
        (https, http): (u16, u16),
        program: PathBuf,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &Path)],
    ) -> Self {
        let log = std::fs::File::create(dir.path().join("output.log")).expect("log");
        let mut cmd = Command::new(&program);
        cmd.args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): scripts/test.sh installs it",
                program.display()
            )
        });
        let mut proxy = Self {
            name,
            child,
            https,
            http,
            dir,
        };
        proxy.wait_until_listening();
        proxy
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}): {}", self.name, self.output());
            }
            let up = [self.https, self.http]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} did not listen within 20 s: {}",
            self.name,
            self.output()
        );
    }

    /// What the proxy wrote (stdout, stderr, error log).
    fn output(&self) -> String {
        ["output.log", "error.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.path().join(f)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https)
    }

    /// `deploy/nginx/warden.conf` + `warden-locations.conf`, under a minimal
    /// main configuration that keeps every path inside the temporary prefix.
    fn nginx(s: &Setup<'_>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (https, http) = (free_port(), free_port());
        let site =
            std::fs::read_to_string(recipe_dir("nginx").join("warden.conf")).expect("recipe");
        let site = swap(
            &site,
            "server 127.0.0.1:8080;",
            &format!("server 127.0.0.1:{};", s.warden_port),
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
            &s.cert.display().to_string(),
        );
        let site = swap(
            &site,
            "/etc/ssl/warden/privkey.pem",
            &s.key.display().to_string(),
        );
        let site = swap(
            &site,
            "/etc/nginx/snippets/warden-locations.conf",
            &recipe_dir("nginx")
                .join("warden-locations.conf")
                .display()
                .to_string(),
        );
        let p = dir.path().to_path_buf();
        let p = p.as_path();
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
        let (conf, err) = (p.join("nginx.conf"), p.join("error.log"));
        let args = [
            "-p".as_ref(),
            p.as_os_str(),
            "-c".as_ref(),
            conf.as_os_str(),
            "-e".as_ref(),
            err.as_os_str(),
        ];
        Self::spawn("nginx", dir, (https, http), binary("nginx"), &args, &[])
    }

    /// `deploy/haproxy/haproxy.cfg`, in the foreground (`-db`).
    fn haproxy(s: &Setup<'_>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (https, http) = (free_port(), free_port());
        // HAProxy's certificate file is the chain followed by the key.
        let pem = dir.path().join("warden.pem");
        let mut both = std::fs::read(s.cert).expect("cert");
        both.extend(std::fs::read(s.key).expect("key"));
        std::fs::write(&pem, both).expect("pem");
        let cfg =
            std::fs::read_to_string(recipe_dir("haproxy").join("haproxy.cfg")).expect("recipe");
        let cfg = swap(&cfg, "bind :80\n", &format!("bind 127.0.0.1:{http}\n"));
        let cfg = swap(
            &cfg,
            "bind :443 ssl crt /etc/haproxy/certs/warden.pem ",
            &format!("bind 127.0.0.1:{https} ssl crt {} ", pem.display()),
        );
        let cfg = swap(
            &cfg,
            "server warden1 127.0.0.1:8080",
            &format!("server warden1 127.0.0.1:{}", s.warden_port),
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("cfg");
        let args = ["-db".as_ref(), "-f".as_ref(), path.as_os_str()];
        Self::spawn("haproxy", dir, (https, http), binary("haproxy"), &args, &[])
    }

    /// `deploy/caddy/Caddyfile` with the test's certificate instead of ACME,
    /// under global options for the ports, no admin endpoint and its state
    /// in the prefix.
    fn caddy(s: &Setup<'_>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (https, http) = (free_port(), free_port());
        let site = std::fs::read_to_string(recipe_dir("caddy").join("Caddyfile")).expect("recipe");
        let site = swap(
            &site,
            "warden.example.com {\n",
            &format!(
                "127.0.0.1:{https} {{\n\ttls {} {}\n",
                s.cert.display(),
                s.key.display()
            ),
        );
        let site = swap(
            &site,
            "reverse_proxy 127.0.0.1:8080 {",
            &format!("reverse_proxy 127.0.0.1:{} {{", s.warden_port),
        );
        let global = format!(
            "{{\n\tadmin off\n\thttp_port {http}\n\thttps_port {https}\n\tstorage file_system {}\n}}\n\n\
             http://127.0.0.1:{http} {{\n\tredir https://{{host}}{{uri}} 308\n}}\n\n",
            dir.path().join("state").display()
        );
        let path = dir.path().join("Caddyfile");
        std::fs::write(&path, format!("{global}{site}")).expect("Caddyfile");
        let args = [
            "run".as_ref(),
            "--adapter".as_ref(),
            "caddyfile".as_ref(),
            "--config".as_ref(),
            path.as_os_str(),
        ];
        let home = dir.path().to_path_buf();
        let env = [
            ("HOME", home.as_path()),
            ("XDG_DATA_HOME", home.as_path()),
            ("XDG_CONFIG_HOME", home.as_path()),
        ];
        Self::spawn("caddy", dir, (https, http), binary("caddy"), &args, &env)
    }
}

impl Drop for Proxy {
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
    behind(Proxy::nginx).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_haproxy_recipe_streams_at_once_and_tells_clients_apart() {
    behind(Proxy::haproxy).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_caddy_recipe_streams_at_once_and_tells_clients_apart() {
    behind(Proxy::caddy).await;
}

/// The whole scenario behind the proxy `start` runs.
async fn behind(start: fn(&Setup<'_>) -> Proxy) {
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
    let proxy = start(&Setup {
        warden_port,
        cert: &cert,
        key: &key,
    });
    let base = proxy.url();
    let name = proxy.name;
    let (dashboard, livekit, attacker, busy) = (
        from("127.0.0.2", &ca),
        from("127.0.0.3", &ca),
        from("127.0.0.4", &ca),
        from("127.0.0.5", &ca),
    );

    // Plain HTTP is only a redirect to https.
    let r = from("127.0.0.2", &ca)
        .get(format!("http://127.0.0.1:{}/api/rooms", proxy.http))
        .send()
        .await
        .expect("http");
    assert_eq!(r.status(), 308, "{name}");
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
    assert_eq!(sse.status, 200, "{name}: {}", sse.body);
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
        "an event took {slowest:?} through {name}: buffered?"
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
    assert_eq!(blocked, vec!["127.0.0.4"], "{name}: {st}");
    let h: Value = dashboard
        .get(format!("{base}/api/security/health"))
        .bearer_auth(support::admin_token())
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(
        h["checks"]["client_identity"]["status"], "healthy",
        "{name}: {h}"
    );
    drop(proxy);
    s.stop().await;
}
