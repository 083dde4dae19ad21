//! `storage`: the embedded SQLite file or a Redis shared by several nodes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::field;
use crate::redact::Secret;

const SECTION: &str = "storage";

/// `storage` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    pub backend: String,
    pub path: String,
    pub redis_url: Option<String>,
    pub redis_ca_file: Option<String>,
}

/// Storage backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file, one node.
    Sqlite,
    /// Redis, several nodes.
    Redis,
}

/// `storage` section.
#[derive(Clone, Debug)]
pub struct Storage {
    /// Backend.
    pub backend: Backend,
    /// SQLite file.
    pub path: PathBuf,
    /// Redis URL (may hold a password).
    pub redis_url: Option<Secret>,
    /// PEM CA certificate(s) that a `rediss://` server's certificate must
    /// chain to, instead of the platform's roots (a private CA).
    pub redis_ca_file: Option<PathBuf>,
}

impl TryFrom<RawStorage> for Storage {
    type Error = ConfigError;

    fn try_from(r: RawStorage) -> Result<Self, ConfigError> {
        let backend = field!(r.backend);
        let backend = match backend.word().as_str() {
            "sqlite" => Backend::Sqlite,
            "redis" => Backend::Redis,
            _ => return Err(backend.invalid("must be sqlite or redis")),
        };
        let url = field!(r.redis_url);
        let redis_url = url.secret();
        let ca = field!(r.redis_ca_file);
        let redis_ca_file = ca.text().map(PathBuf::from);
        if backend == Backend::Redis && redis_url.is_none() {
            return Err(url.invalid("required when storage.backend is redis"));
        }
        if let Some(u) = redis_url.as_ref() {
            let scheme = u.expose().split("://").next().unwrap_or("");
            if !matches!(scheme, "redis" | "rediss" | "redis+unix" | "unix") {
                return Err(url.invalid("must be a redis:// or rediss:// URL"));
            }
        }
        if redis_ca_file.is_some()
            && !redis_url
                .as_ref()
                .is_some_and(|u| u.expose().starts_with("rediss://"))
        {
            return Err(ca.invalid("applies to a rediss:// storage.redis_url only"));
        }
        Ok(Self {
            backend,
            path: PathBuf::from(r.path),
            redis_url,
            redis_ca_file,
        })
    }
}
