//! API keys: which keys exist, which are trusted, and which one signs.
//!
//! Sources, merged: Warden's own store (the livekit-server format key file
//! plus its metadata sidecar, see [`file`] and [`meta`]) and the environment
//! (`LIVEKIT_API_KEY`/`_SECRET`, `LIVEKIT_KEYS`). Only owned keys have a life
//! cycle (active → retiring → revoked, see [`rotation`]); environment keys are
//! always active and never rotated. An owned key wins over an environment key
//! with the same id.
//!
//! Invariants: the [`KeyRing`] is a cheap `Clone` handle whose [`KeySet`] is
//! replaced atomically (readers never lock); Warden signs with the newest
//! active owned key, else with `LIVEKIT_API_KEY`; a revoked or unknown key
//! never verifies; no secret ever appears in an error, a log line or `Debug`.

pub mod file;
pub mod format;
pub mod meta;
pub mod rotation;
mod watch;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

pub use self::file::KeyFiles;
pub use self::format::{
    KeyFormatError, fingerprint, hash_api_key_for_storage, validate_api_key_format,
};
pub use self::meta::{Action, HistoryEntry, StoredState};
pub use self::rotation::{RotationPolicy, is_key_rotation_due};
pub use self::watch::{POLL, event_of, watch};
use crate::clock::Clock;
use crate::config::Config;
use crate::redact::Secret;

mod ring;
pub use self::ring::{CreatedKey, KeyInfo};

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

impl KeyState {
    /// `active`, `retiring` or `revoked`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retiring { .. } => "retiring",
            Self::Revoked => "revoked",
        }
    }
}

/// Where a key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// Warden's own store (the key file): rotated and revoked by Warden.
    Owned,
    /// The environment: always active, left alone.
    Env,
}

/// One API key.
#[derive(Clone, Debug)]
pub struct Key {
    /// Key id (`API…`, or any id LiveKit accepts).
    pub id: String,
    /// The secret (empty once revoked).
    pub secret: Secret,
    /// State.
    pub state: KeyState,
    /// Source.
    pub source: KeySource,
    /// Creation time (owned keys), Unix ms.
    pub created_ms: Option<i64>,
    /// Fingerprint of the secret.
    pub fingerprint: String,
}

/// Why keys could not be loaded or changed. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file others may read or write.
    #[error("{}: mode {mode:04o} gives access to others; run `chmod 600 {}` (livekit-server refuses it too)", path.display(), path.display())]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be parsed.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong (never a secret: the parsers report keys and positions only).
        message: String,
    },
    /// A secret shorter than 32 characters in strict mode.
    #[error(
        "key {key_id}: the secret has {len} characters, at least 32 are required (or set access_validation.strict_mode: false)"
    )]
    WeakSecret {
        /// The key id.
        key_id: String,
        /// The secret's length.
        len: usize,
    },
    /// An empty secret (refused in every mode).
    #[error("key {key_id}: the secret is empty")]
    EmptySecret {
        /// The key id.
        key_id: String,
    },
    /// No key with this id.
    #[error("unknown key id {id}")]
    UnknownKey {
        /// The id.
        id: String,
    },
    /// The key comes from the environment, which Warden does not change.
    #[error(
        "key {id} comes from the environment (LIVEKIT_API_KEY / LIVEKIT_KEYS); remove it there"
    )]
    NotOwned {
        /// The id.
        id: String,
    },
    /// The key is already revoked.
    #[error("key {id} is already revoked")]
    AlreadyRevoked {
        /// The id.
        id: String,
    },
    /// Warden owns no active key to rotate.
    #[error("Warden owns no active key to rotate (create one with `warden keys create`)")]
    NothingToRotate,
    /// Rotation is not due yet.
    #[error("rotation is not due until {}; use --force to rotate now", crate::clock::rfc3339_ms(*due_ms))]
    NotDue {
        /// When it becomes due, Unix ms.
        due_ms: i64,
    },
    /// This ring has no key file (keys from the environment only).
    #[error("no key file is configured for this key ring")]
    NoStore,
    /// Rotation is disabled in the configuration.
    #[error("key rotation is disabled (key_rotation.enabled: false); use --force to rotate anyway")]
    RotationDisabled,
}

/// An immutable set of keys.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: HashMap<String, Key>,
    signing: Option<String>,
    warnings: Vec<String>,
    history: Vec<HistoryEntry>,
}

impl KeySet {
    /// The key with this id.
    pub fn get(&self, id: &str) -> Option<&Key> {
        self.keys.get(id)
    }
}

/// How a ring finds and checks its keys again on reload.
#[derive(Debug)]
struct Sources {
    files: Option<KeyFiles>,
    env: Vec<(String, Secret)>,
    env_primary: Option<String>,
    strict: bool,
    policy: RotationPolicy,
    rotation_enabled: bool,
    auto_rotation: bool,
}

