//! Events whose seq was assigned elsewhere: a cluster's shared sequence
//! (see [`crate::cluster`]).
//!
//! With several nodes, the seq of an event is assigned once, in Redis, and
//! every node's hub receives the event with that seq, so ids are identical on
//! every node and a `Last-Event-ID` from one node resumes on another. The
//! local ring still holds consecutive seqs: one right after the head is
//! appended; one further ahead means events were lost between the cluster
//! and this node — the ring then jumps, so every subscriber behind the jump
//! is cut with `event: reset` (`cluster_gap`; never a silent gap) and resumes
//! or resnapshots. One at or before the head is a re-read only if it is
//! byte for byte the frame this node already sent under that id; otherwise
//! the cluster issued one seq twice (Redis lost acknowledged data), which is
//! never dropped in silence: [`Applied::Conflict`] tells the caller, who
//! moves the cluster to a new epoch ([`Hub::move_to_epoch`]).
//!
//! Moving to a new epoch keeps the room state (the node's best knowledge),
//! drops the history and starts the seqs over under the new epoch; every
//! open stream gets `event: reset` (`history_lost`) and a fresh snapshot,
//! and goes on from there (so a cluster's clients do not all reconnect at
//! once; a gap does the same with `cluster_gap`). A `Last-Event-ID` of the old epoch is
//! then answered with a reset too (`other_epoch`), so no id can name two
//! events.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

use super::frame::{self, Filter};
use super::history::Cursor;
use super::{Hub, Model, ResetReason};
use crate::event::Event;

/// What [`Hub::publish_at`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Appended right after the head.
    Appended,
    /// Appended after a gap: subscribers behind it were cut with a reset.
    AfterGap,
    /// At or before the head, identical to the frame already sent under
    /// that id: a re-read, dropped.
    Stale,
    /// At or before the head but not the frame already sent under that id
    /// (or one no longer held to compare): the cluster issued this seq
    /// twice. Not applied; the caller must move to a new epoch.
    Conflict,
}

impl Hub {
    /// Publishes `event` under `seq`, assigned by the cluster, with the
    /// publishing node's `timestamp_ms` (so the frame is byte-identical on
    /// every node). Never waits for a subscriber.
    pub fn publish_at(&self, seq: u64, event: Event, timestamp_ms: i64) -> Applied {
        self.publish_locked(self.shared.lock_model(), seq, &event, timestamp_ms)
    }

    /// [`Hub::publish_at`] under the model lock already taken (`publish`
    /// takes `head + 1` under it); wakes the subscribers once it is released.
    pub(super) fn publish_locked(
        &self,
        mut model: MutexGuard<'_, Model>,
        seq: u64,
        event: &Event,
        timestamp_ms: i64,
    ) -> Applied {
        let shared = &self.shared;
        let frame = frame::event_frame(&model.epoch, seq, event, timestamp_ms);
        if seq <= model.head {
            return match shared.history.frame_bytes(seq) {
                Some(held) if held == frame.bytes => Applied::Stale,
                _ => Applied::Conflict,
            };
        }
        let gap = seq > model.head + 1;
        model.rooms.apply(event);
        model.cached_snapshot = None;
        model.head = seq;
        let wakers = shared.history.push_at(seq, frame);
        drop(model);
        wakers.wake();
        shared.stats.published.fetch_add(1, Ordering::Relaxed);
        if gap {
            Applied::AfterGap
        } else {
            Applied::Appended
        }
    }

    /// Seq of the last event published (0 before the first).
    pub fn head(&self) -> u64 {
        self.shared.lock_model().head
    }

    /// Starts a cut subscription over: the `reset` frame for `reason`, then a
    /// fresh snapshot for `filter`, with `cursor` moved right after it (all
    /// under the model lock, so no frame falls between the snapshot and the
    /// cursor). For cuts that are the cluster's doing, not the client's: its
    /// stream goes on instead of every client reconnecting at once.
    pub(super) fn start_over(
        &self,
        cursor: &mut Cursor,
        filter: &Filter,
        reason: ResetReason,
    ) -> bytes::Bytes {
        let mut model = self.shared.lock_model();
        let head = model.head;
        let mut out = frame::reset_frame(reason).to_vec();
        self.write_snapshot(&mut model, head, filter, &mut out);
        cursor.next = head + 1;
        cursor.live_from = head + 1;
        self.shared.history.restamp(cursor);
        drop(model);
        bytes::Bytes::from(out)
    }

