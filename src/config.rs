//! Configuration: embedded defaults → file → environment → validated [`Config`].
//!
//! The commented defaults file (`config/defaults.yaml`) is compiled in and is
//! the reference: every key exists there with its default. A user file is
//! deep-merged over it, then `WARDEN_<SECTION>__<KEY>` variables and the
//! LiveKit/alert variables, then the whole tree is deserialised strictly
//! (unknown keys refused) and every value range-checked. Every error is one
//! line that starts with the offending key's path. The environment is passed
//! in as an [`Env`] snapshot, so tests never touch the process environment.

mod raw;
mod typed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use crate::redact::{MASK, Masker, Secret};

pub use typed::*;

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

/// A snapshot of the environment variables that configuration reads.
#[derive(Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Env {
    /// The relevant variables of this process.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars().filter(|(k, _)| {
            k.starts_with("WARDEN_") || k.starts_with("LIVEKIT_") || k == "SECURITY_WEBHOOK_URL"
        }))
    }

    /// An environment made of the given pairs (for tests).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// One variable, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
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
    let mut cfg = typed::validate(raw)?;
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

/// Applies `WARDEN_<SECTION>__<KEY>[__<SUBKEY>]` and `SECURITY_WEBHOOK_URL`.
fn apply_env(tree: &mut Value, env: &Env) -> Result<(), ConfigError> {
    for (name, value) in &env.vars {
        let Some(rest) = name.strip_prefix("WARDEN_") else {
            continue;
        };
        if !rest.contains("__") {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        set_path(tree, &path, value)
            .map_err(|msg| ConfigError::invalid(path.join("."), format!("{msg} (from {name})")))?;
    }
    if let Some(url) = env.get("SECURITY_WEBHOOK_URL") {
        set_path(tree, &["alerts".into(), "webhook_url".into()], url)
            .map_err(|m| ConfigError::invalid("alerts.webhook_url", m))?;
    }
    Ok(())
}

fn set_path(tree: &mut Value, path: &[String], raw: &str) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty setting name")?;
    let mut node = tree;
    for p in parents {
        let map = node.as_mapping_mut().ok_or("not a section")?;
        let key = Value::String(p.clone());
        if !map.contains_key(&key) {
            return Err("unknown setting (see `warden config defaults`)".into());
        }
        let child = map.get_mut(&key).ok_or("unknown setting")?;
        if child.is_null() {
            *child = Value::Mapping(Mapping::new());
        }
        node = child;
    }
    let map = node.as_mapping_mut().ok_or("not a section")?;
    let key = Value::String(last.clone());
    let existing = map.get(&key);
    let value = match existing {
        Some(Value::Sequence(_)) => Value::Sequence(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        Some(Value::String(_)) => Value::String(raw.to_owned()),
        _ => serde_norway::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned())),
    };
    if existing.is_none() && parents.len() < 2 {
        return Err("unknown setting (see `warden config defaults`)".into());
    }
    map.insert(key, value);
    Ok(())
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

/// API keys given in the environment: `LIVEKIT_API_KEY`/`LIVEKIT_API_SECRET` and `LIVEKIT_KEYS`.
#[derive(Clone, Debug, Default)]
pub struct EnvKeys {
    /// `LIVEKIT_API_KEY` with its secret: the signing key when Warden has none of its own.
    pub primary: Option<(String, Secret)>,
    /// All keys from the environment, primary included, in order.
    pub all: Vec<(String, Secret)>,
}

impl EnvKeys {
    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let mut out = Self::default();
        if let Some(text) = env.get("LIVEKIT_KEYS") {
            for (k, s) in
                parse_key_lines(text).map_err(|m| ConfigError::invalid("LIVEKIT_KEYS", m))?
            {
                out.all.push((k, s));
            }
        }
        match (env.get("LIVEKIT_API_KEY"), env.get("LIVEKIT_API_SECRET")) {
            (Some(k), Some(s)) => {
                let secret = Secret::new(s.trim());
                out.all.retain(|(id, _)| id != k);
                out.all.insert(0, (k.trim().to_owned(), secret.clone()));
                out.primary = Some((k.trim().to_owned(), secret));
            }
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    "LIVEKIT_API_SECRET",
                    "required when LIVEKIT_API_KEY is set",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    "LIVEKIT_API_KEY",
                    "required when LIVEKIT_API_SECRET is set",
                ));
            }
            (None, None) => {}
        }
        Ok(out)
    }
}

/// Parses livekit-server's key format: a YAML map of `key: secret` (also accepts `key=secret` lines).
pub fn parse_key_lines(text: &str) -> Result<Vec<(String, Secret)>, String> {
    let mut out = Vec::new();
    if let Ok(Value::Mapping(map)) = serde_norway::from_str::<Value>(text) {
        let map = match map.get("keys") {
            Some(Value::Mapping(inner)) if map.len() == 1 => inner.clone(),
            _ => map,
        };
        for (k, v) in map {
            let key = scalar(&k).ok_or("key ids must be strings")?;
            let secret =
                scalar(&v).ok_or_else(|| format!("the secret of {key} must be a string"))?;
            out.push((key, Secret::new(secret)));
        }
        return Ok(out);
    }
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (k, s) = line
            .split_once(':')
            .or_else(|| line.split_once('='))
            .ok_or("expected `key: secret` lines")?;
        out.push((k.trim().to_owned(), Secret::new(s.trim())));
    }
    Ok(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
