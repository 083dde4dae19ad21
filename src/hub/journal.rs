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

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Weak};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::Shared;
use super::frame::Frame;
use super::snapshot::{Room, Rooms};
use crate::event::Event;
use crate::webhook::ReplayStore;

mod tables;
mod writer;

use tables::load;
pub(in crate::hub) use tables::{Load, SCHEMA, read_rooms, write_dirty_rooms};
use writer::Writer;

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
