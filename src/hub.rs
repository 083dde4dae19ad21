//! Real-time fan-out: the SSE event stream, its resume history and the room
//! snapshot (SPEC "SSE stream").
//!
//! Modelled on mini-redis `db.rs`: [`Hub`] is a cheap `Clone` handle over
//! `Arc<Shared>`, and the state sits behind `std::sync::Mutex`es because no
//! critical section awaits and all are short (a std mutex is cheaper than an
//! async one here).
//!
//! Invariants:
//! - An event is serialised once (`frame`); every subscriber gets the same
//!   `Bytes`. Publishing never waits for a subscriber.
//! - One bounded ring (`history`) is both the history for `Last-Event-ID`
//!   and the live queue. A subscriber is a cursor into it, so idle subscribers
//!   cost a few dozen bytes and a stalled one holds nothing; a subscriber that
//!   falls more than `client_queue_size` frames behind is sent `event: reset`
//!   and its stream ends — never a silent gap.
//! - Two locks, always taken in this order: `model` (seq counter, room
//!   snapshot; held by publishers and subscribers while they start) then
//!   the ring's (frames and parked wakers, in `history`; the hot path of
//!   every reader, skipped altogether by a parked reader with nothing new). Seq
//!   assignment, snapshot update and ring append happen under `model`, and a
//!   subscription takes its snapshot (or history position) and its live
//!   cursor under `model` too, so a resume or a snapshot is followed by
//!   exactly the frames after it: no gap, no duplicate.
//! - Ids are `<epoch>-<seq>`, seqs strictly increasing; the epoch tells
//!   one history from another. A durable hub ([`Hub::durable`]) keeps its
//!   epoch, history and room state in the embedded database (see
//!   `journal`): an event is on disk before anyone sees it, so a restart —
//!   or a crash — continues the same ids. The epoch sits in `model` with the
//!   seq: a cluster whose Redis lost its data moves the hub to a new epoch
//!   ([`Hub::move_to_epoch`]), which cuts every open stream with a reset.

pub mod erase;
mod frame;
mod history;
mod journal;
mod remote;
mod snapshot;
mod stats;
mod stream;
mod subscribe;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;

pub use journal::JournalError;
pub use remote::Applied;
pub use snapshot::HeldRoom;
pub use stats::HubStats;
pub use stream::{Start, Subscription};
pub use subscribe::{Access, SubscribeRequest};

use crate::config::Config;
use crate::event::Event;
use frame::Filter;
use history::History;
use snapshot::Rooms;
use stats::Counters;

/// Why a last event id cannot be resumed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// Not of the form `<epoch>-<seq>`.
    #[error("malformed last event id")]
    MalformedId,
    /// From another epoch (a restart, or another node without a shared history).
    #[error("last event id from another epoch")]
    OtherEpoch,
    /// Older than the history kept.
    #[error("last event id older than the history")]
    TooOld,
    /// A seq not issued yet.
    #[error("last event id not issued")]
    UnknownId,
}

/// Why a stream carries `event: reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    /// The last event id could not be resumed from.
    Resume(HubError),
    /// The subscriber fell more than `client_queue_size` frames behind.
    SlowConsumer,
    /// Events are missing from a cluster's shared stream before the next one
    /// this subscriber needs (see [`Hub::publish_at`]).
    ClusterGap,
    /// The cluster's shared history was lost (Redis lost its data) and the
    /// cluster moved to a new epoch (see [`Hub::move_to_epoch`]).
    HistoryLost,
}

impl ResetReason {
    /// The `reason` sent in the reset event's data.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Resume(HubError::MalformedId) => "malformed_id",
            Self::Resume(HubError::OtherEpoch) => "other_epoch",
            Self::Resume(HubError::TooOld) => "too_old",
            Self::Resume(HubError::UnknownId) => "unknown_id",
            Self::SlowConsumer => "slow_consumer",
            Self::ClusterGap => "cluster_gap",
            Self::HistoryLost => "history_lost",
        }
    }
}

/// The hub's settings (from `realtime.*`).
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// Frames kept for resume.
    pub history_size: usize,
    /// Frames a subscriber may fall behind before it is cut.
    pub client_queue_size: usize,
    /// Most frames in one write.
    pub max_batch_size: usize,
    /// A `: ping` after this long without a write.
    pub heartbeat: Duration,
    /// Longest stream life, jittered by ±10 %.
    pub max_connection_age: Duration,
}

