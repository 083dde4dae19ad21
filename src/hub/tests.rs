//! Hub tests: real subscriptions polled as the HTTP body polls them.

mod journal;
mod lifecycle;
mod pressure;
mod resume;
mod rooms;
mod state;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use serde_json::Value;

use super::*;
use crate::event::{EgressInfo, EventData, ParticipantInfo, RoomInfo, TrackInfo};

const NOW: i64 = 1_700_000_000_000;

pub(super) fn settings(history: usize, queue: usize, batch: usize) -> HubSettings {
    HubSettings {
        history_size: history,
        client_queue_size: queue,
        max_batch_size: batch,
        heartbeat: Duration::from_secs(15),
        max_connection_age: Duration::from_secs(24 * 3600),
    }
}

pub(super) fn room(name: &str) -> RoomInfo {
    RoomInfo {
        sid: format!("RM_{name}"),
        name: name.to_string(),
        ..RoomInfo::default()
    }
}

pub(super) fn participant(sid: &str) -> ParticipantInfo {
    ParticipantInfo {
        sid: sid.to_string(),
        identity: "3f2a9c1d".into(),
        name: format!("name of {sid}"),
        state: "active",
        ..ParticipantInfo::default()
    }
}

pub(super) fn track(sid: &str) -> TrackInfo {
    TrackInfo {
        sid: sid.to_string(),
        kind: "audio",
        source: "microphone",
        muted: false,
    }
}

/// An event in `room` (raw name = display name), with optional participant and track.
pub(super) fn event(
    name: &str,
    room_name: Option<&str>,
    p: Option<ParticipantInfo>,
    t: Option<TrackInfo>,
) -> Event {
    Event {
        id: format!("EV_{}", rand::rng().random::<u64>()),
        event: name.to_string(),
        created_at_ms: NOW,
        room_key: room_name.map(str::to_string),
        order: None,
        data: EventData {
            room: room_name.map(room),
            participant: p,
            track: t,
            ..EventData::default()
        },
    }
}

pub(super) fn joined(room_name: &str, sid: &str) -> Event {
    event(
        "participant_joined",
        Some(room_name),
        Some(participant(sid)),
        None,
    )
}

pub(super) fn egress_without_room() -> Event {
    let mut e = event("egress_updated", None, None, None);
    e.data.egress = Some(EgressInfo {
        id: "EG_1".into(),
        status: "active",
    });
    e
}

pub(super) fn request(access: Access, rooms: &[&str], last: Option<&str>) -> SubscribeRequest {
    SubscribeRequest {
        access,
        rooms: rooms.iter().map(|r| r.to_string()).collect(),
        last_event_id: last.map(str::to_string),
        deadline_ms: None,
        now_ms: NOW,
    }
}

/// One parsed SSE block.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sse {
    id: Option<String>,
    event: Option<String>,
    data: Option<Value>,
    comment: bool,
}

pub(super) fn parse(chunk: &[u8]) -> Vec<Sse> {
    let text = std::str::from_utf8(chunk).expect("utf-8");
    assert!(text.ends_with("\n\n"), "every chunk ends a frame: {text:?}");
    text.trim_end_matches('\n')
        .split("\n\n")
        .map(|block| {
            let mut sse = Sse {
                id: None,
                event: None,
                data: None,
                comment: false,
            };
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    sse.id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    sse.event = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    assert!(sse.data.is_none(), "data is one line");
                    sse.data = Some(serde_json::from_str(v).expect("data is JSON"));
                } else if line.starts_with(':') {
                    sse.comment = true;
                } else {
                    panic!("unexpected line {line:?}");
                }
            }
            sse
        })
        .collect()
}

/// The chunk available right now (panics if the stream would wait or ended).
pub(super) fn ready(sub: &mut Subscription) -> Bytes {
    match sub.next().now_or_never() {
        Some(Some(Ok(bytes))) => bytes,
        other => panic!("expected a ready chunk, got {other:?}"),
    }
}

pub(super) fn is_pending(sub: &mut Subscription) -> bool {
    sub.next().now_or_never().is_none()
}