    /// The epoch and the head seq, read together (a cluster's publish
    /// passes both: a head means nothing in another epoch).
    pub fn position(&self) -> (String, u64) {
        let model = self.shared.lock_model();
        (model.epoch.to_string(), model.head)
    }

    /// Moves to the cluster's new `epoch` (non-empty lowercase hex): the
    /// history is dropped, the next seq is 1, and every open stream is cut
    /// with `event: reset` (`history_lost`). The room state is kept. Does
    /// nothing if `epoch` is already this hub's.
    pub fn move_to_epoch(&self, epoch: &str) {
        let shared = &self.shared;
        let mut model = shared.lock_model();
        if &*model.epoch == epoch {
            return;
        }
        model.epoch = epoch.into();
        model.head = 0;
        model.cached_snapshot = None;
        let wakers = shared.history.restart();
        drop(model);
        wakers.wake();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;
    use crate::event::{EventData, RoomInfo};
    use crate::hub::{Access, HubSettings, Start, SubscribeRequest};

    fn hub() -> Hub {
        Hub::with_epoch(
            HubSettings {
                history_size: 16,
                client_queue_size: 16,
                max_batch_size: 16,
                heartbeat: Duration::from_secs(30),
                max_connection_age: Duration::from_secs(3600),
            },
            "c1a55e".to_owned(),
        )
    }

    fn event(n: u64) -> Event {
        Event {
            id: format!("EV_{n}"),
            event: "room_started".to_owned(),
            created_at_ms: 0,
            room_key: Some("demo".to_owned()),
            order: None,
            data: EventData {
                room: Some(RoomInfo {
                    sid: "RM_1".to_owned(),
                    name: "demo".to_owned(),
                    ..RoomInfo::default()
                }),
                ..EventData::default()
            },
        }
    }

    fn resume(hub: &Hub, id: &str) -> crate::hub::Subscription {
        hub.subscribe(SubscribeRequest {
            access: Access::All,
            rooms: Vec::new(),
            last_event_id: Some(id.to_owned()),
            deadline_ms: None,
            now_ms: 0,
        })
    }

    #[tokio::test]
    async fn cluster_seqs_become_ids_and_rereads_are_dropped() {
        let hub = hub();
        assert_eq!(hub.publish_at(41, event(41), 5), Applied::AfterGap);
        assert_eq!(hub.publish_at(42, event(42), 6), Applied::Appended);
        assert_eq!(hub.publish_at(42, event(42), 6), Applied::Stale);
        assert_eq!(hub.head(), 42);
        let mut sub = resume(&hub, "c1a55e-41");
        assert_eq!(sub.start(), Start::Resumed);
        let Some(Ok(bytes)) = sub.next().await else {
            panic!("a frame")
        };
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("id: c1a55e-42\n"), "{text}");
        assert!(text.contains("\"timestamp\":6"), "{text}");
        assert!(!text.contains("c1a55e-41\n"), "no duplicate: {text}");
    }

    #[tokio::test]
    async fn a_gap_resets_subscribers_behind_it_to_a_fresh_snapshot() {
        let hub = hub();
        hub.publish_at(1, event(1), 1);
        let mut sub = resume(&hub, "c1a55e-1");
        assert_eq!(hub.publish_at(5, event(5), 2), Applied::AfterGap);
        let text = next_text(&mut sub).await;
        assert!(
            text.starts_with("event: reset\ndata: {\"reason\":\"cluster_gap\"}\n\nid: c1a55e-5\nevent: snapshot\n"),
            "{text}"
        );
        assert!(
            !text.contains("event: room_started"),
            "no frame twice: {text}"
        );
        // The stream goes on after the snapshot.
        assert_eq!(hub.publish_at(6, event(6), 3), Applied::Appended);
        assert!(next_text(&mut sub).await.starts_with("id: c1a55e-6\n"));
        let stats = hub.stats();
        assert_eq!(
            (stats.resets, stats.slow_consumer_cuts),
            (1, 0),
            "not a slow consumer"
        );
        let refused = resume(&hub, "c1a55e-2");
        assert!(
            matches!(refused.start(), Start::Reset(_)),
            "seqs 2..4 are not held"
        );
        // A subscriber that starts after the gap is not cut for it.
        let mut after = resume(&hub, "c1a55e-5");
        assert!(next_text(&mut after).await.starts_with("id: c1a55e-6\n"));
    }

