//! The audit store in SQLite: an append-only, hash-chained table.
//!
//! Each row keeps the event's canonical JSON (`body`, exactly what its hash
//! covers) and the hash; `id`, `ts_ms`, `type` are copies for indexes, and
//! verification checks they agree with the body. Appends read the chain head
//! inside a `BEGIN IMMEDIATE` transaction, so two processes (the server and a
//! `warden keys rotate`) never fork the chain. Triggers refuse updates, and
//! deletes of anything not behind the retention anchor — a guard against bugs,
//! not against someone who can edit the file (verification catches that).

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::chain::{self, GENESIS};
use super::{ChainBreak, StoredEvent};
use crate::store::{Sqlite, StoreError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ts_ms INTEGER NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events (ts_ms);
CREATE INDEX IF NOT EXISTS audit_events_type ON audit_events (type, seq);
CREATE TABLE IF NOT EXISTS audit_anchor (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    purged INTEGER NOT NULL,
    before_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
WHEN OLD.seq > coalesce((SELECT seq FROM audit_anchor WHERE one = 1), 0)
BEGIN SELECT RAISE(ABORT, 'audit_events: only entries behind the retention anchor may be purged'); END;
";

/// Creates the audit tables (idempotent).
pub fn migrate(db: &Sqlite) -> Result<(), StoreError> {
    db.migrate(SCHEMA)
}

/// The outcome of a successful [`verify_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Hash of the last entry (the anchor's, or [`GENESIS`], when empty).
    pub head: String,
    /// Entries purged by retention before the first one kept.
    pub purged: u64,
}

struct Row {
    seq: i64,
    id: String,
    ts_ms: i64,
    kind: String,
    body: String,
    hash: String,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: r.get(0)?,
        id: r.get(1)?,
        ts_ms: r.get(2)?,
        kind: r.get(3)?,
        body: r.get(4)?,
        hash: r.get(5)?,
    })
}

fn head(conn: &Connection) -> rusqlite::Result<String> {
    let last: Option<String> = conn
        .query_row(
            "SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match last {
        Some(h) => Ok(h),
        None => Ok(anchor(conn)?.map_or_else(|| GENESIS.to_owned(), |a| a.1)),
    }
}

/// `(seq, hash, purged)` of the retention anchor, if any.
fn anchor(conn: &Connection) -> rusqlite::Result<Option<(i64, String, i64)>> {
    conn.query_row(
        "SELECT seq, hash, purged FROM audit_anchor WHERE one = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
}

/// Chains `event` onto the head and inserts it, atomically across processes.
/// `event.prev_hash` and `event.hash` are set here.
pub fn append(db: &Sqlite, mut event: StoredEvent, ts_ms: i64) -> Result<StoredEvent, StoreError> {
    db.with(|conn| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        event.prev_hash = head(&tx)?;
        chain::seal(&mut event);
        let body = chain::hashed_body(&event);
        tx.execute(
            "INSERT INTO audit_events (id, ts_ms, type, body, hash) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![event.id, ts_ms, event.event.kind.as_str(), body, event.hash],
        )?;
        tx.commit()?;
        Ok(event)
    })
}

fn check_row(row: &Row, expected_prev: &str) -> Result<StoredEvent, ChainBreak> {
    let altered = || ChainBreak::Altered {
        seq: row.seq,
        id: row.id.clone(),
    };
    // The hash covers the stored text itself: no re-serialisation, so no
    // float-formatting round trip can make an intact entry look altered.
    if chain::sha256_hex(&row.body) != row.hash {
        return Err(altered());
    }
    let mut event: StoredEvent = serde_json::from_str(&row.body).map_err(|_| altered())?;
    event.hash = row.hash.clone();
    let consistent = event.id == row.id
        && event.event.kind.as_str() == row.kind
        && crate::clock::parse_rfc3339_ms(&event.timestamp) == Some(row.ts_ms);
    if !consistent {
        return Err(altered());
    }
    if event.prev_hash != expected_prev {
        return Err(ChainBreak::Unlinked {
            seq: row.seq,
            id: row.id.clone(),
        });
    }
    Ok(event)
}

