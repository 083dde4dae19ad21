//! Building a [`KeySet`] from the sources, and every change to the owned store.
//!
//! Every change runs as one locked read-modify-write of the key files (see
//! [`KeyFiles::update`]) and then reloads the ring, so the CLI and a running
//! server can change the store concurrently without losing each other's work.

use std::collections::HashMap;
use std::path::PathBuf;

use super::meta::{OwnedKeys, StoredState};
use super::rotation::{self, RevokeRefusal, Rotated};
use super::{
    HistoryEntry, Key, KeyError, KeyFiles, KeyRing, KeySet, KeySource, KeyState, RotationPolicy,
    Sources,
};
use crate::clock::Clock;
use crate::config::Config;
use crate::keys::format::{MIN_SECRET_LEN, fingerprint, generate_key_id, generate_secret};
use crate::redact::Secret;

/// A key created at first start because no key existed anywhere. Holds no secret:
/// `serve` prints the id and the file that holds the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedKey {
    /// The new key id.
    pub id: String,
    /// The key file holding its secret.
    pub path: PathBuf,
}

/// What status pages show about a key: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key id.
    pub id: String,
    /// State.
    pub state: KeyState,
    /// Source.
    pub source: KeySource,
    /// Creation time (owned keys), Unix ms.
    pub created_ms: Option<i64>,
    /// Fingerprint of the secret.
    pub fingerprint: String,
    /// When an active owned key becomes due for rotation, Unix ms.
    pub rotation_due_at_ms: Option<i64>,
    /// True when that time has passed.
    pub rotation_due: bool,
}

/// The key set of these sources and owned keys.
pub(super) fn build(sources: &Sources, owned: &OwnedKeys, warnings: Vec<String>) -> KeySet {
    let mut keys = HashMap::new();
    for k in &owned.keys {
        let state = match k.meta.state {
            StoredState::Active => KeyState::Active,
            StoredState::Retiring => KeyState::Retiring {
                until_ms: k.meta.effective_until_ms().unwrap_or(0),
            },
            StoredState::Revoked => KeyState::Revoked,
        };
        let secret = k.secret.clone().unwrap_or_default();
        let key = Key {
            id: k.id.clone(),
            secret,
            state,
            source: KeySource::Owned,
            created_ms: Some(k.meta.created_ms),
            fingerprint: k.meta.fingerprint.clone(),
        };
        keys.insert(k.id.clone(), key);
    }
    for (id, secret) in &sources.env {
        keys.entry(id.clone()).or_insert_with(|| Key {
            id: id.clone(),
            secret: secret.clone(),
            state: KeyState::Active,
            source: KeySource::Env,
            created_ms: None,
            fingerprint: fingerprint(secret),
        });
    }
    let env_signing = sources
        .env_primary
        .iter()
        .chain(sources.env.iter().map(|(id, _)| id))
        .find(|id| {
            keys.get(id.as_str())
                .is_some_and(|k: &Key| k.source == KeySource::Env)
        });
    let signing = owned
        .newest_active()
        .map(|k| k.id.clone())
        .or_else(|| env_signing.cloned());
    KeySet {
        keys,
        signing,
        warnings,
        history: owned.history.clone(),
    }
}

/// Refuses empty secrets always and short ones in strict mode; returns warnings for the rest.
fn check(strict: bool, keys: &KeySet) -> Result<Vec<String>, KeyError> {
    let mut live: Vec<&Key> = keys
        .keys
        .values()
        .filter(|k| k.state != KeyState::Revoked)
        .collect();
    live.sort_by(|a, b| a.id.cmp(&b.id));
    let mut warnings = Vec::new();
    for k in live {
        if k.secret.is_empty() {
            return Err(KeyError::EmptySecret {
                key_id: k.id.clone(),
            });
        }
        if k.secret.len() < MIN_SECRET_LEN {
            if strict {
                return Err(KeyError::WeakSecret {
                    key_id: k.id.clone(),
                    len: k.secret.len(),
                });
            }
            let w = format!(
                "key {}: the secret has {} characters, fewer than the 32 recommended",
                k.id,
                k.secret.len()
            );
            tracing::warn!(key.id = %k.id, "{w}");
            warnings.push(w);
        }
    }
    Ok(warnings)
}

