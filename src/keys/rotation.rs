//! Rotation as pure functions over [`OwnedKeys`]: no I/O, no clock, no
//! randomness (the new key is passed in), so every boundary is testable.
//!
//! A rotation adds one active key and turns every previously active owned key
//! `retiring` until `max(now + overlap, latest minted token exp + leeway)`, so
//! no token Warden minted outlives the key that verifies it. When that time
//! has passed, [`expire`] revokes the key (its secret then leaves the key file).

use std::time::Duration;

use super::meta::{Action, HistoryEntry, KeyMeta, OwnedKey, OwnedKeys, StoredState};
use crate::redact::Secret;

/// The rotation settings that matter to the pure functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Age at which the active key is due for rotation.
    pub interval: Duration,
    /// How long a retiring key keeps verifying at least.
    pub overlap: Duration,
    /// Clock skew tolerated on token `exp`: a retiring key outlives its tokens by this much.
    pub token_leeway: Duration,
}

impl RotationPolicy {
    /// The policy of a configuration.
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            interval: cfg.key_rotation.rotation_interval,
            overlap: cfg.key_rotation.overlap_period,
            token_leeway: cfg.webhooks.leeway,
        }
    }
}

/// What a rotation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotated {
    /// The new active key.
    pub new_id: String,
    /// The keys that turned retiring.
    pub retired: Vec<String>,
    /// End of their overlap, Unix ms.
    pub until_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// True when a key created at `created_ms` is at least `interval` old at `now_ms`.
pub fn is_key_rotation_due(created_ms: i64, now_ms: i64, interval: Duration) -> bool {
    now_ms.saturating_sub(created_ms) >= ms(interval)
}

/// When the key created at `created_ms` becomes due, Unix ms.
pub fn rotation_due_at(created_ms: i64, interval: Duration) -> i64 {
    created_ms.saturating_add(ms(interval))
}

/// Adds `id` as a new active key (no rotation). `by` names the actor for the history.
pub fn create(keys: &mut OwnedKeys, id: String, secret: Secret, now_ms: i64, by: &str) {
    let meta = KeyMeta::new_active(now_ms, &secret);
    keys.keys.push(OwnedKey {
        id: id.clone(),
        secret: Some(secret),
        meta,
    });
    keys.log(entry(now_ms, Action::Created, id, by));
}

/// Rotates: `id` becomes the active key and every other active owned key turns retiring.
pub fn rotate(
    keys: &mut OwnedKeys,
    id: String,
    secret: Secret,
    now_ms: i64,
    policy: &RotationPolicy,
    by: &str,
) -> Rotated {
    let floor = now_ms.saturating_add(ms(policy.overlap));
    let mut retired = Vec::new();
    let mut until_ms = floor;
    for k in keys
        .keys
        .iter_mut()
        .filter(|k| k.meta.state == StoredState::Active && k.secret.is_some())
    {
        let outlive = k
            .meta
            .max_token_exp_ms
            .map_or(floor, |exp| exp.saturating_add(ms(policy.token_leeway)));
        let until = floor.max(outlive);
        k.meta.state = StoredState::Retiring;
        k.meta.rotated_ms = Some(now_ms);
        k.meta.retiring_until_ms = Some(until);
        k.meta.replaced_by = Some(id.clone());
        until_ms = until_ms.max(until);
        retired.push(k.id.clone());
    }
    let meta = KeyMeta::new_active(now_ms, &secret);
    keys.keys.push(OwnedKey {
        id: id.clone(),
        secret: Some(secret),
        meta,
    });
    let mut e = entry(now_ms, Action::Rotated, id.clone(), by);
    e.retired.clone_from(&retired);
    e.until_ms = Some(until_ms);
    keys.log(e);
    Rotated {
        new_id: id,
        retired,
        until_ms,
    }
}

/// Why a revocation did nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevokeRefusal {
    /// No owned key has this id.
    Unknown,
    /// It is already revoked.
    AlreadyRevoked,
}

/// Revokes `id` now.
pub fn revoke(keys: &mut OwnedKeys, id: &str, now_ms: i64, by: &str) -> Result<(), RevokeRefusal> {
    let key = keys.get_mut(id).ok_or(RevokeRefusal::Unknown)?;
    if key.meta.state == StoredState::Revoked {
        return Err(RevokeRefusal::AlreadyRevoked);
    }
    mark_revoked(key, now_ms);
    keys.log(entry(now_ms, Action::Revoked, id.to_owned(), by));
    Ok(())
}

/// Revokes every retiring key whose overlap has ended at `now_ms`; returns their ids.
pub fn expire(keys: &mut OwnedKeys, now_ms: i64, by: &str) -> Vec<String> {
    let mut expired = Vec::new();
    for k in &mut keys.keys {
        if k.meta.state == StoredState::Retiring
            && k.meta.effective_until_ms().is_none_or(|u| now_ms >= u)
        {
            mark_revoked(k, now_ms);
            expired.push(k.id.clone());
        }
    }
    for id in &expired {
        keys.log(entry(now_ms, Action::Expired, id.clone(), by));
    }
    expired
}

/// Records that a token expiring at `exp_ms` was minted with `id`; returns
/// true when the stored value changed. The value is rounded up to the next
/// 5 minutes so a busy minter rewrites the metadata at most every 5 minutes.
pub fn record_minted_exp(keys: &mut OwnedKeys, id: &str, exp_ms: i64) -> bool {
    const STEP_MS: i64 = 300_000;
    let rounded = exp_ms
        .saturating_add(STEP_MS - 1)
        .div_euclid(STEP_MS)
        .saturating_mul(STEP_MS);
    let Some(k) = keys.get_mut(id) else {
        return false;
    };
    if k.meta.max_token_exp_ms.is_some_and(|cur| cur >= exp_ms) {
        return false;
    }
    k.meta.max_token_exp_ms = Some(rounded);
    true
}

fn mark_revoked(key: &mut OwnedKey, now_ms: i64) {
    key.meta.state = StoredState::Revoked;
    key.meta.revoked_ms = Some(now_ms);
    key.secret = None;
}

fn entry(at_ms: i64, action: Action, key_id: String, by: &str) -> HistoryEntry {
    HistoryEntry {
        seq: 0,
        at_ms,
        action,
        key_id,
        retired: Vec::new(),
        until_ms: None,
        by: by.to_owned(),
    }
}

#[cfg(test)]
mod tests;
