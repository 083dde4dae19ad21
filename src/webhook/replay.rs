//! Seen webhook event ids: each id is processed once within the replay window.
//!
//! The in-memory map is the authority, so the hot path is one short mutex
//! section (a hash lookup and insert). Memory is bounded twice: entries older
//! than the window are evicted, and beyond `cap` the oldest go first. For each
//! id a truncated SHA-256 of the body is kept, to tell LiveKit's retry (same
//! bytes) from a replay with a different body.
//!
//! With SQLite, new ids are written behind by one writer thread in batched
//! transactions, and loaded at start, so a restart does not reopen the window.
//! The writer wakes on the first id of a batch, then lets ids gather for
//! [`LINGER`] before one transaction writes them all: while it lingers,
//! `check` only appends to a channel (no wake-up, no syscall), so under load
//! the request path never waits on, or pays for, SQLite. The cost is a
//! documented crash window: a crash (not a clean stop) loses the ids of at
//! most the last [`LINGER`] plus one write, so such an id could be broadcast
//! once more if LiveKit, or someone holding the captured request, delivers it
//! again after the restart. A clean shutdown calls [`ReplayStore::flush`],
//! which writes at once and loses nothing. The interface — [`ReplayStore::check`]
//! and [`ReplayStore::flush`] — is what a Redis backend (`SET NX` with a TTL)
//! would implement for several nodes.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::Sqlite;

/// Default bound on remembered ids (≈100 MB at the worst; far above real event rates).
pub const DEFAULT_CAP: usize = 1_000_000;

/// Bytes of the body digest kept per id.
const DIGEST_BYTES: usize = 16;

/// Ids written per SQLite transaction at most.
const BATCH: usize = 8192;

/// How long the writer lets ids gather after the first of a batch (the crash window, see above).
pub const LINGER: Duration = Duration::from_millis(10);

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
    /// The writer thread could not be started.
    #[error("replay store writer thread: {0}")]
    Thread(#[source] std::io::Error),
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

enum Write {
    Insert(Arc<str>, BodyDigest, i64, i64),
    Flush(SyncSender<()>),
}

/// Cheap `Clone` handle to the seen-id set.
#[derive(Clone)]
pub struct ReplayStore {
    memory: Arc<Mutex<Memory>>,
    cap: usize,
    writer: Option<Sender<Write>>,
    /// Dedupe happens elsewhere (the cluster's publish script): `check` always says new.
    deferred: bool,
}

impl std::fmt::Debug for ReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayStore")
            .field("cap", &self.cap)
            .field("persistent", &self.writer.is_some())
            .field("deferred", &self.deferred)
            .finish()
    }
}

impl ReplayStore {
    /// An in-memory store remembering at most `cap` ids (lost on restart).
    pub fn memory(cap: usize) -> Self {
        Self {
            memory: Arc::default(),
            cap: cap.max(1),
            writer: None,
            deferred: false,
        }
    }

    /// A store that remembers nothing: with the Redis backend the id is
    /// checked (`SET … NX PX window`) in the same atomic script that appends
    /// the event to the shared stream (see [`crate::cluster`]), so a delivery
    /// whose append failed is not remembered and LiveKit's retry — to any
    /// node — still goes through. [`ReplayStore::check`] always says `New`.
    pub fn deferred() -> Self {
        Self {
            deferred: true,
            ..Self::memory(1)
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
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("webhook-replay-writer".into())
            .spawn(move || writer(&db, &rx))
            .map_err(ReplayError::Thread)?;
        Ok(Self {
            memory: Arc::new(Mutex::new(memory)),
            cap,
            writer: Some(tx),
            deferred: false,
        })
    }

    /// Records `id` seen at `now_ms` with `body` digest, unless already seen within `window`.
    pub fn check(&self, id: &str, body: BodyDigest, now_ms: i64, window: Duration) -> Seen {
        if self.deferred {
            return Seen::New;
        }
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
        if let Some(tx) = &self.writer {
            // The writer only stops when every handle is gone; a send error cannot happen here.
            let _ = tx.send(Write::Insert(key, body, now_ms, cutoff));
        }
        Seen::New
    }

    /// Waits until every id checked so far is on disk (no-op in memory).
    pub fn flush(&self) {
        if let Some(tx) = &self.writer {
            let (done_tx, done_rx) = mpsc::sync_channel(1);
            if tx.send(Write::Flush(done_tx)).is_ok() {
                let _ = done_rx.recv_timeout(Duration::from_secs(10));
            }
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

/// The write-behind loop: batches inserts, prunes rows older than the window, acks flushes.
///
/// After the first message of a batch it sleeps [`LINGER`] (unless that
/// message is a flush): senders find no parked receiver meanwhile, so a send
/// is a lock-free push without a futex wake, and one transaction carries
/// every id of the interval instead of one or two.
fn writer(db: &Sqlite, rx: &Receiver<Write>) {
    while let Ok(first) = rx.recv() {
        if matches!(first, Write::Insert(..)) {
            std::thread::sleep(LINGER);
        }
        let mut batch = Vec::new();
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Write::Insert(id, digest, ms, cutoff) => batch.push((id, digest, ms, cutoff)),
                Write::Flush(ack) => acks.push(ack),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if let Err(e) = write_batch(db, &batch) {
            tracing::error!(error = %e, ids = batch.len(), "webhook replay store: write failed");
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

fn write_batch(
    db: &Sqlite,
    batch: &[(Arc<str>, BodyDigest, i64, i64)],
) -> Result<(), crate::store::StoreError> {
    let Some(cutoff) = batch.iter().map(|b| b.3).max() else {
        return Ok(());
    };
    db.with(|c| {
        let tx = c.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO webhook_seen (id, body_sha256, seen_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET body_sha256 = excluded.body_sha256, seen_ms = excluded.seen_ms",
            )?;
            for (id, digest, ms, _) in batch {
                ins.execute(rusqlite::params![&**id, &digest[..], ms])?;
            }
            tx.prepare_cached("DELETE FROM webhook_seen WHERE seen_ms <= ?1")?
                .execute([cutoff])?;
        }
        tx.commit()
    })
}

#[cfg(test)]
mod tests;
