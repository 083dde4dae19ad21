//! Seen webhook event ids: each id is processed once within the replay window.
//!
//! The in-memory map is the authority, so the hot path is one short mutex
//! section (a hash lookup and insert). Memory is bounded twice: entries older
//! than the window are evicted, and beyond `cap` the oldest go first. For each
//! id a truncated SHA-256 of the body is kept, to tell LiveKit's retry (same
//! bytes) from a replay with a different body.
//!
//! With SQLite, ids are loaded at start and new ids wait in a pending list
//! until the hub's journal takes them ([`ReplayStore::take_pending`]) and
//! commits them in the same transaction as the events they belong to, before
//! LiveKit gets its 200: an acknowledged event's id is never forgotten by a
//! crash, so its retry after a restart is still a duplicate. Without a
//! journal (tests, benchmarks), [`ReplayStore::flush`] writes the pending ids,
//! and so does a check that finds [`MAX_PENDING`] of them waiting. An id whose
//! event could not be stored is taken back ([`ReplayStore::forget`]) so that
//! LiveKit's retry is processed. With the Redis backend the id is checked in
//! the cluster's publish script instead, and no store is used (see
//! [`crate::ingest::Publisher`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::{EventType, NewEvent, Severity};
use crate::store::Sqlite;

/// Default bound on remembered ids (≈100 MB at the worst; far above real event rates).
pub const DEFAULT_CAP: usize = 1_000_000;

/// Bytes of the body digest kept per id.
const DIGEST_BYTES: usize = 16;

/// Pending ids at which a check writes them itself (no journal is taking them).
pub const MAX_PENDING: usize = 65_536;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS webhook_seen (
    id TEXT PRIMARY KEY NOT NULL,
    body_sha256 BLOB NOT NULL,
    seen_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_seen_by_time ON webhook_seen (seen_ms);";

/// A truncated SHA-256 of a body.
pub type BodyDigest = [u8; DIGEST_BYTES];

/// The first bytes of SHA-256(body).
pub fn digest(body: &[u8]) -> BodyDigest {
    use sha2::{Digest, Sha256};
    truncate(&Sha256::digest(body).into())
}

/// The [`BodyDigest`] of a body whose full SHA-256 is already known.
pub fn truncate(sha256: &[u8; 32]) -> BodyDigest {
    let mut out = [0u8; DIGEST_BYTES];
    out.copy_from_slice(&sha256[..DIGEST_BYTES]);
    out
}

/// `WEBHOOK_REPLAY`: the event id `event` carries was accepted before from
/// another body (a replay, or a LiveKit bug), delivered now from `ip`.
pub fn replay_event(ip: std::net::IpAddr, event: &crate::event::Event) -> NewEvent {
    NewEvent::new(EventType::WebhookReplay, Severity::High)
        .ip(ip)
        .detail("event_id", event.id.clone())
        .detail("event", event.event.clone())
}

/// What [`ReplayStore::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// First time within the window: process it.
    New,
    /// Seen with the same body: a retry.
    Retry,
    /// Seen with a different body: a replay (or a LiveKit bug) worth recording.
    Replay,
}

/// Errors opening the persistent store.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The table could not be created or read.
    #[error("replay store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// One id to write: what [`ReplayStore::take_pending`] hands the journal.
#[derive(Debug, Clone)]
pub struct SeenRecord {
    id: Arc<str>,
    digest: BodyDigest,
    seen_ms: i64,
    /// Rows at or before this are outside the window and pruned with the write.
    cutoff: i64,
}

struct Entry {
    digest: BodyDigest,
    seen_ms: i64,
}

#[derive(Default)]
struct Memory {
    map: HashMap<Arc<str>, Entry>,
    order: VecDeque<(i64, Arc<str>)>,
}

/// Cheap `Clone` handle to the seen-id set.
#[derive(Clone)]
pub struct ReplayStore {
    memory: Arc<Mutex<Memory>>,
    cap: usize,
    /// The database and the ids not yet written to it.
    disk: Option<Arc<Disk>>,
}

impl std::fmt::Debug for ReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayStore")
            .field("cap", &self.cap)
            .field("persistent", &self.disk.is_some())
            .finish()
    }
}

impl ReplayStore {
    /// An in-memory store remembering at most `cap` ids (lost on restart).
    pub fn memory(cap: usize) -> Self {
        Self {
            memory: Arc::default(),
            cap: cap.max(1),
            disk: None,
        }
    }

    /// A store persisted in `db` (table `webhook_seen`), loaded now; at most `cap` ids kept.
    pub fn sqlite(db: Sqlite, cap: usize) -> Result<Self, ReplayError> {
        db.migrate(SCHEMA)?;
        let cap = cap.max(1);
        let rows = load(&db, cap)?;
        let mut memory = Memory::default();
        for (id, digest, seen_ms) in rows {
            memory.order.push_back((seen_ms, id.clone()));
            memory.map.insert(id, Entry { digest, seen_ms });
        }
        Ok(Self {
            memory: Arc::new(Mutex::new(memory)),
            cap,
            disk: Some(Arc::new(Disk {
                db,
                pending: Mutex::default(),
            })),
        })
    }