pub(super) fn seqs(frames: &[Sse]) -> Vec<u64> {
    frames
        .iter()
        .map(|f| {
            f.data
                .as_ref()
                .and_then(|d| d["seq"].as_u64())
                .expect("event seq")
        })
        .collect()
}

/// Every event frame available now, in order.
pub(super) fn drain(sub: &mut Subscription) -> Vec<Sse> {
    let mut out = Vec::new();
    while let Some(Some(Ok(bytes))) = sub.next().now_or_never() {
        out.extend(parse(&bytes));
    }
    out
}

#[tokio::test]
async fn snapshot_comes_first_then_live_events_in_spec_format() {
    let hub = Hub::new(settings(100, 100, 50));
    hub.publish(event("room_started", Some("demo"), None, None), NOW);
    hub.publish(joined("demo", "PA_1"), NOW);
    let mut sub = hub.subscribe(request(Access::All, &[], None));
    assert_eq!(sub.start(), Start::Snapshot);
    let first = parse(&ready(&mut sub));
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].event.as_deref(), Some("snapshot"));
    assert_eq!(
        first[0].id.as_deref(),
        Some(format!("{}-2", hub.epoch()).as_str())
    );
    let data = first[0].data.as_ref().expect("snapshot data");
    assert_eq!(data["rooms"][0]["name"], "demo");
    assert_eq!(data["rooms"][0]["num_participants"], 1);
    assert_eq!(data["rooms"][0]["participants"][0]["sid"], "PA_1");
    assert!(is_pending(&mut sub), "nothing else is waiting");

    let ev = event(
        "track_published",
        Some("demo"),
        Some(participant("PA_1")),
        Some(track("TR_1")),
    );
    let ev_id = ev.id.clone();
    let seq = hub
        .publish(ev, NOW + 5)
        .seq()
        .expect("an in-memory hub publishes at once");
    assert_eq!(seq, 3);
    let live = parse(&ready(&mut sub));
    assert_eq!(live.len(), 1);
    assert_eq!(
        live[0].id.as_deref(),
        Some(format!("{}-3", hub.epoch()).as_str())
    );
    assert_eq!(live[0].event.as_deref(), Some("track_published"));
    let data = live[0].data.as_ref().expect("event data");
    assert_eq!(data["id"], Value::from(ev_id));
    assert_eq!(data["seq"], 3);
    assert_eq!(data["type"], "livekit");
    assert_eq!(data["event"], "track_published");
    assert_eq!(data["timestamp"], NOW + 5);
    assert_eq!(data["data"]["track"]["source"], "microphone");
    assert_eq!(data["data"]["room"]["name"], "demo");
    assert_eq!(hub.stats().delivered_frames, 1);
}

