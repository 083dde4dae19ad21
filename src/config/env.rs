//! The environment's part: `WARDEN_<SECTION>__<KEY>` overrides, the alert
//! URL variable, and the LiveKit API keys (`LIVEKIT_API_KEY`/`_SECRET`,
//! `LIVEKIT_KEYS`). Read from an [`Env`] snapshot, never the process itself.

use std::collections::BTreeMap;

use serde_norway::{Mapping, Value};

use super::ConfigError;
use crate::redact::Secret;

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

/// Applies `WARDEN_<SECTION>__<KEY>[__<SUBKEY>]` and `SECURITY_WEBHOOK_URL`.
pub(super) fn apply_env(tree: &mut Value, env: &Env) -> Result<(), ConfigError> {
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

/// API keys given in the environment: `LIVEKIT_API_KEY`/`LIVEKIT_API_SECRET` and `LIVEKIT_KEYS`.
#[derive(Clone, Debug, Default)]
pub struct EnvKeys {
    /// `LIVEKIT_API_KEY` with its secret: the signing key when Warden has none of its own.
    pub primary: Option<(String, Secret)>,
    /// All keys from the environment, primary included, in order.
    pub all: Vec<(String, Secret)>,
}

impl EnvKeys {
    pub(super) fn from_env(env: &Env) -> Result<Self, ConfigError> {
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