impl HubSettings {
    /// The settings of a validated configuration.
    pub fn from_config(config: &Config) -> Self {
        let rt = &config.realtime;
        Self {
            history_size: rt.history_size,
            client_queue_size: rt.client_queue_size,
            max_batch_size: rt.max_batch_size.max(1),
            heartbeat: rt.heartbeat,
            max_connection_age: rt.max_connection_age,
        }
    }
}

/// Publisher-side state.
struct Model {
    /// The epoch in ids (changes only when a cluster moves to a new one).
    epoch: Arc<str>,
    /// Seq of the last event published (mirrors the ring's head, read without its lock).
    head: u64,
    rooms: Rooms,
    /// The unfiltered snapshot frame for the current head, built at most once per event.
    cached_snapshot: Option<(u64, Bytes)>,
}

struct Shared {
    settings: HubSettings,
    model: Mutex<Model>,
    history: History,
    stats: Counters,
    /// The durable journal every publish goes through (set once, at start).
    journal: std::sync::OnceLock<journal::Journal>,
}

impl Shared {
    fn lock_model(&self) -> MutexGuard<'_, Model> {
        // No code path panics while holding a lock, and every update leaves the
        // state consistent, so a poisoned lock still guards valid data.
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fan-out hub: a cheap `Clone` handle.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("epoch", &self.epoch())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Erases a subject from the model's room state and the ring; (frames, rooms) changed.
fn erase_in_memory(shared: &Shared, needles: &[String]) -> (u64, u64) {
    let mut model = shared.lock_model();
    let rooms = model.rooms.erase(needles);
    let _ = model.rooms.take_dirty();
    model.cached_snapshot = None;
    let frames = shared.history.rewrite(|b| erase::redact_frame(b, needles));
    (frames, rooms)
}

/// A fresh random epoch.
fn new_epoch() -> String {
    format!("{:08x}", rand::rng().random::<u32>())
}

/// The result of [`Hub::publish`]: the event's seq, at once for an in-memory
/// hub, once it is on disk for a durable one.
#[derive(Debug)]
pub struct Published(PublishedState);

#[derive(Debug)]
enum PublishedState {
    Done(u64),
    Queued(tokio::sync::oneshot::Receiver<Result<u64, Arc<JournalError>>>),
}

impl Published {
    /// The seq, when the event is already published (an in-memory hub).
    pub fn seq(&self) -> Option<u64> {
        match self.0 {
            PublishedState::Done(seq) => Some(seq),
            PublishedState::Queued(_) => None,
        }
    }

    /// Waits until the event is stored and visible; its seq.
    pub async fn durable(self) -> Result<u64, Arc<JournalError>> {
        match self.0 {
            PublishedState::Done(seq) => Ok(seq),
            PublishedState::Queued(rx) => rx
                .await
                .unwrap_or_else(|_| Err(Arc::new(JournalError::Stopped))),
        }
    }
}

impl Hub {
    /// A hub with an empty history and a fresh random epoch, kept in memory only.
    pub fn new(settings: HubSettings) -> Self {
        Self::with_epoch(settings, new_epoch())
    }

    /// A hub whose epoch, history and room state live in the SQLite database
    /// at `path` (see `journal`): it starts from what is stored there, and
    /// every publish is on disk before it is visible. Ids remembered by
    /// `replay` are committed with the events (so a retried event can be
    /// told from a new one after a crash too).
    pub fn durable(
        settings: HubSettings,
        path: &std::path::Path,
        replay: Option<crate::webhook::ReplayStore>,
    ) -> Result<Self, JournalError> {
        let capacity = settings.history_size.max(settings.client_queue_size);
        let (opened, restored) = journal::Opened::open(path, capacity, replay)?;
        let hub = Self::with_epoch(settings, restored.epoch.clone());
        let journal_rooms = Rooms::restore(restored.rooms.clone(), true);
        {
            let mut model = hub.shared.lock_model();
            model.head = restored.head;
            model.rooms = Rooms::restore(restored.rooms, false);
            hub.shared.history.restore(restored.head, restored.frames);
        }
        let journal = opened.start(
            Arc::downgrade(&hub.shared),
            restored.epoch,
            restored.head,
            journal_rooms,
        )?;
        let _ = hub.shared.journal.set(journal);
        Ok(hub)
    }

    /// Waits (bounded) until everything published so far is on disk.
    pub fn flush(&self) {
        if let Some(journal) = self.shared.journal.get() {
            journal.flush();
        }
    }

