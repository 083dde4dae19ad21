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
use serde_json::Value;

use super::StoredEvent;
use super::chain::{self, GENESIS, Personal};
use crate::store::{Sqlite, StoreError};

pub use self::verify::{VerifyReport, verify_chain, verify_head};

mod verify;

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
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
WHEN OLD.seq > coalesce((SELECT seq FROM audit_anchor WHERE one = 1), 0)
BEGIN SELECT RAISE(ABORT, 'audit_events: only entries behind the retention anchor may be purged'); END;
";

/// Erasure is the one update allowed: it may only clear the personal fields
/// (and, for a version-1 entry, redact its body), never touch id, time, type or hash.
const UPDATE_GUARD: &str = "
DROP TRIGGER IF EXISTS audit_events_no_update;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
WHEN NOT (NEW.seq = OLD.seq AND NEW.id = OLD.id AND NEW.ts_ms = OLD.ts_ms AND NEW.type = OLD.type
          AND NEW.hash = OLD.hash AND NEW.personal IS NULL AND NEW.erased = 1)
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only (only personal fields may be erased)'); END;
";

/// Creates the audit tables (idempotent) and migrates a chain written before
/// personal-data erasure: its entries (version 1) keep verifying as they are;
/// new entries are version 2 (see [`chain`]).
pub fn migrate(db: &Sqlite) -> Result<(), StoreError> {
    db.migrate(SCHEMA)?;
    db.with(|c| {
        let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let has: bool = tx.query_row(
            "SELECT count(*) FROM pragma_table_info('audit_events') WHERE name = 'personal'",
            [],
            |r| r.get::<_, i64>(0).map(|n| n > 0),
        )?;
        if !has {
            tx.execute_batch(
                "ALTER TABLE audit_events ADD COLUMN personal TEXT;
                 ALTER TABLE audit_events ADD COLUMN erased INTEGER NOT NULL DEFAULT 0;",
            )?;
        }
        tx.execute_batch(UPDATE_GUARD)?;
        tx.commit()
    })
}

struct Row {
    seq: i64,
    id: String,
    ts_ms: i64,
    kind: String,
    body: String,
    hash: String,
    personal: Option<String>,
    erased: bool,
}

const ROW_COLUMNS: &str = "seq, id, ts_ms, type, body, hash, personal, erased";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: r.get(0)?,
        id: r.get(1)?,
        ts_ms: r.get(2)?,
        kind: r.get(3)?,
        body: r.get(4)?,
        hash: r.get(5)?,
        personal: r.get(6)?,
        erased: r.get::<_, i64>(7)? != 0,
    })
}

/// The event a stored row holds: its body with, for a version-2 entry, the
/// personal fields put back (absent once erased).
fn event_of(body: &str, hash: &str, personal: Option<&str>) -> Option<StoredEvent> {
    let mut ev: StoredEvent = serde_json::from_str(body).ok()?;
    ev.hash = hash.to_owned();
    if let Some(p) = personal.and_then(|p| serde_json::from_str::<Personal>(p).ok()) {
        ev.event.identity = p.identity;
        ev.event.source_ip = p.source_ip;
    }
    Some(ev)
}

fn is_v2(body: &Value) -> bool {
    body.get("v").and_then(Value::as_u64) == Some(chain::V2)
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
        insert(&tx, &mut event, ts_ms)?;
        tx.commit()?;
        Ok(event)
    })
}

/// Chains `event` onto the head inside `tx` as a version-2 entry.
fn insert(tx: &Connection, event: &mut StoredEvent, ts_ms: i64) -> rusqlite::Result<()> {
    event.prev_hash = head(tx)?;
    let (body, personal) = chain::seal_v2(event);
    let personal = personal.map(|p| serde_json::to_string(&p).expect("plain fields serialise"));
    tx.execute(
        "INSERT INTO audit_events (id, ts_ms, type, body, hash, personal) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![event.id, ts_ms, event.event.kind.as_str(), body, event.hash, personal],
    )?;
    Ok(())
}

/// True when `ev` is about one of `needles` (a plain identity or its hash).
fn about(ev: &StoredEvent, needles: &[String]) -> bool {
    ev.event
        .identity
        .as_deref()
        .is_some_and(|i| needles.iter().any(|n| n == i))
}

/// Rows that may hold one of `needles` in their personal fields (then checked exactly).
fn candidates(conn: &Connection, needles: &[String]) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ROW_COLUMNS} FROM audit_events WHERE erased = 0 ORDER BY seq"
    ))?;
    let rows = stmt.query_map([], read_row)?;
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        let text = row.personal.as_deref().unwrap_or(&row.body);
        if needles.iter().any(|n| text.contains(n.as_str())) {
            out.push(row);
        }
    }
    Ok(out)
}

/// Every stored event about one of `needles` (oldest first).
pub fn subject_events(db: &Sqlite, needles: &[String]) -> Result<Vec<StoredEvent>, StoreError> {
    db.with(|conn| {
        Ok(candidates(conn, needles)?
            .into_iter()
            .filter_map(|r| event_of(&r.body, &r.hash, r.personal.as_deref()))
            .filter(|ev| about(ev, needles))
            .collect())
    })
}

/// In one transaction: erases the personal fields of every entry about one of
/// `needles` and appends `event` (a `SUBJECT_ERASED`) listing the erased
/// entries' ids in `details.entries`, so verification can tell an erasure from
/// tampering. Nothing is erased unless the event is stored (fail closed).
pub fn erase_subject(
    db: &Sqlite,
    needles: &[String],
    mut event: StoredEvent,
    ts_ms: i64,
) -> Result<(StoredEvent, Vec<String>), StoreError> {
    db.with(|conn| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut ids = Vec::new();
        for row in candidates(&tx, needles)? {
            let Some(ev) = event_of(&row.body, &row.hash, row.personal.as_deref()) else {
                continue;
            };
            if !about(&ev, needles) {
                continue;
            }
            let mut body: Value = serde_json::from_str(&row.body)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            if !is_v2(&body)
                && let Value::Object(map) = &mut body
            {
                // Version 1: the fields are in the hashed body itself; the
                // entry is then verified by its link and by this erasure's record.
                for f in chain::PERSONAL_FIELDS {
                    map.insert(f.to_owned(), Value::Null);
                }
            }
            tx.execute(
                "UPDATE audit_events SET personal = NULL, erased = 1, body = ?1 WHERE seq = ?2",
                params![chain::canonical(&body), row.seq],
            )?;
            ids.push(row.id);
        }
        event.event.details.insert(
            "entries".into(),
            Value::Array(ids.iter().cloned().map(Value::String).collect()),
        );
        insert(&tx, &mut event, ts_ms)?;
        tx.commit()?;
        Ok((event, ids))
    })
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

/// Parses stored rows `(seq, body, hash, personal)` into events (rows from the query functions).
pub(super) fn parse_bodies(
    bodies: Vec<(i64, String, String, Option<String>)>,
) -> Vec<(i64, StoredEvent)> {
    bodies
        .into_iter()
        .filter_map(|(seq, body, hash, personal)| {
            Some((seq, event_of(&body, &hash, personal.as_deref())?))
        })
        .collect()
}
