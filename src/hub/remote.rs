//! Events whose seq was assigned elsewhere: a cluster's shared sequence
//! (see [`crate::cluster`]).
//!
//! With several nodes, the seq of an event is assigned once, in Redis, and
//! every node's hub receives the event with that seq, so ids are identical on
//! every node and a `Last-Event-ID` from one node resumes on another. The
//! local ring still holds consecutive seqs: an event at or before the head is
//! a re-read (dropped), one right after it is appended, and one further ahead
//! means events were lost between the cluster and this node — the ring then
//! jumps, so every subscriber behind the jump is cut with `event: reset`
//! (never a silent gap) and resumes or resnapshots.

use std::sync::atomic::Ordering;

use super::{Hub, frame};
use crate::event::Event;

/// What [`Hub::publish_at`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Appended right after the head.
    Appended,
    /// Appended after a gap: subscribers behind it were cut with a reset.
    AfterGap,
    /// At or before the head: already applied, dropped.
    Stale,
}

impl Hub {
    /// Publishes `event` under `seq`, assigned by the cluster, with the
    /// publishing node's `timestamp_ms` (so the frame is byte-identical on
    /// every node). Never waits for a subscriber.
    pub fn publish_at(&self, seq: u64, event: Event, timestamp_ms: i64) -> Applied {
        let shared = &self.shared;
        let mut model = shared.lock_model();
        if seq <= model.head {
            return Applied::Stale;
        }
        let gap = seq > model.head + 1;
        let frame = frame::event_frame(&shared.epoch, seq, &event, timestamp_ms);
        model.rooms.apply(&event);
        model.cached_snapshot = None;
        model.head = seq;
        let wakers = if gap {
            shared.history.push_after_gap(seq - 1, frame)
        } else {
            shared.history.push(frame)
        };
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
                batch_interval: Duration::from_millis(10),
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
    async fn a_gap_cuts_subscribers_behind_it_with_a_reset() {
        let hub = hub();
        hub.publish_at(1, event(1), 1);
        let mut sub = resume(&hub, "c1a55e-1");
        assert_eq!(hub.publish_at(5, event(5), 2), Applied::AfterGap);
        let Some(Ok(bytes)) = sub.next().await else {
            panic!("a reset frame")
        };
        assert!(String::from_utf8_lossy(&bytes).contains("event: reset"));
        assert!(
            sub.next().await.is_none(),
            "the stream ends after the reset"
        );
        let refused = resume(&hub, "c1a55e-2");
        assert!(
            matches!(refused.start(), Start::Reset(_)),
            "seqs 2..4 are not held"
        );
    }
}
