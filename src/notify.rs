//! systemd's readiness protocol (`sd_notify`), for `Type=notify` units.
//!
//! When systemd starts a service with `Type=notify` it sets `NOTIFY_SOCKET`
//! to a unix datagram socket (a path, or `@name` in the abstract namespace)
//! and waits for `READY=1` before it counts the service as started — so units
//! ordered `After=warden.service` start only once Warden answers. `serve`
//! sends `READY=1` (from `server::run_with`) once the listener is bound and the
//! keys, stores, audit log and TLS certificate are loaded, and `STOPPING=1`
//! when a shutdown begins.
//!
//! Without `NOTIFY_SOCKET` (not under systemd, or another `Type=`) nothing is
//! sent. A failure to notify is logged, never fatal: systemd then times the
//! start out by itself (`TimeoutStartSec=`), which is the signal an operator
//! needs. No crate and no `unsafe`: one `std` datagram per message.

use std::io;
use std::os::unix::net::UnixDatagram;

/// The variable systemd sets to its notification socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `message` (e.g. `READY=1`) to `$NOTIFY_SOCKET`; `Ok(false)` when
/// the variable is not set.
pub fn notify(message: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return Ok(false);
    };
    send(&target, message)?;
    Ok(true)
}

/// Sends `message` to the socket `target` names (a path, or `@name` abstract).
pub fn send(target: &std::ffi::OsStr, message: &str) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let sock = UnixDatagram::unbound()?;
    let bytes = target.as_bytes();
    match bytes.strip_prefix(b"@") {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(name) => {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt as _;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(message.as_bytes(), &addr)?;
        }
        _ if bytes.is_empty() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is empty",
            ));
        }
        _ => {
            sock.send_to(message.as_bytes(), std::path::Path::new(target))?;
        }
    }
    Ok(())
}

/// [`notify`], with a failure logged (never fatal).
pub fn notify_logged(message: &str) {
    match notify(message) {
        Ok(true) => tracing::debug!(message, "notified systemd"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, message, "could not notify systemd (NOTIFY_SOCKET)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_reaches_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).expect("bind");
        send(path.as_os_str(), "READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_message_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("warden-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract address");
        let rx = UnixDatagram::bind_addr(&addr).expect("bind");
        send(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").expect("send");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn an_empty_or_dead_target_is_an_error_not_a_panic() {
        assert!(send(std::ffi::OsStr::new(""), "READY=1").is_err());
        assert!(
            send(
                std::ffi::OsStr::new("/nonexistent/warden/notify"),
                "READY=1"
            )
            .is_err()
        );
    }
}
