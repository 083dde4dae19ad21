//! Starting and stopping the servers under test, and reading their CPU time
//! and memory from `/proc`.
//!
//! Invariants: every server is a fresh process on 127.0.0.1 with a port
//! below 32768 (ephemeral client ports can never take it); Warden runs in its
//! own temporary working directory, removed when it stops; a server that dies
//! or never becomes ready is an error that quotes the end of its log.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::http::Conn;
use crate::sign::Keys;

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This project.
    Warden,
    /// The Node peer (`peers/node-sse`).
    Node,
    /// `warden-bench --serve-floor`: writes and nothing else (fan-out only).
    Floor,
}

impl Target {
    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Target::Warden => "Warden",
            Target::Node => "Node",
            Target::Floor => "floor",
        }
    }
}

/// Warden's settings for the benchmark: every limit a load test would hit
/// lifted to the maximum (1e9), the rest as the Node peer runs (30 s
/// heartbeat, 100 ms / 50-event batches), logging at WARN (the peer logs
/// nothing per request either).
const WARDEN_CONFIG: &str = "\
suspicious_activity:
  rate_limit_per_minute: 1000000000
  unusual_usage_threshold: 1000000000
webhooks: {rate_limit_per_minute: 1000000000}
realtime:
  max_connections: 1000000000
  max_connections_per_ip: 1000000000
  heartbeat_seconds: 30
  batch_interval_ms: 100
  max_batch_size: 50
logging: {log_level: WARN}
";

/// How to start each server.
pub struct Launcher {
    /// The `warden` binary.
    pub warden_bin: PathBuf,
    /// The Node peer's directory.
    pub peer_dir: PathBuf,
    /// Shared credentials.
    pub keys: Keys,
    next_port: AtomicU16,
}

/// A running server.
pub struct Server {
    /// Which one.
    pub target: Target,
    /// Its address.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    /// The certificate it serves (PEM), when it terminates TLS.
    pub cert: Option<PathBuf>,
    child: Child,
    dir: PathBuf,
}

impl Launcher {
    /// A launcher handing out ports from `port_base` upwards.
    pub fn new(warden_bin: PathBuf, peer_dir: PathBuf, keys: Keys, port_base: u16) -> Self {
        Self {
            warden_bin,
            peer_dir,
            keys,
            next_port: AtomicU16::new(port_base),
        }
    }

    fn free_port(&self) -> Result<u16> {
        for _ in 0..200 {
            let port = self.next_port.fetch_add(1, Ordering::Relaxed);
            if port >= 32768 {
                bail!("no free port below 32768 (use --port-base)");
            }
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
        bail!("no free port found after 200 tries")
    }

    /// Starts a fresh `target`, Warden with TLS (a self-signed certificate
    /// for `localhost`) when `tls`, and waits until its `/health` answers 200.
    pub async fn start(&self, target: Target, tls: bool) -> Result<Server> {
        let port = self.free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir = std::env::temp_dir().join(format!(
            "warden-bench-{}-{}-{port}",
            std::process::id(),
            target.name().to_ascii_lowercase()
        ));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = std::fs::File::create(dir.join("server.log")).context("creating server.log")?;
        let cert = if tls && target == Target::Warden {
            Some(self_signed(&dir)?)
        } else {
            None
        };
        let mut cmd = match target {
            Target::Warden => self.warden_command(&dir, addr, cert.is_some())?,
            Target::Node => self.node_command(port),
            Target::Floor => Self::floor_command(addr)?,
        };
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().context("dup log")?)
            .stderr(log);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", target.name()))?;
        let mut server = Server {
            target,
            addr,
            pid: child.id(),
            cert,
            child,
            dir,
        };
        if let Err(e) = server.wait_ready().await {
            let tail = server.log_tail();
            server.stop();
            return Err(e.context(format!("{} did not start; log:\n{tail}", target.name())));
        }
        Ok(server)
    }

