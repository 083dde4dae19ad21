//! The bounded, sharded map behind every per-client and per-key record.
//!
//! Invariants:
//! - A table never holds more than its capacity: each of its shards holds at
//!   most `capacity / shards` entries, so one million distinct sources cost no
//!   more memory than `capacity` of them.
//! - Eviction is CLOCK (second chance): entries sit in a ring in insertion
//!   order; an entry touched again since it was last passed over, or one that
//!   is [`Evictable::pinned`] (an active lockout), is moved to the back instead
//!   of evicted. One-shot sources — what an address-spraying attack produces —
//!   go first. The scan is bounded ([`SCAN`]); when it finds nothing evictable
//!   the entry it ends on is evicted anyway: the cap is hard, because memory
//!   must win over a lockout (an attacker holding that many lockouts has more
//!   addresses than a lockout could stop).
//! - Entries leave the map only through the ring, so the ring holds each key
//!   exactly once and never outgrows the map.
//!
//! Why a std `Mutex` per shard: every operation is a hash lookup and a few
//! integer updates, never held across an `.await` or I/O; 16 shards keep
//! contention low on the cores a gateway has.

use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Shards per table (fewer when the capacity is tiny).
const SHARDS: usize = 16;

/// Most ring entries looked at to find one to evict.
const SCAN: usize = 32;

/// What a table needs to know about its values to evict them.
pub(crate) trait Evictable {
    /// True while the value must survive eviction pressure if at all possible.
    fn pinned(&self, now_ms: i64) -> bool;
}

/// A capacity-bounded map from `K` to `V`, sharded by a randomly seeded hash.
pub(crate) struct Table<K, V> {
    shards: Box<[Mutex<Shard<K, V>>]>,
    hasher: RandomState,
    per_shard: usize,
}

struct Shard<K, V> {
    map: HashMap<K, Slot<V>>,
    ring: VecDeque<K>,
    evicted: u64,
}

struct Slot<V> {
    value: V,
    referenced: bool,
}

impl<K: Hash + Eq + Clone, V: Default + Evictable> Table<K, V> {
    /// A table that holds at most `capacity` entries (at least one per shard).
    pub(crate) fn new(capacity: usize) -> Self {
        let n = SHARDS.min(capacity.max(1));
        let shards = (0..n)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::new(),
                    ring: VecDeque::new(),
                    evicted: 0,
                })
            })
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
            per_shard: (capacity / n).max(1),
        }
    }

    /// The most entries this table holds.
    pub(crate) fn capacity(&self) -> usize {
        self.per_shard * self.shards.len()
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> MutexGuard<'_, Shard<K, V>> {
        let i = usize::try_from(self.hasher.hash_one(key) % self.shards.len() as u64).unwrap_or(0);
        // A panic while holding the lock leaves plain counters behind; they are
        // still usable, and refusing every request afterwards would be worse.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the entry for `key`, creating it (evicting if full) when absent.
    pub(crate) fn upsert<Q, R>(&self, key: &Q, now_ms: i64, f: impl FnOnce(&mut V) -> R) -> R
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut shard = self.shard(key);
        if let Some(slot) = shard.map.get_mut(key) {
            slot.referenced = true;
            return f(&mut slot.value);
        }
        if shard.map.len() >= self.per_shard {
            shard.evict_one(now_ms);
        }
        let owned = key.to_owned();
        shard.ring.push_back(owned.clone());
        let slot = shard.map.entry(owned).or_insert(Slot {
            value: V::default(),
            referenced: false,
        });
        f(&mut slot.value)
    }

    /// Runs `f` on the entry for `key` if there is one; never creates one.
    pub(crate) fn get_mut<Q, R>(&self, key: &Q, f: impl FnOnce(&mut V) -> R) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shard(key)
            .map
            .get_mut(key)
            .map(|slot| f(&mut slot.value))
    }

    /// Visits every entry (shard by shard; each shard locked only while visited).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.map.iter().for_each(|(k, slot)| f(k, &slot.value));
        }
    }

    /// Entries held now.
    pub(crate) fn len(&self) -> usize {
        self.lock_all().map(|s| s.map.len()).sum()
    }

    /// Entries evicted so far.
    pub(crate) fn evicted(&self) -> u64 {
        self.lock_all().map(|s| s.evicted).sum()
    }

    /// Approximate heap bytes of the maps and rings (allocated capacity, not
    /// just what is in use; heap data owned by values is not included).
    pub(crate) fn approx_bytes(&self) -> usize {
        let entry = size_of::<K>() + size_of::<Slot<V>>() + 1; // +1: hashbrown control byte
        self.lock_all()
            .map(|s| s.map.capacity() * entry + s.ring.capacity() * size_of::<K>())
            .sum()
    }

    fn lock_all(&self) -> impl Iterator<Item = MutexGuard<'_, Shard<K, V>>> {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<K: Hash + Eq + Clone, V: Evictable> Shard<K, V> {
    fn evict_one(&mut self, now_ms: i64) {
        for i in 0..SCAN {
            let Some(key) = self.ring.pop_front() else {
                return;
            };
            let Some(slot) = self.map.get_mut(&key) else {
                continue;
            };
            let last_look = i + 1 == SCAN;
            if last_look || !(slot.referenced || slot.value.pinned(now_ms)) {
                self.map.remove(&key);
                self.evicted += 1;
                return;
            }
            slot.referenced = false;
            self.ring.push_back(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct V {
        pinned: bool,
        hits: u32,
    }

    impl Evictable for V {
        fn pinned(&self, _now_ms: i64) -> bool {
            self.pinned
        }
    }

    #[test]
    fn never_exceeds_capacity_and_ring_matches_map() {
        let t: Table<u32, V> = Table::new(100);
        for k in 0..10_000u32 {
            t.upsert(&k, 0, |v| v.hits += 1);
        }
        assert!(t.len() <= 100, "{}", t.len());
        assert!(t.len() >= 90, "{}", t.len());
        assert_eq!(t.evicted() as usize + t.len(), 10_000);
        for s in t.shards.iter() {
            let s = s.lock().expect("test lock");
            assert_eq!(s.ring.len(), s.map.len());
        }
    }

    #[test]
    fn pinned_and_recently_used_entries_survive_a_spray() {
        let t: Table<u32, V> = Table::new(1600);
        t.upsert(&1, 0, |v| v.pinned = true);
        t.upsert(&2, 0, |v| v.hits += 1);
        for k in 1000..1_000_000u32 {
            // The honest client 2 keeps coming back while the spray goes on.
            if k % 50 == 0 {
                t.upsert(&2, 0, |v| v.hits += 1);
            }
            t.upsert(&k, 0, |v| v.hits += 1);
        }
        assert_eq!(t.get_mut(&1, |v| v.pinned), Some(true));
        assert!(t.get_mut(&2, |v| v.hits).is_some());
        assert!(t.len() <= 1600);
    }
}