fn sources_of(cfg: &Config) -> Sources {
    Sources {
        files: Some(KeyFiles::new(&cfg.livekit.keys_file)),
        env: cfg.env_keys.all.clone(),
        env_primary: cfg.env_keys.primary.as_ref().map(|(id, _)| id.clone()),
        strict: cfg.access_validation.strict_mode,
        policy: RotationPolicy::from_config(cfg),
        rotation_enabled: cfg.key_rotation.enabled,
        auto_rotation: cfg.key_rotation.auto_rotation,
    }
}

/// See [`KeyRing::load`] and [`KeyRing::open`].
pub(super) fn load_or_create(
    cfg: &Config,
    clock: &Clock,
    create: bool,
    lax: bool,
) -> Result<(KeyRing, Option<CreatedKey>), KeyError> {
    let mut sources = sources_of(cfg);
    sources.strict &= !lax;
    let files = sources.files.as_ref().ok_or(KeyError::NoStore)?;
    let now = clock.now_ms();
    let mut owned = files.read(now)?;
    let mut created = None;
    if create && sources.env.is_empty() && owned.live().next().is_none() {
        let id = generate_key_id();
        created = files.update(now, |k| {
            // Another process may have created one meanwhile: then use it.
            if k.live().next().is_some() {
                return Ok((None, false));
            }
            rotation::create(k, id.clone(), generate_secret(), now, "startup");
            Ok((
                Some(CreatedKey {
                    id,
                    path: files.key_file.clone(),
                }),
                true,
            ))
        })?;
        owned = files.read(now)?;
    }
    let set = build(&sources, &owned, Vec::new());
    let warnings = check(sources.strict, &set)?;
    let set = build(&sources, &owned, warnings);
    Ok((KeyRing::with(set, sources), created))
}

impl KeyRing {
    /// Reads the sources again and swaps the new key set in; on error the current set stays.
    pub fn reload(&self, now_ms: i64) -> Result<(), KeyError> {
        let Some(files) = &self.sources.files else {
            return Ok(());
        };
        let owned = files.read(now_ms)?;
        let set = build(&self.sources, &owned, Vec::new());
        let warnings = check(self.sources.strict, &set)?;
        self.current
            .store(std::sync::Arc::new(build(&self.sources, &owned, warnings)));
        Ok(())
    }

    fn store(&self) -> Result<&KeyFiles, KeyError> {
        self.sources.files.as_ref().ok_or(KeyError::NoStore)
    }

    /// Creates a new active owned key (no rotation); returns its id and secret (show them once).
    pub fn create_key(&self, now_ms: i64, by: &str) -> Result<(String, Secret), KeyError> {
        let (id, secret) = (generate_key_id(), generate_secret());
        self.store()?.update(now_ms, |k| {
            rotation::create(k, id.clone(), secret.clone(), now_ms, by);
            Ok(((), true))
        })?;
        self.reload(now_ms)?;
        Ok((id, secret))
    }

    /// Rotates the owned keys: refused when not due (or rotation disabled) unless `force`.
    /// Returns what happened and the new secret (show it once).
    pub fn rotate(
        &self,
        now_ms: i64,
        force: bool,
        by: &str,
    ) -> Result<(Rotated, Secret), KeyError> {
        if !force && !self.sources.rotation_enabled {
            return Err(KeyError::RotationDisabled);
        }
        let (id, secret) = (generate_key_id(), generate_secret());
        let policy = self.sources.policy;
        let rotated = self.store()?.update(now_ms, |k| {
            let current = k.newest_active().ok_or(KeyError::NothingToRotate)?;
            if !force
                && !rotation::is_key_rotation_due(current.meta.created_ms, now_ms, policy.interval)
            {
                let due_ms = rotation::rotation_due_at(current.meta.created_ms, policy.interval);
                return Err(KeyError::NotDue { due_ms });
            }
            Ok((
                rotation::rotate(k, id, secret.clone(), now_ms, &policy, by),
                true,
            ))
        })?;
        self.reload(now_ms)?;
        Ok((rotated, secret))
    }