/// Cheap `Clone` handle to the current key set; swapped atomically on change.
#[derive(Clone)]
pub struct KeyRing {
    current: Arc<ArcSwap<KeySet>>,
    sources: Arc<Sources>,
    /// Latest token exp recorded per key by this process: spares the metadata file a write per mint.
    minted: Arc<std::sync::Mutex<HashMap<String, i64>>>,
}

impl Default for KeyRing {
    fn default() -> Self {
        Self::from_keys(std::iter::empty())
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.current.load().keys.len())
            .finish()
    }
}

impl KeyRing {
    /// A ring holding exactly these keys, all active (as environment keys); the first signs.
    pub fn from_keys(keys: impl IntoIterator<Item = (String, Secret)>) -> Self {
        let env: Vec<_> = keys.into_iter().collect();
        let sources = Sources {
            files: None,
            env_primary: env.first().map(|(id, _)| id.clone()),
            env,
            strict: false,
            policy: RotationPolicy::from_config(&Config::defaults()),
            rotation_enabled: false,
            auto_rotation: false,
        };
        let set = ring::build(&sources, &meta::OwnedKeys::default(), Vec::new());
        Self::with(set, sources)
    }

    fn with(set: KeySet, sources: Sources) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(set)),
            sources: Arc::new(sources),
            minted: Arc::new(std::sync::Mutex::new(HashMap::new())),
        }
    }

    /// Keys from the environment only (no key file), all active.
    pub fn from_config(cfg: &Config) -> Self {
        Self::from_keys(cfg.env_keys.all.iter().cloned())
    }

    /// The secret that verifies signatures by `key_id` at `now_ms`: active or retiring within its window.
    pub fn verifying_secret(&self, key_id: &str, now_ms: i64) -> Option<Secret> {
        let set = self.current.load();
        let key = set.keys.get(key_id)?;
        let live = match key.state {
            KeyState::Active => true,
            KeyState::Retiring { until_ms } => now_ms < until_ms,
            KeyState::Revoked => false,
        };
        (live && !key.secret.is_empty()).then(|| key.secret.clone())
    }

    /// The key Warden signs with: the newest active owned key, else `LIVEKIT_API_KEY`.
    pub fn signing_key(&self) -> Option<(String, Secret)> {
        let set = self.current.load();
        let id = set.signing.as_ref()?;
        set.keys.get(id).map(|k| (k.id.clone(), k.secret.clone()))
    }

    /// Every secret Warden knows (for log masking), revoked keys' excepted (they are gone).
    pub fn all_secrets(&self) -> Vec<Secret> {
        self.current
            .load()
            .keys
            .values()
            .filter(|k| !k.secret.is_empty())
            .map(|k| k.secret.clone())
            .collect()
    }

    /// The current key set.
    pub fn snapshot(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    /// Non-fatal problems found at the last (re)load, e.g. short secrets in lax mode (key ids only).
    pub fn warnings(&self) -> Vec<String> {
        self.current.load().warnings.clone()
    }

    /// The owned store, if this ring has one.
    pub fn files(&self) -> Option<&KeyFiles> {
        self.sources.files.as_ref()
    }

    /// The rotation policy this ring was loaded with.
    pub fn policy(&self) -> RotationPolicy {
        self.sources.policy
    }

    /// The rotation history as of the last (re)load, oldest first.
    pub fn history(&self) -> Vec<HistoryEntry> {
        self.current.load().history.clone()
    }

    /// The sequence number of the newest rotation-history entry seen at the last (re)load.
    pub fn last_history_seq(&self) -> u64 {
        self.current.load().history.last().map_or(0, |e| e.seq)
    }
}

impl KeyRing {
    /// Loads all key sources for `serve`: refuses an unsafe key file or (strict
    /// mode) a short secret; with no key from any source, creates one in the key
    /// file and returns it as [`CreatedKey`] (print its id and path, never the secret).
    pub fn load(cfg: &Config, clock: &Clock) -> Result<(KeyRing, Option<CreatedKey>), KeyError> {
        ring::load_or_create(cfg, clock, true, false)
    }

    /// Loads all key sources without ever creating a key (CLI commands).
    pub fn open(cfg: &Config, clock: &Clock) -> Result<KeyRing, KeyError> {
        ring::load_or_create(cfg, clock, false, false).map(|(ring, _)| ring)
    }

    /// Like [`KeyRing::open`], but short secrets only warn even in strict mode:
    /// for the key-management commands, so a weak key can still be listed,
    /// rotated away or revoked.
    pub fn open_for_admin(cfg: &Config, clock: &Clock) -> Result<KeyRing, KeyError> {
        ring::load_or_create(cfg, clock, false, true).map(|(ring, _)| ring)
    }
}

#[cfg(test)]
mod tests;
