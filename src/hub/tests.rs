//! Hub tests: real subscriptions polled as the HTTP body polls them.

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
        batch_interval: Duration::from_millis(100),
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
        data: EventData {
            room: room_name.map(room),
            participant: p,
            track: t,
            ..EventData::default()
        },
    }
}

fn joined(room_name: &str, sid: &str) -> Event {
    event(
        "participant_joined",
        Some(room_name),
        Some(participant(sid)),
        None,
    )
}

fn egress_without_room() -> Event {
    let mut e = event("egress_updated", None, None, None);
    e.data.egress = Some(EgressInfo {
        id: "EG_1".into(),
        status: "active",
    });
    e
}

fn request(access: Access, rooms: &[&str], last: Option<&str>) -> SubscribeRequest {
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
struct Sse {
    id: Option<String>,
    event: Option<String>,
    data: Option<Value>,
    comment: bool,
}

fn parse(chunk: &[u8]) -> Vec<Sse> {
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
fn ready(sub: &mut Subscription) -> Bytes {
    match sub.next().now_or_never() {
        Some(Some(Ok(bytes))) => bytes,
        other => panic!("expected a ready chunk, got {other:?}"),
    }
}

fn is_pending(sub: &mut Subscription) -> bool {
    sub.next().now_or_never().is_none()
}

fn seqs(frames: &[Sse]) -> Vec<u64> {
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
fn drain(sub: &mut Subscription) -> Vec<Sse> {
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
    let seq = hub.publish(ev, NOW + 5);
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
async fn resume_replays_exactly_what_followed_without_snapshot() {
    let hub = Hub::new(settings(100, 100, 3));
    for i in 0..10 {
        hub.publish(joined("demo", &format!("PA_{i}")), NOW);
    }
    let id = format!("{}-4", hub.epoch());
    let mut sub = hub.subscribe(request(Access::All, &[], Some(&id)));
    assert_eq!(sub.start(), Start::Resumed);
    let first = parse(&ready(&mut sub));
    assert_eq!(
        seqs(&first),
        [5, 6, 7],
        "replay is batched by max_batch_size, no snapshot"
    );
    let mut rest = drain(&mut sub);
    hub.publish(joined("demo", "PA_new"), NOW);
    rest.extend(drain(&mut sub));
    assert_eq!(seqs(&rest), [8, 9, 10, 11]);
    assert!(
        rest.iter()
            .chain(&first)
            .all(|f| f.event.as_deref() == Some("participant_joined"))
    );
    assert_eq!(hub.stats().resumes, 1);
}

#[tokio::test]
async fn resume_from_the_snapshot_id_continues_right_after_it() {
    let hub = Hub::new(settings(100, 100, 50));
    hub.publish(joined("demo", "PA_1"), NOW);
    let mut first = hub.subscribe(request(Access::All, &[], None));
    let snap_id = parse(&ready(&mut first))[0]
        .id
        .clone()
        .expect("snapshot id");
    drop(first);
    for i in 2..=4 {
        hub.publish(joined("demo", &format!("PA_{i}")), NOW);
    }
    let mut again = hub.subscribe(request(Access::All, &[], Some(&snap_id)));
    assert_eq!(seqs(&drain(&mut again)), [2, 3, 4]);
}

#[tokio::test]
async fn replay_checks_access_per_frame() {
    let hub = Hub::new(settings(100, 100, 50));
    hub.publish(joined("a", "PA_1"), NOW);
    hub.publish(joined("b", "PA_2"), NOW);
    hub.publish(egress_without_room(), NOW);
    hub.publish(joined("a", "PA_3"), NOW);
    let id = format!("{}-0", hub.epoch());
    let mut sub = hub.subscribe(request(Access::Rooms(vec!["a".into()]), &[], Some(&id)));
    assert_eq!(seqs(&drain(&mut sub)), [1, 4]);
}

#[tokio::test]
async fn refused_ids_give_reset_then_a_fresh_snapshot() {
    let hub = Hub::new(settings(3, 2, 50));
    for i in 0..10 {
        hub.publish(joined("demo", &format!("PA_{i}")), NOW);
    }
    let epoch = hub.epoch().to_string();
    let other = if epoch == "00000000" {
        "00000001"
    } else {
        "00000000"
    };
    let cases = [
        ("garbage".to_string(), "malformed_id"),
        (format!("{epoch}-x"), "malformed_id"),
        (format!("{other}-5"), "other_epoch"),
        (format!("{epoch}-999"), "unknown_id"),
        (format!("{epoch}-2"), "too_old"),
    ];
    for (i, (id, reason)) in cases.iter().enumerate() {
        let mut sub = hub.subscribe(request(Access::All, &[], Some(id)));
        let frames = parse(&ready(&mut sub));
        assert_eq!(frames.len(), 2, "{id}: reset and snapshot in one write");
        assert_eq!(frames[0].event.as_deref(), Some("reset"));
        assert_eq!(frames[0].id, None, "{id}: a reset carries no id");
        assert_eq!(
            frames[0].data.as_ref().expect("reset data")["reason"],
            *reason,
            "{id}"
        );
        assert_eq!(frames[1].event.as_deref(), Some("snapshot"));
        assert_eq!(
            frames[1].id.as_deref(),
            Some(format!("{epoch}-10").as_str())
        );
        assert!(is_pending(&mut sub), "{id}: no replay after a reset");
        assert_eq!(hub.stats().resets, i as u64 + 1);
    }
    // The oldest id still resumable with history 3: seq 7 (8, 9, 10 follow).
    let mut ok = hub.subscribe(request(Access::All, &[], Some(&format!("{epoch}-7"))));
    assert_eq!(seqs(&drain(&mut ok)), [8, 9, 10]);
}

#[tokio::test]
async fn a_slow_consumer_is_reset_and_cut_while_others_get_everything() {
    let hub = Hub::new(settings(4, 4, 50));
    let mut slow = hub.subscribe(request(Access::All, &[], None));
    let mut fast = hub.subscribe(request(Access::All, &[], None));
    ready(&mut slow);
    ready(&mut fast);
    let mut got = Vec::new();
    for i in 0..10 {
        hub.publish(joined("demo", &format!("PA_{i}")), NOW);
        got.extend(drain(&mut fast));
    }
    assert_eq!(seqs(&got), (1..=10).collect::<Vec<_>>());
    let last = parse(&ready(&mut slow));
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].event.as_deref(), Some("reset"));
    assert_eq!(
        last[0].data.as_ref().expect("data")["reason"],
        "slow_consumer"
    );
    assert!(
        matches!(slow.next().now_or_never(), Some(None)),
        "the stream ends after the reset"
    );
    let stats = hub.stats();
    assert_eq!((stats.slow_consumer_cuts, stats.resets), (1, 1));
}

#[tokio::test]
async fn a_consumer_just_within_the_queue_is_not_cut() {
    let hub = Hub::new(settings(100, 4, 50));
    let mut sub = hub.subscribe(request(Access::All, &[], None));
    ready(&mut sub);
    for i in 0..4 {
        hub.publish(joined("demo", &format!("PA_{i}")), NOW);
    }
    assert_eq!(seqs(&parse(&ready(&mut sub))), [1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_after_silence_and_not_while_events_flow() {
    let hub = Hub::new(settings(100, 100, 50));
    let mut sub = hub.subscribe(request(Access::All, &[], None));
    ready(&mut sub);
    let start = tokio::time::Instant::now();
    let ping = sub.next().await.expect("a ping").expect("infallible");
    assert_eq!(&ping[..], b": ping\n\n");
    assert_eq!(start.elapsed(), Duration::from_secs(15));

    tokio::time::advance(Duration::from_secs(10)).await;
    hub.publish(joined("demo", "PA_1"), NOW);
    assert_eq!(seqs(&parse(&ready(&mut sub))), [1]);
    let after_event = tokio::time::Instant::now();
    let ping = sub.next().await.expect("a ping").expect("infallible");
    assert!(parse(&ping)[0].comment);
    assert_eq!(
        after_event.elapsed(),
        Duration::from_secs(15),
        "the event pushed the heartbeat back"
    );
    assert_eq!(hub.stats().heartbeats, 2);
}

#[tokio::test(start_paused = true)]
async fn the_stream_ends_when_the_token_expires() {
    let hub = Hub::new(settings(100, 100, 50));
    let mut req = request(Access::All, &[], None);
    req.deadline_ms = Some(NOW + 20_000);
    let mut sub = hub.subscribe(req);
    ready(&mut sub);
    let start = tokio::time::Instant::now();
    assert!(parse(&sub.next().await.expect("ping").expect("infallible"))[0].comment);
    assert_eq!(sub.next().await, None);
    assert_eq!(start.elapsed(), Duration::from_secs(20));
    hub.publish(joined("demo", "PA_1"), NOW);
    assert!(
        matches!(sub.next().now_or_never(), Some(None)),
        "nothing after the end"
    );
}

#[tokio::test(start_paused = true)]
async fn the_stream_ends_at_the_jittered_maximum_age() {
    let mut s = settings(100, 100, 50);
    s.heartbeat = Duration::from_secs(3600);
    s.max_connection_age = Duration::from_secs(1000);
    let hub = Hub::new(s);
    let mut sub = hub.subscribe(request(Access::All, &[], None));
    ready(&mut sub);
    let start = tokio::time::Instant::now();
    assert_eq!(sub.next().await, None);
    let lived = start.elapsed();
    assert!(
        lived >= Duration::from_secs(900) && lived <= Duration::from_secs(1100),
        "{lived:?}"
    );
}

#[tokio::test]
async fn close_flushes_pending_frames_then_ends_every_stream() {
    let hub = Hub::new(settings(100, 100, 50));
    let mut a = hub.subscribe(request(Access::All, &[], None));
    let mut b = hub.subscribe(request(Access::All, &[], None));
    ready(&mut a);
    ready(&mut b);
    let waiting_b = tokio::spawn(async move { b.next().await });
    tokio::task::yield_now().await;
    hub.publish(joined("demo", "PA_1"), NOW);
    hub.publish(joined("demo", "PA_2"), NOW);
    hub.close();
    assert_eq!(seqs(&parse(&ready(&mut a))), [1, 2]);
    assert!(matches!(a.next().now_or_never(), Some(None)));
    let got_b = waiting_b
        .await
        .expect("task")
        .expect("a chunk")
        .expect("infallible");
    assert!(!parse(&got_b).is_empty());
    assert!(hub.is_closed());
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
    let task = tokio::spawn(async move { sub.next().await });
    tokio::task::yield_now().await;
    hub.publish(joined("demo", "PA_1"), NOW);
    let chunk = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("woken")
        .expect("task");
    assert_eq!(
        seqs(&parse(&chunk.expect("chunk").expect("infallible"))),
        [1]
    );
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

#[tokio::test]
async fn dropping_subscriptions_frees_waiter_slots_and_counts() {
    let hub = Hub::new(settings(100, 100, 50));
    for _ in 0..3 {
        let mut subs: Vec<_> = (0..100)
            .map(|_| hub.subscribe(request(Access::All, &[], None)))
            .collect();
        for sub in &mut subs {
            ready(sub);
            assert!(is_pending(sub));
        }
        assert_eq!(hub.stats().subscribers, 100);
    }
    assert_eq!(hub.stats().subscribers, 0);
    assert!(
        hub.shared.lock_ring().parked_slots() <= 100,
        "slots are reused, not grown by churn"
    );
}

#[tokio::test]
async fn per_subscriber_memory() {
    let hub = Hub::new(settings(100, 100, 50));
    let sub = hub.subscribe(request(Access::All, &[], None));
    let inline = std::mem::size_of::<Subscription>();
    let timer = std::mem::size_of::<tokio::time::Sleep>();
    println!(
        "size_of Subscription = {inline} B, boxed Sleep = {timer} B, total ≈ {} B + filter",
        inline + timer
    );
    assert!(
        inline + timer <= 512,
        "a subscriber's own state stays well under the 4 KiB budget"
    );
    drop(sub);
}