    async fn next_text(sub: &mut crate::hub::Subscription) -> String {
        match tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
            Ok(Some(Ok(bytes))) => String::from_utf8_lossy(&bytes).into_owned(),
            other => panic!("a frame, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_seq_issued_twice_with_other_content_is_a_conflict_not_a_reread() {
        let hub = hub();
        hub.publish_at(1, event(1), 1);
        hub.publish_at(2, event(2), 2);
        assert_eq!(hub.publish_at(2, event(2), 2), Applied::Stale, "same frame");
        assert_eq!(
            hub.publish_at(2, event(7), 2),
            Applied::Conflict,
            "another event"
        );
        assert_eq!(
            hub.publish_at(2, event(2), 9),
            Applied::Conflict,
            "another timestamp"
        );
        assert_eq!(hub.head(), 2, "a conflict is not applied");
        let small = Hub::with_epoch(
            HubSettings {
                history_size: 2,
                client_queue_size: 2,
                ..hub.shared.settings.clone()
            },
            "c1a55e".to_owned(),
        );
        for n in 1..=4 {
            small.publish_at(n, event(n), 0);
        }
        assert_eq!(
            small.publish_at(1, event(1), 0),
            Applied::Conflict,
            "a seq no longer held cannot be shown to be a re-read"
        );
    }

    #[tokio::test]
    async fn a_new_epoch_resets_every_stream_and_starts_the_ids_over() {
        let hub = hub();
        hub.publish_at(1, event(1), 1);
        hub.publish_at(2, event(2), 2);
        let mut live = resume(&hub, "c1a55e-2");
        let mut behind = resume(&hub, "c1a55e-1");
        let mut rooms = hub.subscribe(SubscribeRequest {
            access: Access::Rooms(vec!["demo".to_owned()]),
            rooms: Vec::new(),
            last_event_id: None,
            deadline_ms: None,
            now_ms: 0,
        });
        assert!(next_text(&mut rooms).await.contains("event: snapshot"));
        assert!(next_text(&mut behind).await.starts_with("id: c1a55e-2\n"));
        hub.move_to_epoch("0be2");
        assert_eq!((hub.epoch().as_str(), hub.head()), ("0be2", 0));
        for sub in [&mut live, &mut behind, &mut rooms] {
            let text = next_text(sub).await;
            assert!(
                text.starts_with("event: reset\ndata: {\"reason\":\"history_lost\"}\n\nid: 0be2-0\nevent: snapshot\n"),
                "{text}"
            );
            assert!(text.contains("demo"), "the room state is kept: {text}");
        }
        let stats = hub.stats();
        assert_eq!((stats.resets, stats.slow_consumer_cuts), (3, 0));
        // The old epoch's ids are refused; the new one's start at 1.
        let old = resume(&hub, "c1a55e-2");
        assert!(matches!(old.start(), Start::Reset(_)));
        let mut fresh = hub.subscribe(SubscribeRequest {
            access: Access::All,
            rooms: Vec::new(),
            last_event_id: None,
            deadline_ms: None,
            now_ms: 0,
        });
        let snapshot = next_text(&mut fresh).await;
        assert!(
            snapshot.starts_with("id: 0be2-0\nevent: snapshot"),
            "{snapshot}"
        );
        assert!(
            snapshot.contains("demo"),
            "the room state is kept: {snapshot}"
        );
        assert_eq!(hub.publish_at(1, event(3), 5), Applied::Appended);
        // Every stream goes on in the new epoch, the reset ones included.
        for sub in [&mut fresh, &mut live, &mut behind, &mut rooms] {
            assert!(next_text(sub).await.starts_with("id: 0be2-1\n"));
        }
        hub.move_to_epoch("0be2");
        assert_eq!(hub.head(), 1, "moving to the current epoch changes nothing");
    }
}