/// Walks the whole chain from the anchor (or genesis); stops at the first
/// altered, inserted or deleted entry and names it.
pub fn verify_chain(db: &Sqlite) -> Result<VerifyReport, ChainBreak> {
    db.with(|conn| {
        let tx = conn.transaction()?;
        let (mut expected, purged) = match anchor(&tx)? {
            Some((_, hash, purged)) => (hash, purged),
            None => (GENESIS.to_owned(), 0),
        };
        let mut stmt =
            tx.prepare("SELECT seq, id, ts_ms, type, body, hash FROM audit_events ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut entries = 0u64;
        while let Some(r) = rows.next()? {
            let row = read_row(r)?;
            match check_row(&row, &expected) {
                Ok(ev) => expected = ev.hash,
                Err(brk) => return Ok(Err(brk)),
            }
            entries += 1;
        }
        Ok(Ok(VerifyReport {
            entries,
            head: expected,
            purged: u64::try_from(purged).unwrap_or(0),
        }))
    })
    .map_err(ChainBreak::Store)?
}

/// Verifies the newest `n` entries (their seals and links): the cheap check of the health endpoint.
pub fn verify_head(db: &Sqlite, n: u32) -> Result<u64, ChainBreak> {
    db.with(|conn| {
        let mut stmt = conn.prepare(
            "SELECT seq, id, ts_ms, type, body, hash FROM audit_events ORDER BY seq DESC LIMIT ?1",
        )?;
        let mut rows: Vec<Row> = stmt
            .query_map([i64::from(n) + 1], read_row)?
            .collect::<Result<_, _>>()?;
        rows.reverse();
        let mut expected = if rows.len() > n as usize {
            rows.remove(0).hash
        } else {
            anchor(conn)?.map_or_else(|| GENESIS.to_owned(), |a| a.1)
        };
        for row in &rows {
            match check_row(row, &expected) {
                Ok(ev) => expected = ev.hash,
                Err(brk) => return Ok(Err(brk)),
            }
        }
        Ok(Ok(rows.len() as u64))
    })
    .map_err(ChainBreak::Store)?
}

/// Deletes, in transactions of at most `batch` rows, the oldest entries with
/// `ts_ms < before_ms` — only a prefix of the chain, so the rest stays linked —
/// and moves the anchor to the last one deleted. Returns how many were purged.
pub fn purge(db: &Sqlite, before_ms: i64, batch: u32) -> Result<u64, StoreError> {
    let mut total = 0u64;
    loop {
        let n = db.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows: Vec<(i64, i64, String)> = {
                let mut stmt = tx.prepare("SELECT seq, ts_ms, hash FROM audit_events ORDER BY seq LIMIT ?1")?;
                stmt.query_map([i64::from(batch)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?
            };
            let prefix: Vec<_> = rows.into_iter().take_while(|(_, ts, _)| *ts < before_ms).collect();
            let Some((last_seq, _, last_hash)) = prefix.last() else {
                return Ok(0u64);
            };
            let n = prefix.len() as i64;
            tx.execute(
                "INSERT INTO audit_anchor (one, seq, hash, purged, before_ms) VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (one) DO UPDATE SET seq = ?1, hash = ?2, purged = purged + ?3, before_ms = ?4",
                params![last_seq, last_hash, n, before_ms],
            )?;
            tx.execute("DELETE FROM audit_events WHERE seq <= ?1", [last_seq])?;
            tx.commit()?;
            Ok(n as u64)
        })?;
        total += n;
        if n < u64::from(batch) {
            return Ok(total);
        }
    }
}

/// A value from the audit settings table.
pub fn setting(db: &Sqlite, name: &str) -> Result<Option<String>, StoreError> {
    db.with(|c| {
        c.query_row(
            "SELECT value FROM audit_settings WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
    })
}

/// Stores `value` under `name` unless one is there already; returns the value in force.
pub fn setting_or_insert(db: &Sqlite, name: &str, value: &str) -> Result<String, StoreError> {
    db.with(|c| {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT OR IGNORE INTO audit_settings (name, value) VALUES (?1, ?2)",
            [name, value],
        )?;
        let v: String = tx.query_row(
            "SELECT value FROM audit_settings WHERE name = ?1",
            [name],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(v)
    })
}

/// Parses stored bodies into events (rows from the query functions).
pub(super) fn parse_bodies(bodies: Vec<(i64, String, String)>) -> Vec<(i64, StoredEvent)> {
    bodies
        .into_iter()
        .filter_map(|(seq, body, hash)| {
            let mut ev: StoredEvent = serde_json::from_str(&body).ok()?;
            ev.hash = hash;
            Some((seq, ev))
        })
        .collect()
}