    /// A hub with an empty history whose ids carry `epoch` (a cluster's shared
    /// epoch, see [`crate::cluster`]); `epoch` must be non-empty lowercase hex.
    pub fn with_epoch(settings: HubSettings, epoch: String) -> Self {
        let capacity = settings.history_size.max(settings.client_queue_size);
        Self {
            shared: Arc::new(Shared {
                settings,
                model: Mutex::new(Model {
                    epoch: epoch.into(),
                    head: 0,
                    rooms: Rooms::default(),
                    cached_snapshot: None,
                }),
                history: History::new(capacity),
                stats: Counters::default(),
                journal: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The epoch in this hub's event ids.
    pub fn epoch(&self) -> String {
        self.shared.lock_model().epoch.to_string()
    }

    /// Publishes one event to every subscriber. Never waits for a
    /// subscriber; a durable hub writes it to disk first (await
    /// [`Published::durable`] before acknowledging it to anyone).
    pub fn publish(&self, event: Event, now_ms: i64) -> Published {
        if let Some(journal) = self.shared.journal.get() {
            return Published(PublishedState::Queued(journal.submit(event, now_ms)));
        }
        Published(PublishedState::Done(self.publish_now(event, now_ms)))
    }

    /// Publishes in memory at once: [`Hub::publish_at`] `head + 1`, under
    /// the one lock that reads the head.
    fn publish_now(&self, event: Event, now_ms: i64) -> u64 {
        let model = self.shared.lock_model();
        let seq = model.head + 1;
        self.publish_locked(model, seq, &event, now_ms);
        seq
    }

    /// The snapshot's `data` for `GET /api/rooms`: the rooms `access` and `rooms` admit.
    pub fn snapshot_json(&self, access: &Access, rooms: &[String]) -> serde_json::Value {
        let filter = Filter::new(access, rooms);
        let model = self.shared.lock_model();
        serde_json::to_value(model.rooms.view(&filter))
            .expect("plain derived structs serialise without error")
    }

    /// Every room held, by sid, with the ids of its participants and
    /// running agent jobs (what reconciliation compares with LiveKit).
    pub fn held_rooms(&self) -> std::collections::BTreeMap<String, HeldRoom> {
        self.shared.lock_model().rooms.held()
    }

    /// Erases a subject (`needles`: its identity and its hash) from the
    /// history and the room state, on disk and in memory (see `erase`).
    pub async fn erase_subject(
        &self,
        needles: Vec<String>,
    ) -> Result<erase::HubErasure, Arc<JournalError>> {
        if let Some(journal) = self.shared.journal.get() {
            return journal
                .erase(needles)
                .await
                .unwrap_or_else(|_| Err(Arc::new(JournalError::Stopped)));
        }
        let (history_frames, rooms) = erase_in_memory(&self.shared, &needles);
        Ok(erase::HubErasure {
            history_frames,
            rooms,
        })
    }

    /// Retention: drops the history published before `before_ms`, on disk
    /// and in memory (a cursor before it is then reset). Returns how many
    /// frames went (from the disk, for a durable hub).
    pub async fn expire_history(&self, before_ms: i64) -> Result<u64, Arc<JournalError>> {
        if let Some(journal) = self.shared.journal.get() {
            return journal
                .expire(before_ms)
                .await
                .unwrap_or_else(|_| Err(Arc::new(JournalError::Stopped)));
        }
        Ok(self.shared.history.expire(|b| erase::expired(b, before_ms)))
    }

    /// What the history and the room state hold about a subject.
    pub fn export_subject(&self, needles: &[String]) -> erase::HubExport {
        let room_state = {
            let model = self.shared.lock_model();
            erase::sessions_about(model.rooms.iter(), needles)
        };
        let history = self
            .shared
            .history
            .frames_where(|b| erase::redact_frame(b, needles).is_some())
            .iter()
            .filter_map(|b| erase::frame_data(b))
            .collect();
        erase::HubExport {
            room_state,
            history,
        }
    }

    /// Ends every stream after it has delivered what was already published.
    pub fn close(&self) {
        self.shared.history.close();
    }

    /// True once [`Hub::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.shared.history.is_closed()
    }

    /// The counters, and the room state's totals (a walk over the rooms:
    /// call it per scrape, not per event).
    pub fn stats(&self) -> HubStats {
        // One lock, released before the counters are read.
        let (totals, last_seq) = {
            let model = self.shared.lock_model();
            (model.rooms.totals(), model.head)
        };
        self.shared.stats.read(totals, last_seq)
    }
}
