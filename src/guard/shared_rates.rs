//! Rate limits counted across nodes (the Redis backend; the cluster's
//! `rates` task is the other half, see [`crate::cluster`]).
//!
//! The request path never waits on Redis. Each node keeps its own GCRA
//! limiter (`limits.rs`) exactly as on one node, and in addition:
//! - counts the requests it admits, per client and shared policy (`api`,
//!   `webhook`; the SSE connection rate stays per node), in a small map that
//!   holds only the clients seen since the last push;
//! - every push (a background task, ~250 ms) takes those counts
//!   ([`Guard::take_rate_deltas`]), adds them to the cluster's per-client
//!   counter for the current fixed window in one Redis script, and gets back
//!   every client whose count across all nodes is over the limit, with the
//!   end of its window ([`Guard::apply_shared_rate_limits`]);
//! - refuses such a client with 429 until that window ends, with the same
//!   `Retry-After` and `RateLimit` headers as the local limiter.
//!
//! Memory is bounded twice: each map holds at most the client table's
//! capacity (`suspicious_activity.max_tracked_clients`). Beyond it, new
//! clients are not counted across nodes until the next push empties the map
//! (they are still limited per node), and new cluster refusals are dropped
//! until old ones expire. With the sharing off (one node, or before the
//! cluster starts) every call returns at once.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::Guard;
use super::client::ClientKey;
use super::policy::Policy;

/// Shards per map (fewer when the capacity is tiny).
const SHARDS: usize = 16;

/// The policies counted across nodes, by slot.
const SHARED: [Policy; 2] = [Policy::Api, Policy::Webhook];

fn slot(policy: Policy) -> Option<usize> {
    SHARED.iter().position(|p| *p == policy)
}

/// Requests of one client admitted on this node since the last push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateDelta {
    /// The client.
    pub client: ClientKey,
    /// The policy (`api` or `webhook`).
    pub policy: Policy,
    /// Requests admitted.
    pub count: u32,
}

/// A shared policy's limit: `limit` requests per `window_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedQuota {
    /// Requests allowed per window across all nodes.
    pub limit: u32,
    /// The window, ms (windows are aligned on the Unix epoch).
    pub window_ms: i64,
}

/// The node-local side of the shared rate limits.
pub(crate) struct SharedRates {
    enabled: AtomicBool,
    quotas: [SharedQuota; SHARED.len()],
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    /// Admitted since the last push, per slot.
    pending: HashMap<ClientKey, [u32; SHARED.len()]>,
    /// Refused until (Unix ms, 0 = not), per slot.
    limited: HashMap<ClientKey, [i64; SHARED.len()]>,
}

impl SharedRates {
    /// Off until [`SharedRates::enable`]; at most `capacity` clients per map.
    pub(crate) fn new(capacity: usize, api: SharedQuota, webhook: SharedQuota) -> Self {
        let n = SHARDS.min(capacity.max(1));
        Self {
            enabled: AtomicBool::new(false),
            quotas: [api, webhook],
            shards: (0..n).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            per_shard: (capacity / n).max(1),
        }
    }

    fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    fn on(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    fn shard(&self, key: &ClientKey) -> MutexGuard<'_, Shard> {
        let i = usize::try_from(self.hasher.hash_one(key) % self.shards.len() as u64).unwrap_or(0);
        // Plain counters: usable after a panic elsewhere.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The end of the cluster's refusal of `key` under `policy`, if one is active at `now_ms`.
    pub(crate) fn limited_until(
        &self,
        key: &ClientKey,
        policy: Policy,
        now_ms: i64,
    ) -> Option<i64> {
        let i = slot(policy).filter(|_| self.on())?;
        let until = self.shard(key).limited.get(key).map(|u| u[i])?;
        (until > now_ms).then_some(until)
    }

    /// Counts one admitted request of `key` under `policy`.
    pub(crate) fn count(&self, key: &ClientKey, policy: Policy) {
        let Some(i) = slot(policy).filter(|_| self.on()) else {
            return;
        };
        let mut shard = self.shard(key);
        let full = shard.pending.len() >= self.per_shard;
        if let Some(n) = shard.pending.get_mut(key) {
            n[i] = n[i].saturating_add(1);
        } else if !full {
            let mut n = [0; SHARED.len()];
            n[i] = 1;
            shard.pending.insert(*key, n);
        }
    }

    fn take(&self) -> Vec<RateDelta> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let pending =
                std::mem::take(&mut shard.lock().unwrap_or_else(PoisonError::into_inner).pending);
            for (client, counts) in pending {
                for (i, &count) in counts.iter().enumerate() {
                    if count > 0 {
                        out.push(RateDelta {
                            client,
                            policy: SHARED[i],
                            count,
                        });
                    }
                }
            }
        }
        out
    }

    fn impose(&self, limited: &[(ClientKey, Policy, i64)], now_ms: i64) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.limited.retain(|_, u| u.iter().any(|&t| t > now_ms));
        }
        for (client, policy, until) in limited {
            let Some(i) = slot(*policy).filter(|_| *until > now_ms) else {
                continue;
            };
            let mut shard = self.shard(client);
            let full = shard.limited.len() >= self.per_shard;
            if let Some(u) = shard.limited.get_mut(client) {
                u[i] = u[i].max(*until);
            } else if !full {
                let mut u = [0; SHARED.len()];
                u[i] = *until;
                shard.limited.insert(*client, u);
            }
        }
    }
}