    /// Revokes an owned key now (its secret leaves the key file).
    pub fn revoke(&self, id: &str, now_ms: i64, by: &str) -> Result<(), KeyError> {
        let env = self.sources.env.iter().any(|(k, _)| k == id);
        self.store()?
            .update(now_ms, |k| match rotation::revoke(k, id, now_ms, by) {
                Ok(()) => Ok(((), true)),
                Err(RevokeRefusal::Unknown) if env => Err(KeyError::NotOwned { id: id.to_owned() }),
                Err(RevokeRefusal::Unknown) => Err(KeyError::UnknownKey { id: id.to_owned() }),
                Err(RevokeRefusal::AlreadyRevoked) => {
                    Err(KeyError::AlreadyRevoked { id: id.to_owned() })
                }
            })?;
        self.reload(now_ms)
    }

    /// Records that a token expiring at `exp_ms` was minted with `key_id`, so a
    /// rotation keeps that key verifying until the token has expired.
    pub fn record_minted_exp(
        &self,
        key_id: &str,
        exp_ms: i64,
        now_ms: i64,
    ) -> Result<(), KeyError> {
        let owned = self
            .current
            .load()
            .get(key_id)
            .is_some_and(|k| k.source == KeySource::Owned);
        let (Some(files), true) = (&self.sources.files, owned) else {
            return Ok(());
        };
        {
            let cache = self
                .minted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if cache
                .get(key_id)
                .is_some_and(|&recorded| recorded >= exp_ms)
            {
                return Ok(());
            }
        }
        let recorded = files.update(now_ms, |k| {
            let changed = rotation::record_minted_exp(k, key_id, exp_ms);
            let value = k
                .keys
                .iter()
                .find(|x| x.id == key_id)
                .and_then(|x| x.meta.max_token_exp_ms);
            Ok((value, changed))
        })?;
        if let Some(v) = recorded {
            self.minted
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key_id.to_owned(), v);
        }
        Ok(())
    }

    /// Periodic upkeep: revokes retiring keys whose overlap has ended and, with
    /// `auto_rotation`, rotates a due key. Returns the history entries it added.
    pub fn maintain(&self, now_ms: i64) -> Result<Vec<HistoryEntry>, KeyError> {
        let Some(files) = &self.sources.files else {
            return Ok(Vec::new());
        };
        let auto = self.sources.rotation_enabled && self.sources.auto_rotation;
        let policy = self.sources.policy;
        let added = files.update(now_ms, |k| {
            let before = k.last_seq();
            rotation::expire(k, now_ms, "server");
            let due = k.newest_active().is_some_and(|a| rotation::is_key_rotation_due(a.meta.created_ms, now_ms, policy.interval));
            if auto && due {
                let r = rotation::rotate(k, generate_key_id(), generate_secret(), now_ms, &policy, "auto");
                tracing::info!(key.id = %r.new_id, retired = ?r.retired, "rotated the signing key automatically");
            }
            let added: Vec<HistoryEntry> = k.history.iter().filter(|e| e.seq > before).cloned().collect();
            let changed = !added.is_empty();
            Ok((added, changed))
        })?;
        if !added.is_empty() {
            self.reload(now_ms)?;
        }
        Ok(added)
    }

    /// Every key with its state, for status pages (sorted by id).
    pub fn key_infos(&self, now_ms: i64) -> Vec<KeyInfo> {
        let set = self.current.load();
        let interval = self.sources.policy.interval;
        let mut out: Vec<KeyInfo> = set
            .keys
            .values()
            .map(|k| {
                let due_at = match (k.state, k.source, k.created_ms) {
                    (KeyState::Active, KeySource::Owned, Some(c)) => {
                        Some(rotation::rotation_due_at(c, interval))
                    }
                    _ => None,
                };
                KeyInfo {
                    id: k.id.clone(),
                    state: k.state,
                    source: k.source,
                    created_ms: k.created_ms,
                    fingerprint: k.fingerprint.clone(),
                    rotation_due_at_ms: due_at,
                    rotation_due: due_at.is_some_and(|d| now_ms >= d),
                }
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }
}
