//! The hub's journal on the embedded database: the history and the room
//! state survive a restart and a crash (SPEC "SSE stream", last paragraph).
//!
//! Rule: an event is on disk — its frame in `hub_history`, the rooms it
//! changed in `hub_rooms`, its id in `webhook_seen` — before any subscriber
//! sees it and before the caller (the webhook route, which then answers
//! LiveKit's 200) is told. So nothing a client or LiveKit was shown can be
//! lost by `kill -9`, and no id can name two events across a crash.
//!
//! One writer thread owns its own connection (`synchronous=FULL`: every
//! commit is fsynced) and does group commit: it takes whatever queued while
//! the previous transaction was being written, assigns the seqs, builds each
//! frame once, applies the events to its own copy of the room state (so it
//! knows which rows to rewrite: a changed room's own row, small, and one row
//! per participant that changed in it), writes one transaction, and only then
//! hands the frames to the hub and answers the callers. Under load one fsync
//! covers many webhooks; on an idle server an event costs one fsync (see
//! BENCH.md for the figures on this machine).
//!
//! Bounded on disk: `hub_history` keeps the newest `capacity` frames (the
//! ring's size), `hub_rooms` and `hub_participants` only live rooms and the
//! participants in them (a finished room's rows go with it), `webhook_seen` only ids inside the replay window.
//!
//! Between two groups the writer also runs personal-data work: a subject's
//! erasure (its frames rewritten in place, its sessions removed from the
//! room rows, then the ring and the model patched; see `erase`) and the
//! retention sweep (the history older than `realtime.history_retention_hours`
//! deleted, a prefix, and dropped from the ring).
//!
//! The epoch is stored in `hub_meta` and kept for the life of the database,
//! so ids from before a restart still resume; only a new data directory (a
//! new database) starts a new epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::oneshot;

use super::Shared;
use super::frame::{self, Frame};
use super::snapshot::{Changed, Room, Rooms};
use crate::event::Event;
use crate::webhook::ReplayStore;

pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS hub_meta (
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

/// Most events in one transaction.
const MAX_GROUP: usize = 4096;

/// Why an event could not be made durable.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The database refused a statement (disk full, read-only, corrupt…).
    #[error("history database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored row could not be read back.
    #[error("history database {path}: unreadable room state: {source}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The writer thread could not be started.
    #[error("history writer thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The journal has stopped (the server is shutting down).
    #[error("the history writer has stopped")]
    Stopped,
}

/// What the database held at start.
pub(super) struct Restored {
    pub(super) epoch: String,
    pub(super) head: u64,
    pub(super) frames: Vec<Frame>,
    pub(super) rooms: Vec<Room>,
}

// One message per event, moved once into the channel: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Msg {
    Publish {
        event: Event,
        now_ms: i64,
        done: oneshot::Sender<Result<u64, Arc<JournalError>>>,
    },
    Flush(mpsc::SyncSender<()>),
    /// Erase a subject (see `erase`): runs between groups, after every event queued before it.
    Erase {
        needles: Vec<String>,
        done: oneshot::Sender<Result<super::erase::HubErasure, Arc<JournalError>>>,
    },
    /// Retention: drop the history published before `before_ms`.
    Expire {
        before_ms: i64,
        done: oneshot::Sender<Result<u64, Arc<JournalError>>>,
    },
}

type EraseResult = Result<super::erase::HubErasure, Arc<JournalError>>;

/// Work the writer does between groups.
enum Maintenance {
    Erase(Vec<String>, oneshot::Sender<EraseResult>),
    Expire(i64, oneshot::Sender<Result<u64, Arc<JournalError>>>),
}

/// The sending side, held by the hub.
pub(super) struct Journal {
    tx: mpsc::Sender<Msg>,
}

/// The open database, before the writer thread starts.
pub(super) struct Opened {
    conn: Connection,
    path: PathBuf,
    capacity: usize,
    replay: Option<ReplayStore>,
}

