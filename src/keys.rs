//! API keys: which keys exist, which are trusted, and which one signs.
//!
//! (Foundation stub: keys from the environment only, all active. The key
//! file, the persistent store, rotation and revocation land with the keys issue.)

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use crate::redact::Secret;

/// Where a key is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Signs and verifies.
    Active,
    /// Verifies until `until_ms` (Unix ms), signs nothing.
    Retiring {
        /// End of the overlap.
        until_ms: i64,
    },
    /// Verifies nothing.
    Revoked,
}

/// One API key.
#[derive(Clone, Debug)]
pub struct Key {
    /// Key id (`API…`, or any id LiveKit accepts).
    pub id: String,
    /// The secret.
    pub secret: Secret,
    /// State.
    pub state: KeyState,
}

/// An immutable set of keys.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: HashMap<String, Key>,
    signing: Option<String>,
}

impl KeySet {
    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&Key> {
        self.keys.get(id)
    }
}

/// Cheap `Clone` handle to the current key set; swapped atomically on change.
#[derive(Clone, Default)]
pub struct KeyRing {
    current: Arc<ArcSwap<KeySet>>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.current.load().keys.len())
            .finish()
    }
}

impl KeyRing {
    /// A ring holding exactly these keys, all active; the first signs.
    pub fn from_keys(keys: impl IntoIterator<Item = (String, Secret)>) -> Self {
        let mut set = KeySet::default();
        for (id, secret) in keys {
            set.signing.get_or_insert_with(|| id.clone());
            set.keys.insert(
                id.clone(),
                Key {
                    id,
                    secret,
                    state: KeyState::Active,
                },
            );
        }
        Self {
            current: Arc::new(ArcSwap::from_pointee(set)),
        }
    }

    /// Keys as the configuration gives them.
    pub fn from_config(cfg: &Config) -> Self {
        Self::from_keys(cfg.env_keys.all.iter().cloned())
    }

    /// The secret that verifies signatures by `key_id` at `now_ms`: active or retiring within its window.
    pub fn verifying_secret(&self, key_id: &str, now_ms: i64) -> Option<Secret> {
        let set = self.current.load();
        let key = set.keys.get(key_id)?;
        match key.state {
            KeyState::Active => Some(key.secret.clone()),
            KeyState::Retiring { until_ms } if now_ms < until_ms => Some(key.secret.clone()),
            _ => None,
        }
    }

    /// The key Warden signs with.
    pub fn signing_key(&self) -> Option<(String, Secret)> {
        let set = self.current.load();
        let id = set.signing.as_ref()?;
        set.keys.get(id).map(|k| (k.id.clone(), k.secret.clone()))
    }

    /// Every secret Warden knows (for log masking).
    pub fn all_secrets(&self) -> Vec<Secret> {
        self.current
            .load()
            .keys
            .values()
            .map(|k| k.secret.clone())
            .collect()
    }
}
