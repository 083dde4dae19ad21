//! Configuration: embedded defaults → file → environment → validated [`Config`].
//!
//! The commented defaults file (`config/defaults.yaml`) is compiled in and is
//! the reference: every key exists there with its default. A user file is
//! deep-merged over it, then `WARDEN_<SECTION>__<KEY>` variables and the
//! LiveKit/alert variables, then the whole tree is deserialised strictly
//! (unknown keys refused) and every value range-checked. Every error is one
//! line that starts with the offending key's path. The environment is passed
//! in as an [`Env`] snapshot, so tests never touch the process environment.

mod access_validation;
mod alerts;
mod env;
mod field;
mod key_rotation;
mod livekit;
mod logging;
mod raw;
mod realtime;
mod server;
mod storage;
mod suspicious_activity;
mod typed;
mod webhooks;
mod wss_enforcement;

use std::path::{Path, PathBuf};

use serde_norway::Value;

use crate::redact::{MASK, Masker};

pub use access_validation::AccessValidation;
pub use alerts::Alerts;
use env::apply_env;
pub use env::{Env, EnvKeys, parse_key_lines};
pub use field::MAX_LIMIT;
pub use key_rotation::KeyRotation;
pub use livekit::Livekit;
pub use logging::{LogFormat, Logging};
pub use realtime::Realtime;
pub use server::{Server, Tls};
pub use storage::{Backend, Storage};
pub use suspicious_activity::SuspiciousActivity;
pub use typed::Config;
pub use webhooks::{LIVEKIT_WEBHOOK_TTL_SECS, Webhooks};
pub use wss_enforcement::WssEnforcement;

/// The commented defaults file, embedded in the binary.
pub const DEFAULTS_YAML: &str = include_str!("../config/defaults.yaml");

/// Where the configuration file is looked for when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/security.yaml";

/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "LIVEKIT_SECURITY_CONFIG";

/// A configuration problem, always naming the key (or file) it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not YAML (or not a mapping).
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Parser message (one line).
        message: String,
    },
    /// A key is unknown, of the wrong type or out of range.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted path of the key, e.g. `suspicious_activity.max_failed_attempts`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Finds the configuration file: `explicit`, else `$LIVEKIT_SECURITY_CONFIG`,
/// else `config/security.yaml` if it exists, else none (defaults only).
pub fn locate(explicit: Option<&Path>, env: &Env) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = env.get(CONFIG_ENV) {
        return Some(PathBuf::from(p));
    }
    let default = Path::new(DEFAULT_CONFIG_PATH);
    default.exists().then(|| default.to_path_buf())
}

/// Loads the configuration the way every command does (see [`locate`]).
pub fn load(explicit: Option<&Path>, env: &Env) -> Result<Config, ConfigError> {
    let file = locate(explicit, env);
    let text = match &file {
        Some(path) => Some(
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?,
        ),
        None => None,
    };
    let mut cfg = from_yaml(text.as_deref().unwrap_or(""), env).map_err(|e| match (e, &file) {
        (ConfigError::Syntax { message, .. }, Some(path)) => ConfigError::Syntax {
            path: path.clone(),
            message,
        },
        (e, _) => e,
    })?;
    cfg.source = file;
    Ok(cfg)
}

/// Builds a configuration from YAML text (empty = defaults) and an environment.
pub fn from_yaml(text: &str, env: &Env) -> Result<Config, ConfigError> {
    let mut tree: Value =
        serde_norway::from_str(DEFAULTS_YAML).expect("embedded defaults are valid YAML");
    if !text.trim().is_empty() {
        let user: Value = serde_norway::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::from("<config>"),
            message: one_line(&e.to_string()),
        })?;
        match user {
            Value::Mapping(_) => merge(&mut tree, user),
            Value::Null => {}
            _ => {
                return Err(ConfigError::Syntax {
                    path: PathBuf::from("<config>"),
                    message: "the configuration must be a YAML mapping of sections".into(),
                });
            }
        }
    }
    apply_env(&mut tree, env)?;
    let raw: raw::RawConfig = serde_path_to_error::deserialize(tree.clone()).map_err(|e| {
        let path = e.path().to_string();
        let inner = one_line(&e.into_inner().to_string());
        describe_serde_error(&path, &inner)
    })?;
    let mut cfg = Config::try_from(raw)?;
    cfg.env_keys = EnvKeys::from_env(env)?;
    cfg.effective = tree;
    Ok(cfg)
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_owned()
}