impl Opened {
    /// Opens `path` (creating it and its tables), reads what survives.
    pub(super) fn open(
        path: &Path,
        capacity: usize,
        replay: Option<ReplayStore>,
    ) -> Result<(Self, Restored), JournalError> {
        let err = |source| JournalError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The shared store made the directory already; this only covers a
            // journal opened on its own (tests).
            let _ = crate::store::create_private_dir(dir);
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; PRAGMA secure_delete=OFF;",
        )
        .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let restored = load(&conn, capacity).map_err(|e| match e {
            Load::Sqlite(source) => err(source),
            Load::Json(source) => JournalError::Corrupt {
                path: path.to_path_buf(),
                source,
            },
        })?;
        Ok((
            Self {
                conn,
                path: path.to_path_buf(),
                capacity,
                replay,
            },
            restored,
        ))
    }

    /// Starts the writer thread for `shared`, whose state is `rooms` at `head`.
    pub(super) fn start(
        self,
        shared: Weak<Shared>,
        epoch: String,
        head: u64,
        rooms: Rooms,
    ) -> Result<Journal, JournalError> {
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            opened: self,
            shared,
            epoch,
            head,
            rooms,
        };
        std::thread::Builder::new()
            .name("hub-journal".into())
            .spawn(move || writer.run(&rx))
            .map_err(JournalError::Thread)?;
        Ok(Journal { tx })
    }
}

impl Journal {
    /// Queues `event`; the receiver answers with its seq once it is on disk
    /// and visible to subscribers.
    pub(super) fn submit(
        &self,
        event: Event,
        now_ms: i64,
    ) -> oneshot::Receiver<Result<u64, Arc<JournalError>>> {
        let (done, rx) = oneshot::channel();
        // A send fails only once the writer is gone; the dropped `done` then
        // answers the caller with `Stopped`.
        let _ = self.tx.send(Msg::Publish {
            event,
            now_ms,
            done,
        });
        rx
    }

    /// Queues the erasure of a subject; it runs after every event queued before it.
    pub(super) fn erase(
        &self,
        needles: Vec<String>,
    ) -> oneshot::Receiver<Result<super::erase::HubErasure, Arc<JournalError>>> {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Erase { needles, done });
        rx
    }

    /// Queues the retention sweep of the history published before `before_ms`.
    pub(super) fn expire(
        &self,
        before_ms: i64,
    ) -> oneshot::Receiver<Result<u64, Arc<JournalError>>> {
        let (done, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Expire { before_ms, done });
        rx
    }

    /// Waits (bounded) until everything queued so far is written.
    pub(super) fn flush(&self) {
        let (done, rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(done)).is_ok() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
        }
    }
}

struct Writer {
    opened: Opened,
    shared: Weak<Shared>,
    epoch: String,
    /// Last seq written.
    head: u64,
    /// The room state as of `head`, tracking which rooms changed.
    rooms: Rooms,
}

struct Pending {
    seq: u64,
    frame: Frame,
    event: Event,
    done: oneshot::Sender<Result<u64, Arc<JournalError>>>,
}

