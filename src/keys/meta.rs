//! The model of the keys Warden owns: secrets from the key file merged with
//! the metadata of the sidecar file (`<key file>.meta.json`).
//!
//! Invariants: the key file holds the secret of every key that still verifies
//! (active and retiring) and of no revoked key; the metadata file holds no
//! secret. The two files are written key file first, so a crash between the
//! writes can leave a key in the key file without metadata (it is then taken
//! as active, created now: nothing lost) or metadata for a key whose secret is
//! gone (it is then taken as revoked: a revocation is never undone). A revoked
//! state in the metadata wins over a secret found in the key file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::format::fingerprint;
use crate::redact::Secret;

/// History entries kept (oldest dropped first).
pub const MAX_HISTORY: usize = 1000;

/// Version of the metadata file format.
pub const META_VERSION: u32 = 1;

/// Life-cycle state as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredState {
    /// Signs and verifies.
    Active,
    /// Verifies until `retiring_until_ms` (extended by `max_token_exp_ms`).
    Retiring,
    /// Verifies nothing; its secret has left the key file.
    Revoked,
}

/// What Warden remembers about one key it owns (never the secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// Creation (or first sighting), Unix ms.
    pub created_ms: i64,
    /// When it was rotated out, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_ms: Option<i64>,
    /// State.
    pub state: StoredState,
    /// End of the overlap when retiring, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring_until_ms: Option<i64>,
    /// When it was revoked, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_ms: Option<i64>,
    /// The key that replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// Fingerprint of the secret (see [`fingerprint`]).
    pub fingerprint: String,
    /// Latest `exp` (Unix ms, rounded up) of any token Warden minted with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_exp_ms: Option<i64>,
}

/// A step in a key's life, as kept in the rotation history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A key was created (`keys create`, first start).
    Created,
    /// A new key replaced the active one(s), which turned retiring.
    Rotated,
    /// A key was revoked by hand.
    Revoked,
    /// A retiring key's overlap ended; it is revoked.
    Expired,
}

impl Action {
    /// The lower-case name (as stored).
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Rotated => "rotated",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// One entry of the rotation history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Strictly increasing sequence number (lets a watcher report new steps once).
    pub seq: u64,
    /// When, Unix ms.
    pub at_ms: i64,
    /// What happened.
    pub action: Action,
    /// The key it happened to (the new key for `rotated`).
    pub key_id: String,
    /// For `rotated`: the keys that turned retiring.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
    /// For `rotated`: end of the overlap, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<i64>,
    /// Who: `cli`, `auto`, `server`, `startup`.
    pub by: String,
}

/// The metadata file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MetaFile {
    /// Format version.
    pub version: u32,
    /// Per key id.
    #[serde(default)]
    pub keys: BTreeMap<String, KeyMeta>,
    /// Rotation history, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

/// One key Warden owns: its secret (absent once revoked) and its metadata.
#[derive(Clone, Debug)]
pub struct OwnedKey {
    /// Key id.
    pub id: String,
    /// Secret; `None` when revoked (the key file no longer holds it).
    pub secret: Option<Secret>,
    /// Metadata.
    pub meta: KeyMeta,
}

/// All keys Warden owns, with the rotation history.
#[derive(Clone, Debug, Default)]
pub struct OwnedKeys {
    /// Keys in key-file order, then metadata-only (revoked) keys.
    pub keys: Vec<OwnedKey>,
    /// Rotation history, oldest first.
    pub history: Vec<HistoryEntry>,
}

impl OwnedKeys {
    /// Merges the key file's entries with the metadata (see the module invariants).
    pub fn merge(file: Vec<(String, Secret)>, mut meta: MetaFile, now_ms: i64) -> Self {
        let mut keys = Vec::with_capacity(file.len());
        for (id, secret) in file {
            if keys.iter().any(|k: &OwnedKey| k.id == id) {
                continue;
            }
            let meta = match meta.keys.remove(&id) {
                Some(m) if m.state == StoredState::Revoked => m,
                Some(mut m) => {
                    m.fingerprint = fingerprint(&secret);
                    m
                }
                None => KeyMeta::new_active(now_ms, &secret),
            };
            let secret = (meta.state != StoredState::Revoked).then_some(secret);
            keys.push(OwnedKey { id, secret, meta });
        }
        for (id, mut m) in meta.keys {
            if m.state != StoredState::Revoked {
                // Its secret is gone from the key file: a revocation that crashed half-way.
                m.state = StoredState::Revoked;
                m.revoked_ms.get_or_insert(now_ms);
            }
            keys.push(OwnedKey {
                id,
                secret: None,
                meta: m,
            });
        }
        Self {
            keys,
            history: meta.history,
        }
    }

    /// The metadata file for these keys.
    pub fn to_meta(&self) -> MetaFile {
        MetaFile {
            version: META_VERSION,
            keys: self
                .keys
                .iter()
                .map(|k| (k.id.clone(), k.meta.clone()))
                .collect(),
            history: self.history.clone(),
        }
    }

    /// The key with this id.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut OwnedKey> {
        self.keys.iter_mut().find(|k| k.id == id)
    }

    /// The keys whose secrets belong in the key file (active and retiring).
    pub fn live(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.keys
            .iter()
            .filter_map(|k| k.secret.as_ref().map(|s| (k.id.as_str(), s)))
    }

    /// The newest active key (by creation time), if any.
    pub fn newest_active(&self) -> Option<&OwnedKey> {
        self.keys
            .iter()
            .filter(|k| k.meta.state == StoredState::Active && k.secret.is_some())
            .max_by_key(|k| k.meta.created_ms)
    }

    /// Appends a history entry with the next sequence number.
    pub fn log(&mut self, mut entry: HistoryEntry) {
        entry.seq = self.history.last().map_or(1, |e| e.seq + 1);
        self.history.push(entry);
        if self.history.len() > MAX_HISTORY {
            let excess = self.history.len() - MAX_HISTORY;
            self.history.drain(..excess);
        }
    }

    /// The sequence number of the latest history entry (0 when none).
    pub fn last_seq(&self) -> u64 {
        self.history.last().map_or(0, |e| e.seq)
    }
}

impl KeyMeta {
    /// Metadata of a key that is active from `now_ms`.
    pub fn new_active(now_ms: i64, secret: &Secret) -> Self {
        Self {
            created_ms: now_ms,
            rotated_ms: None,
            state: StoredState::Active,
            retiring_until_ms: None,
            revoked_ms: None,
            replaced_by: None,
            fingerprint: fingerprint(secret),
            max_token_exp_ms: None,
        }
    }

    /// The end of a retiring key's overlap: the stored end, pushed out to the
    /// latest token exp Warden minted with it.
    pub fn effective_until_ms(&self) -> Option<i64> {
        let until = self.retiring_until_ms?;
        Some(self.max_token_exp_ms.map_or(until, |exp| until.max(exp)))
    }
}
