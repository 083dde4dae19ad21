//! The Redis backend's connection handle (several nodes; see [`crate::cluster`]
//! for what is kept in it).
//!
//! Invariants:
//! - The URL (`redis://`, `rediss://`, `unix://`) may hold a password: it
//!   lives only in the [`Secret`] and in the `redis::Client`, which is never
//!   formatted. Logs, errors and `Debug` show [`crate::config::mask_url`]'s
//!   form, and every error message from the driver is scrubbed of the
//!   password before it goes anywhere.
//! - `rediss://` is TLS with rustls, and the server's certificate is always
//!   verified, host name included: against the platform's roots, or only
//!   against the CA certificates of `storage.redis_ca_file` when it is set (a
//!   private CA). The URL's `#insecure` opt-out is refused.
//! - Connections are `redis::aio::ConnectionManager`s: multiplexed, and
//!   reconnecting with exponential backoff by themselves, so a Redis restart
//!   costs failed commands, never a crash or a stuck task. A blocking read
//!   (`XREAD BLOCK`) gets a manager of its own so it never holds up others.
//! - The synchronous connection is for start-up only (before the server runs).

use std::path::Path;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rustls_pki_types::pem::PemObject as _;

use crate::redact::Secret;

/// How long to wait for a connection to Redis.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Redis backend errors (masked: no password, no URL userinfo).
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL could not be parsed.
    #[error("storage.redis_url {url}: {reason}")]
    Url {
        /// The masked URL.
        url: String,
        /// Why (scrubbed).
        reason: String,
    },
    /// `storage.redis_ca_file` could not be used.
    #[error("storage.redis_ca_file {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A command or connection failed.
    #[error("redis at {url}: {reason}")]
    Command {
        /// The masked URL.
        url: String,
        /// Why (scrubbed).
        reason: String,
    },
}

/// A handle to one Redis deployment; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    url: Secret,
    masked: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis").field("url", &self.masked).finish()
    }
}

impl Redis {
    /// Parses `url` (no connection is made yet); a `rediss://` server's
    /// certificate must chain to the PEM certificates in `ca_file` when given.
    pub fn open(url: &Secret, ca_file: Option<&Path>) -> Result<Self, RedisError> {
        let masked = crate::config::mask_url(url.expose());
        let bad_url = |reason: String| RedisError::Url {
            url: masked.clone(),
            reason,
        };
        if url.expose().contains("#insecure") {
            return Err(bad_url(
                "#insecure (no certificate check) is not allowed; use storage.redis_ca_file for a private CA".into(),
            ));
        }
        let client = match ca_file {
            None => redis::Client::open(url.expose()),
            Some(path) => {
                let tls = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(read_ca(path)?),
                };
                redis::Client::build_with_tls(url.expose(), tls)
            }
        }
        .map_err(|e| bad_url(scrub(url, &e.to_string())))?;
        Ok(Self {
            client,
            url: url.clone(),
            masked,
        })
    }

    /// The URL with its password masked (for logs and health details).
    pub fn masked_url(&self) -> &str {
        &self.masked
    }

    /// A blocking connection for start-up work, with `timeout` on every read and write.
    pub fn connect_blocking(&self, timeout: Duration) -> Result<redis::Connection, RedisError> {
        let conn = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| self.error(&e))?;
        conn.set_read_timeout(Some(timeout))
            .and_then(|()| conn.set_write_timeout(Some(timeout)))
            .map_err(|e| self.error(&e))?;
        Ok(conn)
    }

    /// A lazily connected, self-reconnecting connection whose commands time
    /// out after `response_timeout`. Must be called within a Tokio runtime.
    pub fn manager(&self, response_timeout: Duration) -> Result<ConnectionManager, RedisError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response_timeout))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(2))
            .set_number_of_retries(3);
        ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| self.error(&e))
    }

    /// A driver error as a [`RedisError`], scrubbed of the password.
    pub fn error(&self, e: &redis::RedisError) -> RedisError {
        RedisError::Command {
            url: self.masked.clone(),
            reason: scrub(&self.url, &e.to_string()),
        }
    }
}

/// The PEM CA certificates in `path` (at least one).
fn read_ca(path: &Path) -> Result<Vec<u8>, RedisError> {
    let err = |reason: String| RedisError::Ca {
        path: path.display().to_string(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not PEM certificates ({e})")))?;
    if certs.is_empty() {
        return Err(err("holds no PEM certificate".into()));
    }
    Ok(pem)
}

/// Removes the URL and its password from `message` (driver messages are not
/// known to contain them; this makes sure).
fn scrub(url: &Secret, message: &str) -> String {
    let mut out = message.replace(url.expose(), &crate::config::mask_url(url.expose()));
    let parsed = url::Url::parse(url.expose()).ok();
    if let Some(password) = parsed
        .as_ref()
        .and_then(|u| u.password())
        .filter(|p| p.len() >= 3)
    {
        out = out.replace(password, "[redacted]");
        let decoded = percent_decoded(password);
        if decoded.len() >= 3 {
            out = out.replace(&decoded, "[redacted]");
        }
    }
    out
}

fn percent_decoded(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_debug_never_show_the_password() {
        let url = Secret::new("redis://:s3cr3t-pass@127.0.0.1:1/0");
        let redis = Redis::open(&url, None).expect("valid url");
        assert!(!format!("{redis:?}").contains("s3cr3t"));
        assert!(redis.masked_url().contains("127.0.0.1:1"));
        let Err(err) = redis.connect_blocking(Duration::from_millis(200)) else {
            panic!("nothing listens on port 1");
        };
        let text = format!("{err} {err:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert_eq!(
            scrub(&url, "auth failed for s3cr3t-pass"),
            "auth failed for [redacted]"
        );
    }

    #[test]
    fn tls_without_certificate_checks_is_refused() {
        let url = Secret::new("rediss://:pw-secret@127.0.0.1:1/0#insecure");
        let err = Redis::open(&url, None).expect_err("#insecure");
        let text = err.to_string();
        assert!(
            text.contains("#insecure") && !text.contains("pw-secret"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let url = Secret::new("redis://:pw-secret@[not a host/");
        let err = Redis::open(&url, None).expect_err("malformed");
        assert!(!err.to_string().contains("pw-secret"), "{err}");
    }
}