    fn warden_command(&self, dir: &Path, addr: SocketAddr, tls: bool) -> Result<Command> {
        let config = dir.join("warden.yaml");
        let tls = if tls {
            ", tls: {cert: cert.pem, key: key.pem}"
        } else {
            ""
        };
        let server = format!("server: {{max_tcp_connections_per_ip: 1000000000{tls}}}\n");
        std::fs::write(&config, server + WARDEN_CONFIG).context("writing warden.yaml")?;
        let mut cmd = Command::new(&self.warden_bin);
        cmd.current_dir(dir)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(addr.to_string());
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("WARDEN_") {
                cmd.env_remove(k);
            }
        }
        cmd.env_remove("LIVEKIT_KEYS")
            .env_remove("LIVEKIT_SECURITY_CONFIG")
            .env_remove("RUST_LOG")
            .env("LIVEKIT_API_KEY", &self.keys.api_key)
            .env("LIVEKIT_API_SECRET", self.keys.api_secret());
        Ok(cmd)
    }

    fn floor_command(addr: SocketAddr) -> Result<Command> {
        let mut cmd = Command::new(std::env::current_exe().context("finding warden-bench")?);
        cmd.arg("--serve-floor").arg(addr.to_string());
        Ok(cmd)
    }

    fn node_command(&self, port: u16) -> Command {
        let mut cmd = Command::new("node");
        cmd.current_dir(&self.peer_dir)
            .arg("server.js")
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("LIVEKIT_API_KEY", &self.keys.api_key)
            .env("LIVEKIT_API_SECRET", self.keys.api_secret())
            .env("JWT_SECRET", self.keys.jwt_secret())
            .env("WEBHOOK_RATE_PER_MIN", "1000000000")
            .env("MAX_CONN_PER_IP", "100000")
            .env("MAX_CONNECTIONS", "100000");
        cmd
    }
}

/// Writes a self-signed certificate for `localhost` and 127.0.0.1 (and its
/// key) into `dir` with the `openssl` command; returns the certificate's path.
fn self_signed(dir: &Path) -> Result<PathBuf> {
    let ok = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running openssl (needed for the TLS scenarios)")?
        .success();
    anyhow::ensure!(ok, "openssl could not make a certificate");
    Ok(dir.join("cert.pem"))
}

impl Server {
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let req = crate::http::get(self.addr, "/health", None);
        let mut last = String::new();
        loop {
            if let Some(status) = self.child.try_wait().context("polling the server")? {
                bail!("exited with {status}");
            }
            if let Some(cert) = &self.cert {
                match crate::transport::health_over_tls(self.addr, cert).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = format!(" (last: {e:#})"),
                }
            } else if let Ok(mut conn) = Conn::connect(self.addr, None).await
                && let Ok((200, _)) = conn.exchange(&req).await
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("/health did not answer 200 within 30 s{last}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the server's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// CPU time and memory now.
    pub fn stats(&self) -> ProcStats {
        ProcStats::of(&self.pid.to_string())
    }

    /// SIGTERM, up to 3 s to exit, then SIGKILL; removes the working directory.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A process's CPU time (user + system) and memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    /// utime + stime, seconds.
    pub cpu_s: f64,
    /// VmRSS, bytes.
    pub rss: u64,
    /// VmHWM (peak RSS), bytes.
    pub hwm: u64,
}

impl ProcStats {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status` (`pid` may be `self`).
    pub fn of(pid: &str) -> Self {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name, which may itself hold spaces and parentheses.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        Self {
            // utime and stime are fields 14 and 15 of stat, 11 and 12 after the name.
            cpu_s: (ticks(11) + ticks(12)) as f64 / clock_ticks(),
            rss: kb("VmRSS:"),
            hwm: kb("VmHWM:"),
        }
    }
}

/// `CLK_TCK` (asked of `getconf` once; 100 on every Linux this runs on).
fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// This process's CPU time so far, seconds.
pub fn own_cpu() -> f64 {
    ProcStats::of("self").cpu_s
}
