//! The journal's tables: the schema, the room rows written and read, and
//! what is loaded at start.

use std::collections::BTreeMap;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use super::Restored;
use crate::hub::frame::Frame;
use crate::hub::snapshot::{Changed, Room, Rooms};

pub(in crate::hub) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS hub_meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_history (
    seq INTEGER PRIMARY KEY NOT NULL,
    room TEXT,
    frame BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_rooms (
    sid TEXT PRIMARY KEY NOT NULL,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hub_participants (
    room TEXT NOT NULL,
    sid TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (room, sid)
) WITHOUT ROWID;";

/// Writes the rooms `rooms` marks dirty to `hub_rooms` and the participants
/// changed in them to `hub_participants` (a gone room's rows are deleted):
/// the one place room rows are written, for publishes and erasures.
pub(in crate::hub) fn write_dirty_rooms(
    tx: &Connection,
    rooms: &mut Rooms,
) -> rusqlite::Result<u64> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO hub_rooms (sid, state) VALUES (?1, ?2)
         ON CONFLICT(sid) DO UPDATE SET state = excluded.state",
    )?;
    let mut delete = tx.prepare_cached("DELETE FROM hub_rooms WHERE sid = ?1")?;
    let mut upsert_p = tx.prepare_cached(
        "INSERT INTO hub_participants (room, sid, state) VALUES (?1, ?2, ?3)
         ON CONFLICT(room, sid) DO UPDATE SET state = excluded.state",
    )?;
    let mut delete_p =
        tx.prepare_cached("DELETE FROM hub_participants WHERE room = ?1 AND sid = ?2")?;
    let mut delete_all_p = tx.prepare_cached("DELETE FROM hub_participants WHERE room = ?1")?;
    let mut n = 0;
    for dirty in rooms.take_dirty() {
        let Some(room) = dirty.room else {
            delete.execute([&dirty.sid])?;
            delete_all_p.execute([&dirty.sid])?;
            n += 1;
            continue;
        };
        let state =
            serde_json::to_string(room).expect("plain derived structs serialise without error");
        upsert.execute(params![dirty.sid, state])?;
        match dirty.participants {
            Changed::All => {
                delete_all_p.execute([&dirty.sid])?;
                for sid in room.participant_sids() {
                    if let Some(row) = room.participant_row(sid) {
                        upsert_p.execute(params![dirty.sid, sid, row])?;
                    }
                }
            }
            Changed::Some(sids) => {
                for sid in sids {
                    match room.participant_row(&sid) {
                        Some(row) => upsert_p.execute(params![dirty.sid, sid, row])?,
                        None => delete_p.execute(params![dirty.sid, sid])?,
                    };
                }
            }
        }
        n += 1;
    }
    Ok(n)
}

/// Every room with its participants, from `hub_rooms` and `hub_participants`
/// (the latter absent in a database no server of this version has opened).
/// `strict`: an unreadable row is an error (the server refuses to start on
/// it); otherwise it is skipped and left as it is (offline export and erasure).
pub(in crate::hub) fn read_rooms(conn: &Connection, strict: bool) -> Result<Vec<Room>, Load> {
    let mut rooms = BTreeMap::new();
    let mut stmt = conn.prepare("SELECT sid, state FROM hub_rooms ORDER BY sid")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    for row in rows {
        let (sid, state) = row?;
        match serde_json::from_str::<Room>(&state) {
            Ok(mut room) => {
                room.note_legacy_row();
                rooms.insert(sid, room);
            }
            Err(e) if strict => return Err(Load::Json(e)),
            Err(_) => {}
        }
    }
    let split: bool = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'hub_participants'",
        [],
        |r| r.get::<_, i64>(0).map(|n| n == 1),
    )?;
    if split {
        let mut stmt = conn.prepare("SELECT room, state FROM hub_participants")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (sid, state) = row?;
            // A row of a room that is gone is left for the room's next delete.
            let Some(room) = rooms.get_mut(&sid) else {
                continue;
            };
            match room.restore_participant(&state) {
                Ok(()) => {}
                Err(e) if strict => return Err(Load::Json(e)),
                Err(_) => {}
            }
        }
    }
    debug_assert!(rooms.iter().all(|(sid, r)| sid == r.sid()));
    Ok(rooms.into_values().collect())
}

/// Seqs are stored as SQLite integers (i64); a seq past `i64::MAX` cannot be reached.
pub(super) fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub(in crate::hub) enum Load {
    Sqlite(rusqlite::Error),
    Json(serde_json::Error),
}

impl From<rusqlite::Error> for Load {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

pub(super) fn load(conn: &Connection, capacity: usize) -> Result<Restored, Load> {
    let epoch: Option<String> = conn
        .query_row("SELECT value FROM hub_meta WHERE key = 'epoch'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let epoch = match epoch.filter(|e| valid_epoch(e)) {
        Some(e) => e,
        None => {
            let e = crate::hub::new_epoch();
            // A new epoch means a new history: nothing older may resume into it.
            conn.execute_batch(
                "DELETE FROM hub_history; DELETE FROM hub_rooms; DELETE FROM hub_participants;",
            )?;
            conn.execute(
                "INSERT INTO hub_meta (key, value) VALUES ('epoch', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [&e],
            )?;
            conn.execute("DELETE FROM hub_meta WHERE key = 'head'", [])?;
            e
        }
    };
    let head: u64 = conn
        .query_row("SELECT value FROM hub_meta WHERE key = 'head'", [], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let floor = seq_param(head.saturating_sub(capacity as u64));
    let mut stmt = conn.prepare(
        "SELECT seq, room, frame FROM hub_history WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![floor, seq_param(head)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut frames: Vec<(u64, Frame)> = Vec::new();
    for row in rows {
        let (seq, room, bytes) = row?;
        let seq = u64::try_from(seq).unwrap_or(0);
        // Only the run of consecutive seqs that ends at the head can be resumed into.
        if frames.last().is_some_and(|(s, _)| *s + 1 != seq) {
            frames.clear();
        }
        frames.push((
            seq,
            Frame {
                room: room.map(Box::from),
                bytes: Bytes::from(bytes),
            },
        ));
    }
    if frames.last().is_some_and(|(s, _)| *s != head) {
        frames.clear();
    }
    Ok(Restored {
        epoch,
        head,
        frames: frames.into_iter().map(|(_, f)| f).collect(),
        rooms: load_rooms(conn)?,
    })
}

pub(super) fn load_rooms(conn: &Connection) -> Result<Vec<Room>, Load> {
    read_rooms(conn, true)
}

/// An epoch as ids carry it: non-empty lowercase hex.
fn valid_epoch(e: &str) -> bool {
    !e.is_empty()
        && e.len() <= 16
        && e.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
