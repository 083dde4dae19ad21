//! What the guard remembers per client and per API key id — one table entry
//! each, so the caps and eviction in `table` bound all of it together.
//!
//! Sizes (the memory test measures them): a client entry is 192 bytes inline
//! plus its 18-byte key twice (map and eviction ring); with the remove/insert
//! churn of an address spray, hashbrown settles at about twice the entries in
//! buckets, so a full table costs about 480 bytes per tracked client (≈ 48 MB
//! at the default cap of 100 000), plus `8 × max_failed_attempts` bytes of
//! failure times for clients with recent failures. A key entry is 72 bytes
//! plus 26 bytes per distinct failing client remembered.

use super::anomaly::Counter;
use super::lockout::{KeyFailures, LockState};
use super::policy::Policy;
use super::table::Evictable;

/// Everything tracked about one client.
#[derive(Debug, Default)]
pub(crate) struct ClientState {
    /// GCRA theoretical arrival time per [`Policy`] (governor nanos; 0 = none).
    pub tat: [u64; Policy::COUNT],
    /// When a `RATE_LIMIT_EXCEEDED` was last recorded, per policy (ms; 0 = never).
    pub rate_reported_ms: [i64; Policy::COUNT],
    /// When an `IP_BLOCKED` for the static blocklist was last recorded (ms; 0 = never).
    pub blocked_reported_ms: i64,
    /// Failed authentications and the lockout.
    pub lock: LockState,
    /// `/api/*` usage.
    pub api_usage: Counter,
    /// Webhook deliveries from this source.
    pub webhook_usage: Counter,
}

impl Evictable for ClientState {
    /// An active lockout is the one thing eviction must not quietly undo.
    fn pinned(&self, now_ms: i64) -> bool {
        self.lock.locked_until(now_ms).is_some()
    }
}

/// Everything tracked about one API key id (a key id is public: this only
/// ever raises alerts, it never refuses anything).
#[derive(Debug, Default)]
pub(crate) struct KeyState {
    /// Distinct clients failing against this key.
    pub failures: KeyFailures,
    /// Successful authentications with this key.
    pub usage: Counter,
}

impl Evictable for KeyState {
    fn pinned(&self, _now_ms: i64) -> bool {
        false
    }
}

/// Longest key id kept (longer ones are cut at a char boundary): key ids come
/// from unauthenticated tokens, so their size is the attacker's choice.
pub(crate) const MAX_KEY_ID_LEN: usize = 128;

/// `key_id` cut to [`MAX_KEY_ID_LEN`] bytes.
pub(crate) fn key_id(key_id: &str) -> &str {
    if key_id.len() <= MAX_KEY_ID_LEN {
        return key_id;
    }
    let mut end = MAX_KEY_ID_LEN;
    while !key_id.is_char_boundary(end) {
        end -= 1;
    }
    &key_id[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn entries_stay_as_small_as_documented() {
        assert!(
            size_of::<super::ClientState>() <= 192,
            "{}",
            size_of::<super::ClientState>()
        );
        assert!(
            size_of::<super::KeyState>() <= 72,
            "{}",
            size_of::<super::KeyState>()
        );
    }
}
