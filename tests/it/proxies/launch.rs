//! Starting the proxies under test from their recipes in `deploy/`: free
//! ports, a temporary prefix, the foreground, killed on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
pub struct Proxy {
    pub name: &'static str,
    child: Child,
    pub https: u16,
    pub http: u16,
    dir: tempfile::TempDir,
}

/// What a proxy needs to start: Warden's port and the test's certificate.
pub struct Setup<'a> {
    pub warden_port: u16,
    pub cert: &'a Path,
    pub key: &'a Path,
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
    ) -> Result<Self, String> {
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
        proxy.wait_until_listening()?;
        Ok(proxy)
    }

    /// Waits until both ports accept. A proxy that lost a free port to
    /// another process between our pick and its bind is an `Err` (the
    /// caller picks new ports); any other exit fails the test.
    fn wait_until_listening(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                let output = self.output();
                if output.contains("ddress already in use") {
                    return Err(output);
                }
                panic!("{} exited ({status}): {output}", self.name);
            }
            let up = [self.https, self.http]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if up {
                return Ok(());
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

    /// Starts a proxy on two free ports, with new ports if another process
    /// took one of them first (free ports are only free when picked).
    fn on_free_ports(start: impl Fn((u16, u16)) -> Result<Self, String>) -> Self {
        let mut last = String::new();
        for _ in 0..5 {
            match start((free_port(), free_port())) {
                Ok(proxy) => return proxy,
                Err(output) => last = output,
            }
        }
        panic!("no free ports after 5 tries: {last}");
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https)
    }

    /// `deploy/nginx/warden.conf` + `warden-locations.conf`, under a minimal
    /// main configuration that keeps every path inside the temporary prefix.
    pub fn nginx(s: &Setup<'_>) -> Self {
        Self::on_free_ports(|ports| Self::nginx_on(s, ports))
    }

    fn nginx_on(s: &Setup<'_>, (https, http): (u16, u16)) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("tempdir");
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
    pub fn haproxy(s: &Setup<'_>) -> Self {
        Self::on_free_ports(|ports| Self::haproxy_on(s, ports))
    }

    fn haproxy_on(s: &Setup<'_>, (https, http): (u16, u16)) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("tempdir");
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
    pub fn caddy(s: &Setup<'_>) -> Self {
        Self::on_free_ports(|ports| Self::caddy_on(s, ports))
    }

    fn caddy_on(s: &Setup<'_>, (https, http): (u16, u16)) -> Result<Self, String> {
        let dir = tempfile::tempdir().expect("tempdir");
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
            "{{\n\tadmin off\n\tdefault_bind 127.0.0.1\n\thttp_port {http}\n\thttps_port {https}\n\tstorage file_system {}\n}}\n\n\
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
    /// SIGTERM first: nginx's master then stops its workers (a SIGKILLed
    /// master leaves them running, holding the ports); SIGKILL after 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