    /// Records `id` seen at `now_ms` with `body` digest, unless already seen within `window`.
    pub fn check(&self, id: &str, body: BodyDigest, now_ms: i64, window: Duration) -> Seen {
        let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(window_ms);
        // A poisoned lock only means another request panicked mid-insert; the map is still consistent.
        let mut mem = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        mem.evict(cutoff, self.cap);
        if let Some(e) = mem.map.get(id)
            && e.seen_ms > cutoff
        {
            return if e.digest == body {
                Seen::Retry
            } else {
                Seen::Replay
            };
        }
        // Room for one more: the oldest goes when the set is full.
        mem.evict(cutoff, self.cap - 1);
        // One allocation shared by the map, the age queue and the writer.
        let key: Arc<str> = id.into();
        mem.order.push_back((now_ms, key.clone()));
        mem.map.insert(
            key.clone(),
            Entry {
                digest: body,
                seen_ms: now_ms,
            },
        );
        drop(mem);
        if let Some(disk) = &self.disk {
            let full = {
                let mut pending = disk.lock_pending();
                pending.push(SeenRecord {
                    id: key,
                    digest: body,
                    seen_ms: now_ms,
                    cutoff,
                });
                pending.len() >= MAX_PENDING
            };
            if full {
                self.flush();
            }
        }
        Seen::New
    }

    /// The ids checked since the last call, for the journal to commit with
    /// their events (see the module docs).
    pub fn take_pending(&self) -> Vec<SeenRecord> {
        self.disk
            .as_ref()
            .map(|d| std::mem::take(&mut *d.lock_pending()))
            .unwrap_or_default()
    }

    /// Returns ids whose write failed, to be written with the next group.
    pub fn put_back(&self, mut records: Vec<SeenRecord>) {
        if let Some(disk) = &self.disk {
            let mut pending = disk.lock_pending();
            records.append(&mut pending);
            *pending = records;
        }
    }

    /// Forgets `id` (its event could not be stored): LiveKit's retry of it is new again.
    pub fn forget(&self, id: &str) {
        let mut mem = self
            .memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        mem.map.remove(id);
        drop(mem);
        if let Some(disk) = &self.disk {
            disk.lock_pending().retain(|r| &*r.id != id);
        }
    }

    /// Writes every pending id now (no-op in memory); for use without a journal and at shutdown.
    pub fn flush(&self) {
        let Some(disk) = &self.disk else {
            return;
        };
        let records = self.take_pending();
        if records.is_empty() {
            return;
        }
        let written = disk.db.with(|c| {
            let tx = c.transaction()?;
            write_seen(&tx, &records)?;
            tx.commit()
        });
        if let Err(e) = written {
            tracing::error!(error = %e, ids = records.len(), "webhook replay store: write failed");
            self.put_back(records);
        }
    }

    /// Ids currently remembered.
    pub fn len(&self) -> usize {
        self.memory.lock().map_or(0, |m| m.map.len())
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Memory {
    /// Drops entries at or before `cutoff`, then the oldest while more than `keep` remain.
    fn evict(&mut self, cutoff: i64, keep: usize) {
        while let Some((seen_ms, _)) = self.order.front() {
            if *seen_ms > cutoff && self.map.len() <= keep {
                break;
            }
            let Some((seen_ms, id)) = self.order.pop_front() else {
                break;
            };
            // Only remove the map entry this queue slot stands for (the id may have been re-added).
            if self.map.get(&id).is_some_and(|e| e.seen_ms == seen_ms) {
                self.map.remove(&id);
            }
        }
    }
}

fn load(db: &Sqlite, cap: usize) -> Result<Vec<(Arc<str>, BodyDigest, i64)>, ReplayError> {
    let limit = i64::try_from(cap).unwrap_or(i64::MAX);
    let rows = db.with(|c| {
        let mut stmt = c.prepare(
            "SELECT id, body_sha256, seen_ms FROM (SELECT * FROM webhook_seen ORDER BY seen_ms DESC LIMIT ?1) ORDER BY seen_ms ASC",
        )?;
        let iter = stmt.query_map([limit], |r| {
            let id: String = r.get(0)?;
            let blob: Vec<u8> = r.get(1)?;
            Ok((id, blob, r.get::<_, i64>(2)?))
        })?;
        iter.collect::<rusqlite::Result<Vec<_>>>()
    })?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, blob, ms)| {
            Some((
                Arc::from(id),
                BodyDigest::try_from(blob.as_slice()).ok()?,
                ms,
            ))
        })
        .collect())
}

/// The database side of a persistent store.
struct Disk {
    db: Sqlite,
    pending: Mutex<Vec<SeenRecord>>,
}

impl Disk {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<SeenRecord>> {
        // Pushes and takes leave the list valid even if a holder panicked.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Writes `records` in `tx` and prunes rows outside the window.
pub fn write_seen(tx: &rusqlite::Transaction<'_>, records: &[SeenRecord]) -> rusqlite::Result<()> {
    let Some(cutoff) = records.iter().map(|r| r.cutoff).max() else {
        return Ok(());
    };
    let mut ins = tx.prepare_cached(
        "INSERT INTO webhook_seen (id, body_sha256, seen_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT(id) DO UPDATE SET body_sha256 = excluded.body_sha256, seen_ms = excluded.seen_ms",
    )?;
    for r in records {
        ins.execute(rusqlite::params![&*r.id, &r.digest[..], r.seen_ms])?;
    }
    tx.prepare_cached("DELETE FROM webhook_seen WHERE seen_ms <= ?1")?
        .execute([cutoff])?;
    Ok(())
}

#[cfg(test)]
mod tests;
