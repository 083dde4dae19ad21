//! The journal's writer thread: group commit, then the frames handed to the
//! hub and the callers answered; personal-data work between groups.

use std::sync::mpsc;
use std::sync::{Arc, Weak};

use rusqlite::{Transaction, params};
use tokio::sync::oneshot;

use super::tables::{load_rooms, seq_param, write_dirty_rooms};
use super::{JournalError, Maintenance, Msg, Opened};
use crate::event::Event;
use crate::hub::Shared;
use crate::hub::frame::{self, Frame};
use crate::hub::snapshot::Rooms;
use crate::webhook::ReplayStore;

/// Most events in one transaction.
const MAX_GROUP: usize = 4096;

pub(super) struct Writer {
    pub(super) opened: Opened,
    pub(super) shared: Weak<Shared>,
    pub(super) epoch: String,
    /// Last seq written.
    pub(super) head: u64,
    /// The room state as of `head`, tracking which rooms changed.
    pub(super) rooms: Rooms,
}

struct Pending {
    seq: u64,
    frame: Frame,
    event: Event,
    done: oneshot::Sender<Result<u64, Arc<JournalError>>>,
}

impl Writer {
    pub(super) fn run(mut self, rx: &mpsc::Receiver<Msg>) {
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
        let n = crate::hub::erase::expire_history_rows(&tx, before_ms).map_err(err)?;
        tx.commit().map_err(err)?;
        if let Some(shared) = self.shared.upgrade() {
            shared
                .history
                .expire(|b| crate::hub::erase::expired(b, before_ms));
        }
        Ok(n)
    }

    /// Rewrites the subject's history rows and room rows in one transaction,
    /// then patches the hub's model and ring under their locks.
    fn erase(&mut self, needles: &[String]) -> Result<crate::hub::erase::HubErasure, JournalError> {
        let path = self.opened.path.clone();
        let err = |source| JournalError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.opened.conn.transaction().map_err(err)?;
        let history_frames = crate::hub::erase::erase_history_rows(&tx, needles).map_err(err)?;
        let rooms = self.rooms.erase(needles);
        let written = write_dirty_rooms(&tx, &mut self.rooms).and_then(|_| tx.commit());
        if let Err(e) = written {
            // The copy changed but the disk did not: read it back.
            self.reload_rooms();
            return Err(err(e));
        }
        if let Some(shared) = self.shared.upgrade() {
            crate::hub::erase_in_memory(&shared, needles);
        }
        Ok(crate::hub::erase::HubErasure {
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
        // The callers first: each is one webhook waiting to answer LiveKit,
        // queued ahead of the streams (at 10 000 subscribers the answer
        // waited behind the whole fan-out). Both are after the commit.
        for (done, seq) in answers {
            let _ = done.send(Ok(seq));
        }
        for w in wakers {
            w.wake();
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