impl Writer {
    fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        while let Ok(first) = rx.recv() {
            let mut group = Vec::new();
            let mut flushes = Vec::new();
            let mut erases = Vec::new();
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Publish {
                        event,
                        now_ms,
                        done,
                    } => {
                        let seq = self.head + 1 + group.len() as u64;
                        let frame = frame::event_frame(&self.epoch, seq, &event, now_ms);
                        self.rooms.apply(&event);
                        group.push(Pending {
                            seq,
                            frame,
                            event,
                            done,
                        });
                    }
                    Msg::Flush(ack) => flushes.push(ack),
                    Msg::Erase { needles, done } => erases.push(Maintenance::Erase(needles, done)),
                    Msg::Expire { before_ms, done } => {
                        erases.push(Maintenance::Expire(before_ms, done));
                    }
                }
                // An erasure ends the group: it must see every event queued before it.
                if group.len() < MAX_GROUP && erases.is_empty() {
                    next = rx.try_recv().ok();
                }
            }
            // After the events: every id checked before its event was queued is in here.
            let seen = self
                .opened
                .replay
                .as_ref()
                .map(ReplayStore::take_pending)
                .unwrap_or_default();
            if group.is_empty() && seen.is_empty() {
                for f in flushes {
                    let _ = f.send(());
                }
                self.run_erases(erases);
                continue;
            }
            let result = self.write(&group, &seen);
            match result {
                Ok(()) => {
                    if let Some(last) = group.last() {
                        self.head = last.seq;
                    }
                    self.publish(group);
                }
                Err(e) => {
                    tracing::error!(error = %e, events = group.len(), "events not stored; LiveKit will retry them");
                    // The copy applied events that are not on disk: read it back.
                    self.reload_rooms();
                    if let Some(replay) = &self.opened.replay {
                        replay.put_back(seen);
                    }
                    let e = Arc::new(e);
                    for p in group {
                        let _ = p.done.send(Err(Arc::clone(&e)));
                    }
                }
            }
            for f in flushes {
                let _ = f.send(());
            }
            self.run_erases(erases);
        }
    }

    fn run_erases(&mut self, erases: Vec<Maintenance>) {
        if erases.is_empty() {
            return;
        }
        // Personal data deleted on purpose (an erasure, the retention sweep)
        // is zeroed where it lay. The hot path's trim of the oldest frames
        // runs without it: its pages are reused by the next frames at once,
        // and zeroing them on every commit cost ~15 % of ingest (issue #18 note).
        let _ = self.opened.conn.execute_batch("PRAGMA secure_delete=ON;");
        for m in erases {
            match m {
                Maintenance::Erase(needles, done) => {
                    let _ = done.send(self.erase(&needles).map_err(Arc::new));
                }
                Maintenance::Expire(before_ms, done) => {
                    let _ = done.send(self.expire(before_ms).map_err(Arc::new));
                }
            }
        }
        let _ = self.opened.conn.execute_batch("PRAGMA secure_delete=OFF;");
    }

    /// Deletes the history rows published before `before_ms`, then drops
    /// them from the ring.
    fn expire(&mut self, before_ms: i64) -> Result<u64, JournalError> {
        let path = self.opened.path.clone();
        let err = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.opened.conn.transaction().map_err(err)?;
        let n = super::erase::expire_history_rows(&tx, before_ms).map_err(err)?;
        tx.commit().map_err(err)?;
        if let Some(shared) = self.shared.upgrade() {
            shared
                .history
                .expire(|b| super::erase::expired(b, before_ms));
        }
        Ok(n)
    }

    /// Rewrites the subject's history rows and room rows in one transaction,
    /// then patches the hub's model and ring under their locks.
    fn erase(&mut self, needles: &[String]) -> Result<super::erase::HubErasure, JournalError> {
        let path = self.opened.path.clone();
        let err = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.opened.conn.transaction().map_err(err)?;
        let history_frames = super::erase::erase_history_rows(&tx, needles).map_err(err)?;
        let rooms = self.rooms.erase(needles);
        let written = write_dirty_rooms(&tx, &mut self.rooms).and_then(|_| tx.commit());
        if let Err(e) = written {
            // The copy changed but the disk did not: read it back.
            self.reload_rooms();
            return Err(err(e));
        }
        if let Some(shared) = self.shared.upgrade() {
            super::erase_in_memory(&shared, needles);
        }
        Ok(super::erase::HubErasure {
            history_frames,
            rooms,
        })
    }

    fn write(
        &mut self,
        group: &[Pending],
        seen: &[crate::webhook::replay::SeenRecord],
    ) -> Result<(), JournalError> {
        let path = self.opened.path.clone();
        let err = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let head = group.last().map_or(self.head, |p| p.seq);
        let capacity = self.opened.capacity as u64;
        let tx = self.opened.conn.transaction().map_err(err)?;
        write_group(&tx, group, head, capacity).map_err(err)?;
        write_dirty_rooms(&tx, &mut self.rooms).map_err(err)?;
        if !seen.is_empty() {
            crate::webhook::replay::write_seen(&tx, seen).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Makes a written group visible: the hub's model and ring, then the callers.
    fn publish(&self, group: Vec<Pending>) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut wakers = Vec::with_capacity(group.len());
        let mut answers = Vec::with_capacity(group.len());
        {
            let mut model = shared.lock_model();
            for p in group {
                model.rooms.apply(&p.event);
                model.head = p.seq;
                wakers.push(shared.history.push_at(p.seq, p.frame));
                answers.push((p.done, p.seq));
            }
            model.cached_snapshot = None;
        }
        let (n, relaxed) = (answers.len() as u64, std::sync::atomic::Ordering::Relaxed);
        shared.stats.published.fetch_add(n, relaxed);
        shared.stats.history_commits.fetch_add(1, relaxed);
        shared.stats.history_stored.fetch_add(n, relaxed);
        for w in wakers {
            w.wake();
        }
        for (done, seq) in answers {
            let _ = done.send(Ok(seq));
        }
    }

    fn reload_rooms(&mut self) {
        match load_rooms(&self.opened.conn) {
            Ok(rooms) => self.rooms = Rooms::restore(rooms, true),
            Err(_) => {
                // Unreadable now too: keep the copy (at worst it rewrites rooms
                // the next group touches with events LiveKit will resend).
                let _ = self.rooms.take_dirty();
            }
        }
    }
}

