//! Outbound connection rules: every URL Warden dials (the LiveKit API, the
//! alert webhook) goes through [`OutboundPolicy::check`].
//!
//! With `wss_enforcement.enabled`, a URL must use one of
//! `allowed_protocols`; `ws://`/`http://` are upgraded (LiveKit URLs are often
//! written `ws://…` while the API is served on the same host over TLS) or
//! refused with a message saying why. Loopback may stay plain only when
//! `access_validation.strict_mode` is false (local development).

use std::net::IpAddr;

use url::Url;

use crate::config::Config;

/// Why a URL may not be dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Not an absolute URL.
    #[error("`{0}` is not an absolute URL")]
    Invalid(String),
    /// A scheme Warden never dials.
    #[error("scheme `{scheme}` is not supported (use https or wss)")]
    Unsupported {
        /// The scheme.
        scheme: String,
    },
    /// Insecure and enforcement is on.
    #[error("{scheme}:// is refused by wss_enforcement (allowed: {allowed}); use {secure}://")]
    Insecure {
        /// The scheme.
        scheme: String,
        /// The secure one to use.
        secure: &'static str,
        /// `allowed_protocols`.
        allowed: String,
    },
}

/// ws → wss, http → https; other URLs unchanged. The original Python
/// `enforce_wss_connections`.
pub fn enforce_wss_connections(url: &str) -> Result<String, TransportError> {
    let mut u = Url::parse(url.trim()).map_err(|_| TransportError::Invalid(url.to_owned()))?;
    let secure = match u.scheme() {
        "ws" => "wss",
        "http" => "https",
        _ => return Ok(u.into()),
    };
    u.set_scheme(secure)
        .map_err(|()| TransportError::Invalid(url.to_owned()))?;
    Ok(u.into())
}

/// The rules for outgoing URLs.
#[derive(Clone, Debug)]
pub struct OutboundPolicy {
    /// `wss_enforcement.enabled`
    pub enforce: bool,
    /// `wss_enforcement.allowed_protocols`
    pub allowed: Vec<String>,
    /// `access_validation.strict_mode`
    pub strict: bool,
}

impl OutboundPolicy {
    /// From the configuration.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            enforce: cfg.wss_enforcement.enabled,
            allowed: cfg.wss_enforcement.allowed_protocols.clone(),
            strict: cfg.access_validation.strict_mode,
        }
    }

    /// Is `url` acceptable as it is? The original `validate_connection_protocol`.
    pub fn validate_connection_protocol(&self, url: &str) -> Result<Url, TransportError> {
        let u = Url::parse(url.trim()).map_err(|_| TransportError::Invalid(url.to_owned()))?;
        let scheme = u.scheme().to_owned();
        let secure = match scheme.as_str() {
            "https" | "wss" => return self.allowed_or(u, &scheme),
            "http" => "https",
            "ws" => "wss",
            _ => return Err(TransportError::Unsupported { scheme }),
        };
        if !self.enforce || (!self.strict && is_loopback(&u)) {
            return Ok(u);
        }
        if self.allowed.iter().any(|a| a == &scheme) {
            return Ok(u);
        }
        Err(TransportError::Insecure {
            scheme,
            secure,
            allowed: self.allowed.join(", "),
        })
    }

    fn allowed_or(&self, u: Url, scheme: &str) -> Result<Url, TransportError> {
        if !self.enforce || self.allowed.iter().any(|a| a == scheme) || self.allowed.is_empty() {
            return Ok(u);
        }
        Err(TransportError::Unsupported {
            scheme: scheme.to_owned(),
        })
    }

    /// Upgrades an insecure URL when enforcement requires it, then validates.
    pub fn upgrade(&self, url: &str) -> Result<Url, TransportError> {
        match self.validate_connection_protocol(url) {
            Ok(u) => Ok(u),
            Err(TransportError::Insecure { .. }) => {
                self.validate_connection_protocol(&enforce_wss_connections(url)?)
            }
            Err(e) => Err(e),
        }
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(strict: bool) -> OutboundPolicy {
        OutboundPolicy {
            enforce: true,
            allowed: vec!["wss".into(), "https".into()],
            strict,
        }
    }

    #[test]
    fn enforce_upgrades_plain_schemes_only() {
        assert_eq!(
            enforce_wss_connections("ws://livekit.example.com").as_deref(),
            Ok("wss://livekit.example.com/")
        );
        assert_eq!(
            enforce_wss_connections("http://h/x?y=1").as_deref(),
            Ok("https://h/x?y=1")
        );
        assert_eq!(
            enforce_wss_connections("https://h/").as_deref(),
            Ok("https://h/")
        );
        assert!(enforce_wss_connections("not a url").is_err());
    }

    #[test]
    fn validation_refuses_insecure_with_a_reason() {
        let p = policy(true);
        assert!(
            p.validate_connection_protocol("https://livekit.example.com")
                .is_ok()
        );
        let e = p
            .validate_connection_protocol("http://livekit.example.com")
            .expect_err("refused");
        assert!(e.to_string().contains("use https://"), "{e}");
        assert!(
            p.validate_connection_protocol("http://127.0.0.1:7880")
                .is_err(),
            "strict refuses loopback too"
        );
        assert!(
            policy(false)
                .validate_connection_protocol("http://127.0.0.1:7880")
                .is_ok()
        );
        assert!(
            policy(false)
                .validate_connection_protocol("http://10.0.0.1:7880")
                .is_err()
        );
        assert!(p.validate_connection_protocol("ftp://h").is_err());
    }

    #[test]
    fn upgrade_turns_ws_into_wss_when_enforced() {
        let p = policy(true);
        assert_eq!(
            p.upgrade("ws://lk.example.com")
                .map(String::from)
                .as_deref(),
            Ok("wss://lk.example.com/")
        );
        let off = OutboundPolicy {
            enforce: false,
            ..policy(true)
        };
        assert_eq!(
            off.upgrade("http://lk.example.com")
                .map(String::from)
                .as_deref(),
            Ok("http://lk.example.com/")
        );
    }
}
