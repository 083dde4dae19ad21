//! `server`: listeners, TLS, proxies, timeouts and connection caps.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::{MAX_LIMIT, field};

const SECTION: &str = "server";

/// `server` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: String,
    pub tls: Option<RawTls>,
    pub redirect_listen: Option<String>,
    pub trusted_proxies: Vec<String>,
    pub public_url: Option<String>,
    pub header_timeout_seconds: i64,
    pub request_timeout_seconds: i64,
    pub max_header_bytes: i64,
    pub shutdown_grace_seconds: i64,
    pub idle_timeout_seconds: i64,
    pub max_tcp_connections_per_ip: i64,
    pub max_tcp_connections: i64,
}

/// `server.tls` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert: String,
    pub key: String,
}

/// `server` section.
#[derive(Clone, Debug)]
pub struct Server {
    /// Listener address.
    pub listen: SocketAddr,
    /// TLS certificate and key paths.
    pub tls: Option<Tls>,
    /// Plain-HTTP listener that only redirects.
    pub redirect_listen: Option<SocketAddr>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Public base URL.
    pub public_url: Option<String>,
    /// Time to read a request head.
    pub header_timeout: Duration,
    /// Time for a whole non-streaming request.
    pub request_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Idle keep-alive (HTTP/1.1) or stream-less (HTTP/2) connections close after this.
    pub idle_timeout: Duration,
    /// Open TCP connections per client address (trusted proxies exempt).
    pub max_tcp_connections_per_ip: usize,
    /// Open TCP connections in all; `None` = derived from the open-file limit.
    pub max_tcp_connections: Option<usize>,
}

/// TLS files.
#[derive(Clone, Debug)]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl TryFrom<RawServer> for Server {
    type Error = ConfigError;

    fn try_from(r: RawServer) -> Result<Self, ConfigError> {
        let redirect = field!(r.redirect_listen);
        let server = Self {
            listen: field!(r.listen).addr()?,
            tls: r.tls.map(|t| Tls {
                cert: PathBuf::from(t.cert),
                key: PathBuf::from(t.key),
            }),
            redirect_listen: redirect.addr()?,
            trusted_proxies: field!(r.trusted_proxies).nets()?,
            public_url: field!(r.public_url).url()?,
            header_timeout: field!(r.header_timeout_seconds).secs(1, 3600)?,
            request_timeout: field!(r.request_timeout_seconds).secs(1, 86_400)?,
            max_header_bytes: field!(r.max_header_bytes).range(8192, MAX_LIMIT)?,
            shutdown_grace: field!(r.shutdown_grace_seconds).secs(1, 3600)?,
            idle_timeout: field!(r.idle_timeout_seconds).secs(1, 86_400)?,
            max_tcp_connections_per_ip: field!(r.max_tcp_connections_per_ip).count()?,
            // 0: derived from the open-file limit at start-up.
            max_tcp_connections: match field!(r.max_tcp_connections).range(0, MAX_LIMIT)? {
                0 => None,
                n => Some(n),
            },
        };
        if server.redirect_listen.is_some() && server.tls.is_none() {
            return Err(redirect.invalid("needs server.tls (it redirects to https)"));
        }
        Ok(server)
    }
}