/// The candidate closest to a mistyped `word`, when one is close enough.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Turns serde's messages into `path: message` with the unknown key named in the path.
fn describe_serde_error(path: &str, inner: &str) -> ConfigError {
    let base = if path == "." { "" } else { path };
    if let Some(rest) = inner.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        // serde_path_to_error already ends the path with the unknown field.
        let key = if base.is_empty() {
            field.to_owned()
        } else if base == field || base.ends_with(&format!(".{field}")) {
            base.to_owned()
        } else {
            format!("{base}.{field}")
        };
        let expected: Vec<&str> = rest
            .split_once("expected one of ")
            .map(|(_, list)| list.split(", ").map(|s| s.trim_matches('`')).collect())
            .unwrap_or_default();
        let hint = did_you_mean(field, &expected)
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        return ConfigError::invalid(
            key,
            format!("unknown setting{hint} (see `warden config defaults`)"),
        );
    }
    if let Some(rest) = inner.strip_prefix("invalid type: ")
        && let Some((got, expected)) = rest.split_once(", expected ")
        && expected.starts_with("struct Raw")
    {
        // serde names the internal type; the operator wrote a value where a section goes.
        return ConfigError::invalid(
            if base.is_empty() { "<config>" } else { base },
            format!("wrong type: {got}, expected a section (indented `key: value` lines)"),
        );
    }
    if let Some(rest) = inner.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        let key = if base.is_empty() {
            field.to_owned()
        } else {
            format!("{base}.{field}")
        };
        return ConfigError::invalid(key, "required");
    }
    let key = if base.is_empty() {
        "<config>".to_owned()
    } else {
        base.to_owned()
    };
    let message = inner
        .replace("i64", "a whole number")
        .replace("invalid type: ", "wrong type: ")
        .replace("a boolean", "true or false");
    ConfigError::invalid(key, message)
}

/// Deep-merges `over` into `base` (mappings recursively; anything else replaces).
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot @ Value::Mapping(_)) if v.is_mapping() => merge(slot, v),
                    Some(slot) => *slot = v,
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, o) => *slot = o,
    }
}

impl Config {
    /// The effective configuration as YAML, with every secret masked.
    pub fn to_masked_yaml(&self, masker: &Masker) -> String {
        let mut tree = self.effective.clone();
        if let Some(alerts) = tree.get_mut("alerts").and_then(Value::as_mapping_mut) {
            let key = Value::String("signing_secret".into());
            if alerts.get(&key).is_some_and(|v| !v.is_null()) {
                alerts.insert(key, Value::String(MASK.into()));
            }
        }
        let text = serde_norway::to_string(&tree).unwrap_or_default();
        let mut out = masker.mask(&text).into_owned();
        if let Some(url) = self.storage.redis_url.as_ref() {
            out = out.replace(url.expose(), &mask_url(url.expose()));
        }
        out
    }
}

/// Masks the password (userinfo) and query of a URL for display.
pub fn mask_url(url: &str) -> String {
    let (head, _query) = url
        .split_once('?')
        .map_or((url, None), |(h, q)| (h, Some(q)));
    let masked = match (head.find("://"), head.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{}@{}", &head[..s + 3], MASK, &head[at + 1..]),
        _ => head.to_owned(),
    };
    if url.contains('?') {
        format!("{masked}?{MASK}")
    } else {
        masked
    }
}

#[cfg(test)]
mod tests;