impl Guard {
    /// Starts counting admitted requests for the cluster and honouring its
    /// refusals (the Redis backend calls it once at start).
    pub fn enable_shared_rates(&self) {
        self.inner.rates.enable();
    }

    /// The limit of a shared policy (`None` for the per-node `sse` policy).
    pub fn shared_quota(&self, policy: Policy) -> Option<SharedQuota> {
        slot(policy).map(|i| self.inner.rates.quotas[i])
    }

    /// Takes the requests admitted here since the last call.
    pub fn take_rate_deltas(&self) -> Vec<RateDelta> {
        self.inner.rates.take()
    }

    /// Refuses each `(client, policy)` until its time (Unix ms): the clients
    /// the cluster found over a limit. Expired refusals are dropped; a
    /// refusal is never shortened.
    pub fn apply_shared_rate_limits(&self, limited: &[(ClientKey, Policy, i64)]) {
        self.inner.rates.impose(limited, self.inner.clock.now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: SharedQuota = SharedQuota {
        limit: 10,
        window_ms: 60_000,
    };

    fn c(n: u8) -> ClientKey {
        ClientKey::V4([192, 0, 2, n])
    }

    #[test]
    fn nothing_is_counted_or_refused_until_enabled() {
        let r = SharedRates::new(100, Q, Q);
        r.count(&c(1), Policy::Api);
        r.impose(&[(c(1), Policy::Api, 5_000)], 0);
        assert!(r.take().is_empty());
        assert_eq!(r.limited_until(&c(1), Policy::Api, 0), None);
    }

    #[test]
    fn counts_are_taken_once_per_client_and_policy() {
        let r = SharedRates::new(100, Q, Q);
        r.enable();
        for _ in 0..3 {
            r.count(&c(1), Policy::Api);
        }
        r.count(&c(1), Policy::Webhook);
        r.count(&c(2), Policy::Sse);
        let mut got = r.take();
        got.sort_by_key(|d| d.policy as usize);
        assert_eq!(
            got,
            [
                RateDelta {
                    client: c(1),
                    policy: Policy::Api,
                    count: 3
                },
                RateDelta {
                    client: c(1),
                    policy: Policy::Webhook,
                    count: 1
                }
            ],
            "sse stays per node"
        );
        assert!(r.take().is_empty(), "taken once");
    }

    #[test]
    fn refusals_last_until_their_window_ends_and_are_never_shortened() {
        let r = SharedRates::new(100, Q, Q);
        r.enable();
        r.impose(&[(c(1), Policy::Webhook, 60_000)], 1_000);
        assert_eq!(r.limited_until(&c(1), Policy::Webhook, 1_000), Some(60_000));
        assert_eq!(
            r.limited_until(&c(1), Policy::Api, 1_000),
            None,
            "per policy"
        );
        r.impose(&[(c(1), Policy::Webhook, 30_000)], 2_000);
        assert_eq!(r.limited_until(&c(1), Policy::Webhook, 2_000), Some(60_000));
        assert_eq!(r.limited_until(&c(1), Policy::Webhook, 60_000), None);
        r.impose(&[], 60_000);
        assert!(
            r.shards
                .iter()
                .all(|s| s.lock().expect("lock").limited.is_empty())
        );
    }

    #[test]
    fn both_maps_stay_within_the_capacity() {
        let r = SharedRates::new(32, Q, Q);
        r.enable();
        let many: Vec<_> = (0..=255).map(c).collect();
        for k in &many {
            r.count(k, Policy::Api);
        }
        r.impose(
            &many
                .iter()
                .map(|k| (*k, Policy::Api, 9_000))
                .collect::<Vec<_>>(),
            0,
        );
        let held = |f: fn(&Shard) -> usize| {
            r.shards
                .iter()
                .map(|s| f(&s.lock().expect("lock")))
                .sum::<usize>()
        };
        assert!(held(|s| s.pending.len()) <= 32);
        assert!(held(|s| s.limited.len()) <= 32);
        let taken = r.take().len();
        assert!((16..=32).contains(&taken), "{taken}");
        // Emptied by the push: new clients are counted again.
        r.count(&c(7), Policy::Api);
        assert_eq!(r.take().len(), 1);
    }
}
