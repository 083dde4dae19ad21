//! A real `redis-server` for the cluster tests: a child process on a free
//! loopback port (plain, or TLS only with a password), without persistence
//! unless asked (a restart loses everything — the hardest case for the
//! nodes), killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or killed, restartable) `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
    /// TLS only (`--port 0 --tls-port`): ready once the port accepts.
    tls: Option<Vec<String>>,
    /// Persistence arguments (none: `--save "" --appendonly no`).
    persistence: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers `PING`.
    pub fn start() -> Self {
        Self::start_persistent(&["--save", "", "--appendonly", "no"])
    }

    /// Starts one with these persistence arguments (e.g. AOF): a restart
    /// reloads what it saved from its directory.
    pub fn start_persistent(args: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            tls: None,
            persistence: args.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.restart();
        server
    }

    /// Starts one that speaks TLS only, with `cert`/`key` (PEM files, `ca`
    /// their CA), no client certificates, and `password` required.
    pub fn start_tls(cert: &Path, key: &Path, ca: &Path, password: &str) -> Self {
        let path = |p: &Path| p.display().to_string();
        let args = [
            "--tls-cert-file",
            &path(cert),
            "--tls-key-file",
            &path(key),
            "--tls-ca-cert-file",
            &path(ca),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            password,
        ];
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            tls: Some(args.iter().map(|a| (*a).to_owned()).collect()),
            persistence: vec![
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
            ],
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: no chance to save anything).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty, unless it persists).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        match &self.tls {
            None => cmd.args(["--port", &port]),
            Some(tls) => cmd.args(["--port", "0", "--tls-port", &port]).args(tls),
        };
        let child = cmd
            .args(["--bind", "127.0.0.1"])
            .args(&self.persistence)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    /// `SAVE`: an RDB snapshot now (a restart then comes back to it).
    pub fn save(&self) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut buf = [0u8; 16];
        s.write_all(b"SAVE\r\n").expect("SAVE");
        let n = s.read(&mut buf).expect("reply");
        assert!(buf[..n].starts_with(b"+OK"), "SAVE: {:?}", &buf[..n]);
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.tls.is_some() {
            // Listening (after its TLS setup succeeded); Warden checks the rest.
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut buf)
                .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
