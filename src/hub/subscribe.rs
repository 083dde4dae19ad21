//! Starting a subscription: who may watch what ([`Access`]), then a resume
//! from `Last-Event-ID`, a reset, or a snapshot, each followed by exactly
//! the frames after it (see the invariants in the module docs of `hub`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use tokio::time::Instant;

use super::frame::{self, Filter};
use super::history::Cursor;
use super::stream::{Start, Subscription};
use super::{Hub, HubError, Model, ResetReason};

/// What the caller's token may watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Every room, and frames that belong to no room.
    All,
    /// Only these raw room names.
    Rooms(Vec<String>),
}

impl Access {
    /// True when this access may see frames of `room` (`None`: frames that
    /// belong to no room, which only [`Access::All`] sees). Lets the HTTP layer
    /// refuse a `?room=` outside the token's grant instead of streaming nothing.
    pub fn permits(&self, room: Option<&str>) -> bool {
        match (self, room) {
            (Self::All, _) => true,
            (Self::Rooms(rooms), Some(room)) => rooms.iter().any(|r| r == room),
            (Self::Rooms(_), None) => false,
        }
    }
}

/// A request to subscribe.
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    /// What the token permits.
    pub access: Access,
    /// The `?room=` filter (raw names); empty means every permitted room.
    pub rooms: Vec<String>,
    /// `Last-Event-ID` / `lastEventId`.
    pub last_event_id: Option<String>,
    /// Token expiry, Unix ms: the stream ends then.
    pub deadline_ms: Option<i64>,
    /// Now, Unix ms.
    pub now_ms: i64,
}

impl Hub {
    /// Starts a subscription (see SPEC "SSE stream" for the semantics).
    /// Must be called within a Tokio runtime (the stream owns a timer).
    pub fn subscribe(&self, req: SubscribeRequest) -> Subscription {
        let shared = &self.shared;
        let filter = Filter::new(&req.access, &req.rooms);
        let ends_at = self.ends_at(req.deadline_ms, req.now_ms);
        let mut model = shared.lock_model();
        let head = model.head;
        let resume = req
            .last_event_id
            .as_deref()
            .map(|id| self.resume_point(&model.epoch, id, head));
        let (cursor, prelude, start) = match resume {
            Some(Ok(seq)) => {
                shared.stats.resumes.fetch_add(1, Ordering::Relaxed);
                (
                    Cursor::new(seq + 1, head + 1, &filter),
                    None,
                    Start::Resumed,
                )
            }
            Some(Err(error)) => {
                let reason = ResetReason::Resume(error);
                shared.stats.resets.fetch_add(1, Ordering::Relaxed);
                let mut out = frame::reset_frame(reason).to_vec();
                self.write_snapshot(&mut model, head, &filter, &mut out);
                (
                    Cursor::new(head + 1, head + 1, &filter),
                    Some(Bytes::from(out)),
                    Start::Reset(reason),
                )
            }
            None => {
                let snapshot = self.snapshot_frame(&mut model, head, &filter);
                (
                    Cursor::new(head + 1, head + 1, &filter),
                    Some(snapshot),
                    Start::Snapshot,
                )
            }
        };
        // Under `model`, like every push: the room's eviction record covers
        // every frame after the cursor, and its epoch is the model's.
        let mut cursor = cursor;
        shared.history.register(&mut cursor);
        drop(model);
        Subscription::new(Arc::clone(shared), cursor, filter, prelude, ends_at, start)
    }

    /// The seq after which a resume from `id` continues.
    fn resume_point(&self, epoch: &str, id: &str, head: u64) -> Result<u64, HubError> {
        let seq = frame::parse_id(epoch, id)?;
        if seq > head {
            return Err(HubError::UnknownId);
        }
        let history = self.shared.settings.history_size as u64;
        // Every frame after `seq` must still be held: the newest `history_size`.
        if head - seq > history || seq + 1 < self.shared.history.oldest() {
            return Err(HubError::TooOld);
        }
        Ok(seq)
    }

    /// The end of a stream: token expiry or the jittered maximum age, whichever is first.
    fn ends_at(&self, deadline_ms: Option<i64>, now_ms: i64) -> Instant {
        let now = Instant::now();
        let age = self
            .shared
            .settings
            .max_connection_age
            .mul_f64(rand::rng().random_range(0.9..=1.1));
        let by_age = now + age;
        match deadline_ms {
            Some(deadline) => {
                let left = Duration::from_millis(
                    u64::try_from(deadline.saturating_sub(now_ms)).unwrap_or(0),
                );
                by_age.min(now + left)
            }
            None => by_age,
        }
    }

    /// The snapshot frame for `filter`, from the cache when unfiltered.
    fn snapshot_frame(&self, model: &mut Model, head: u64, filter: &Filter) -> Bytes {
        if filter.is_everything()
            && let Some((seq, bytes)) = &model.cached_snapshot
            && *seq == head
        {
            self.shared.stats.snapshots.fetch_add(1, Ordering::Relaxed);
            return bytes.clone();
        }
        let mut out = Vec::new();
        self.write_snapshot(model, head, filter, &mut out);
        let bytes = Bytes::from(out);
        if filter.is_everything() {
            model.cached_snapshot = Some((head, bytes.clone()));
        }
        bytes
    }

    pub(super) fn write_snapshot(
        &self,
        model: &mut Model,
        head: u64,
        filter: &Filter,
        out: &mut Vec<u8>,
    ) {
        self.shared.stats.snapshots.fetch_add(1, Ordering::Relaxed);
        let json = serde_json::to_vec(&model.rooms.view(filter))
            .expect("plain derived structs serialise without error");
        frame::snapshot_frame(out, &model.epoch, head, &json);
    }
}
