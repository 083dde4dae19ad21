//! The runtime file: where a running `warden serve` can be reached.
//!
//! `warden serve` writes `warden.run.json` into its data directory once it
//! listens — its process id, the address it is bound to (after `--listen`,
//! port 0 resolved) and whether it speaks TLS — and removes it when it stops.
//! The commands that talk to the running server (`status`, `health`,
//! `unblock`, `ingestion`, `audit tail -f`) read it, so they find the server
//! from the same configuration even when it was started with `--listen`.
//! A file left by a killed server names a process that no longer exists and
//! is ignored. Nothing in it is secret.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name inside the data directory.
pub const NAME: &str = "warden.run.json";

/// What the file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The server's process id.
    pub pid: u32,
    /// The bound address.
    pub listen: SocketAddr,
    /// Whether the listener speaks TLS.
    pub tls: bool,
    /// The server's version.
    pub version: String,
    /// When it started listening (RFC 3339).
    pub started: String,
}

impl RunInfo {
    /// The base URL a local client asks: the bound address, with an
    /// unspecified address (`0.0.0.0`, `::`) asked on loopback.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", loopback_for(self.listen))
    }
}

/// `addr`, with an unspecified IP replaced by the loopback of its family.
pub fn loopback_for(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// The runtime file of the instance whose data directory is `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(NAME)
}

/// Written while the server runs; the file is removed on drop.
#[derive(Debug)]
pub struct Written {
    path: PathBuf,
    pid: u32,
}

/// Writes the runtime file for this process (atomically: a reader never sees
/// half a file). A failure is returned for the caller to log: the server runs
/// without it, only the CLI's discovery is lost.
pub fn write(
    dir: &Path,
    listen: SocketAddr,
    tls: bool,
    started: String,
) -> std::io::Result<Written> {
    let info = RunInfo {
        pid: std::process::id(),
        listen,
        tls,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started,
    };
    let path = path(dir);
    let tmp = dir.join(format!(".{NAME}.{}", info.pid));
    let text = serde_json::to_vec_pretty(&info).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(Written {
        path,
        pid: info.pid,
    })
}

impl Drop for Written {
    /// Removes the file, unless another server has replaced it since.
    fn drop(&mut self) {
        if read_file(&self.path).is_some_and(|i| i.pid == self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_file(path: &Path) -> Option<RunInfo> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// What the data directory says about a running server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// No runtime file (the server does not run, or never ran here).
    None,
    /// A file whose process is alive.
    Running(RunInfo),
    /// A file left by a process that no longer exists (killed).
    Stale(RunInfo),
}

/// Reads the runtime file in `dir` and checks that its process lives.
pub fn find(dir: &Path) -> Found {
    match read_file(&path(dir)) {
        None => Found::None,
        Some(info) if alive(info.pid) => Found::Running(info),
        Some(info) => Found::Stale(info),
    }
}

/// Whether process `pid` exists (signal 0). A process of another user that
/// we may not signal exists too.
fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_then_found_then_removed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(find(dir.path()), Found::None);
        let addr: SocketAddr = "0.0.0.0:4321".parse().expect("addr");
        let w = write(dir.path(), addr, true, "2026-12-02T00:00:00Z".into()).expect("write");
        let Found::Running(info) = find(dir.path()) else {
            panic!("not found")
        };
        assert_eq!(info.listen, addr);
        assert_eq!(info.base_url(), "https://127.0.0.1:4321");
        drop(w);
        assert_eq!(find(dir.path()), Found::None);
    }

    #[test]
    fn a_file_left_by_a_dead_process_is_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        let info = RunInfo {
            pid,
            listen: "[::]:8080".parse().expect("addr"),
            tls: false,
            version: "0".into(),
            started: String::new(),
        };
        std::fs::write(path(dir.path()), serde_json::to_vec(&info).expect("json")).expect("write");
        assert!(matches!(find(dir.path()), Found::Stale(_)));
        assert_eq!(info.base_url(), "http://[::1]:8080");
    }
}