#[tokio::test]
async fn room_access_and_room_filter_hold_both_ways() {
    let hub = Hub::new(settings(100, 100, 50));
    let mut only_a = hub.subscribe(request(Access::Rooms(vec!["a".into()]), &[], None));
    let mut all_filtered_b = hub.subscribe(request(Access::All, &["b"], None));
    let mut a_asking_b = hub.subscribe(request(Access::Rooms(vec!["a".into()]), &["b"], None));
    let mut everything = hub.subscribe(request(Access::All, &[], None));
    for sub in [
        &mut only_a,
        &mut all_filtered_b,
        &mut a_asking_b,
        &mut everything,
    ] {
        ready(sub);
    }
    hub.publish(joined("a", "PA_a"), NOW);
    hub.publish(joined("b", "PA_b"), NOW);
    hub.publish(egress_without_room(), NOW);

    let room_of = |f: &Sse| f.data.as_ref().map(|d| d["data"]["room"]["name"].clone());
    let got_a = drain(&mut only_a);
    assert_eq!(
        got_a.iter().map(room_of).collect::<Vec<_>>(),
        [Some(Value::from("a"))]
    );
    let got_b = drain(&mut all_filtered_b);
    assert_eq!(
        got_b.iter().map(room_of).collect::<Vec<_>>(),
        [Some(Value::from("b"))]
    );
    assert!(
        drain(&mut a_asking_b).is_empty(),
        "?room= cannot widen access"
    );
    assert_eq!(seqs(&drain(&mut everything)), [1, 2, 3]);

    // The snapshot is filtered the same way.
    let snap = parse(&ready(&mut hub.subscribe(request(
        Access::Rooms(vec!["b".into()]),
        &[],
        None,
    ))));
    let rooms = snap[0].data.as_ref().expect("snapshot")["rooms"]
        .as_array()
        .expect("rooms")
        .clone();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["name"], "b");
    assert_eq!(
        hub.snapshot_json(&Access::All, &["a".into()])["rooms"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        hub.snapshot_json(&Access::All, &[])["rooms"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

#[tokio::test]
async fn coalesces_only_what_is_waiting_capped_by_max_batch_size() {
    let hub = Hub::new(settings(100, 100, 3));
    let mut sub = hub.subscribe(request(Access::All, &[], None));
    ready(&mut sub);
    for i in 0..5 {
        hub.publish(joined("demo", &format!("PA_{i}")), NOW);
    }
    assert_eq!(seqs(&parse(&ready(&mut sub))), [1, 2, 3]);
    assert_eq!(seqs(&parse(&ready(&mut sub))), [4, 5]);
    assert!(is_pending(&mut sub));
    hub.publish(joined("demo", "PA_x"), NOW);
    assert_eq!(
        seqs(&parse(&ready(&mut sub))),
        [6],
        "an idle subscriber gets an event at once"
    );
}

#[tokio::test]
async fn a_parked_subscriber_is_woken_by_a_publish() {
    let hub = Hub::new(settings(100, 100, 50));
    let mut sub = hub.subscribe(request(Access::All, &[], None));
    ready(&mut sub);
    assert_eq!(woken_in_a_task(&hub, sub, "PA_1").await, [1]);
}

/// Waits for `sub`'s next chunk in another task, publishes a join of `sid`,
/// and returns the seqs of the chunk that woke it.
async fn woken_in_a_task(hub: &Hub, mut sub: Subscription, sid: &str) -> Vec<u64> {
    let task = tokio::spawn(async move { sub.next().await });
    tokio::task::yield_now().await;
    hub.publish(joined("demo", sid), NOW);
    let chunk = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("woken")
        .expect("task");
    seqs(&parse(&chunk.expect("chunk").expect("infallible")))
}

#[tokio::test]
async fn a_subscriber_parked_by_one_task_is_woken_in_another() {
    let hub = Hub::new(settings(100, 100, 50));
    let mut sub = hub.subscribe(request(Access::All, &[], None));
    ready(&mut sub);
    hub.publish(joined("demo", "PA_1"), NOW);
    // Read with a no-op waker: the subscription parks that waker as it catches up.
    assert_eq!(seqs(&drain(&mut sub)), [1]);
    assert_eq!(woken_in_a_task(&hub, sub, "PA_2").await, [2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_keep_ids_strictly_increasing_per_stream() {
    let hub = Hub::new(settings(10_000, 10_000, 50));
    let mut sub = hub.subscribe(request(Access::All, &[], None));
    ready(&mut sub);
    let reader = tokio::spawn(async move {
        let mut ids = Vec::new();
        while ids.len() < 1000 {
            let chunk = sub.next().await.expect("chunk").expect("infallible");
            ids.extend(parse(&chunk).into_iter().filter_map(|f| f.id));
        }
        ids
    });
    let publishers: Vec<_> = (0..4)
        .map(|t| {
            let hub = hub.clone();
            tokio::spawn(async move {
                for i in 0..250 {
                    hub.publish(joined("demo", &format!("PA_{t}_{i}")), NOW);
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.expect("publisher");
    }
    let ids = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("reader done")
        .expect("task");
    let seqs: Vec<u64> = ids
        .iter()
        .map(|id| {
            id.rsplit_once('-')
                .and_then(|(_, s)| s.parse().ok())
                .expect("seq")
        })
        .collect();
    assert_eq!(seqs, (1..=1000).collect::<Vec<_>>());
}