fn write_group(
    tx: &Transaction<'_>,
    group: &[Pending],
    head: u64,
    capacity: u64,
) -> rusqlite::Result<()> {
    let mut ins =
        tx.prepare_cached("INSERT INTO hub_history (seq, room, frame) VALUES (?1, ?2, ?3)")?;
    for p in group {
        ins.execute(params![
            seq_param(p.seq),
            p.frame.room.as_deref(),
            &p.frame.bytes[..]
        ])?;
    }
    tx.prepare_cached(
        "INSERT INTO hub_meta (key, value) VALUES ('head', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute([head.to_string()])?;
    if head > capacity {
        tx.prepare_cached("DELETE FROM hub_history WHERE seq <= ?1")?
            .execute([seq_param(head - capacity)])?;
    }
    Ok(())
}

/// Writes the rooms `rooms` marks dirty to `hub_rooms` and the participants
/// changed in them to `hub_participants` (a gone room's rows are deleted):
/// the one place room rows are written, for publishes and erasures.
pub(super) fn write_dirty_rooms(tx: &Connection, rooms: &mut Rooms) -> rusqlite::Result<u64> {
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
pub(super) fn read_rooms(conn: &Connection, strict: bool) -> Result<Vec<Room>, Load> {
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
fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub(super) enum Load {
    Sqlite(rusqlite::Error),
    Json(serde_json::Error),
}

impl From<rusqlite::Error> for Load {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

fn load(conn: &Connection, capacity: usize) -> Result<Restored, Load> {
    let epoch: Option<String> = conn
        .query_row("SELECT value FROM hub_meta WHERE key = 'epoch'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let epoch = match epoch.filter(|e| valid_epoch(e)) {
        Some(e) => e,
        None => {
            let e = super::new_epoch();
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

fn load_rooms(conn: &Connection) -> Result<Vec<Room>, Load> {
    read_rooms(conn, true)
}

/// An epoch as ids carry it: non-empty lowercase hex.
fn valid_epoch(e: &str) -> bool {
    !e.is_empty()
        && e.len() <= 16
        && e.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
