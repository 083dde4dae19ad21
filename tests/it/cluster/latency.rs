//! Fan-out latency through Redis versus in-process: printed figures (run
//! with `-- --nocapture`), with checks that every event arrived in order.

use std::time::{Duration, Instant};

use super::server::RedisServer;
use super::{T, events, joined, nodes, participant_sid, seq_of, sid};
use crate::support::{self, TestServer};

/// Median and 99th percentile of `v` (sorted in place).
fn percentiles(v: &mut [Duration]) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 99 / 100).min(v.len() - 1)])
}

/// Sends `count` webhooks to `to` one by one and times each until `from`'s SSE client has it.
async fn fanout_latency(to: &TestServer, from: &TestServer, count: usize) -> Vec<Duration> {
    let mut sse = events(from, &[]).await;
    assert_eq!(sse.next(T).await.expect("snapshot").event, "snapshot");
    let room = sid("room-");
    let mut out = Vec::with_capacity(count);
    let mut last = 0;
    for _ in 0..count {
        let psid = sid("PA_");
        let body = joined(&room, &psid);
        let start = Instant::now();
        assert_eq!(support::deliver(&to.url, &body).await, 200);
        let ev = sse
            .next_named("participant_joined", T)
            .await
            .expect("event");
        out.push(start.elapsed());
        assert_eq!(participant_sid(&ev), psid);
        let seq = seq_of(ev.id.as_deref().expect("id"));
        assert!(seq > last, "ids increase");
        last = seq;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_latency_through_redis_versus_in_process() {
    const COUNT: usize = 200;
    let single = support::spawn("").await;
    let mut local = fanout_latency(&single, &single, COUNT).await;
    let redis = RedisServer::start();
    let n = nodes(&redis, 2).await;
    let mut through = fanout_latency(&n[0], &n[1], COUNT).await;
    let (lp50, lp99) = percentiles(&mut local);
    let (rp50, rp99) = percentiles(&mut through);
    println!(
        "fan-out latency, webhook sent → SSE event received ({COUNT} events, debug build): \
         in-process p50 {lp50:?} p99 {lp99:?}; through redis (node A → node B) p50 {rp50:?} p99 {rp99:?}"
    );
    assert_eq!(local.len(), through.len());
}

fn bench_event(room: &str, n: usize) -> warden::event::Event {
    use warden::event::{Event, EventData, RoomInfo};
    Event {
        id: format!("EV_bench_{n}_{}", support::rand_hex()),
        event: "room_started".to_owned(),
        created_at_ms: 0,
        room_key: Some(room.to_owned()),
        order: None,
        data: EventData {
            room: Some(RoomInfo {
                sid: "RM_bench".to_owned(),
                name: room.to_owned(),
                ..RoomInfo::default()
            }),
            ..EventData::default()
        },
    }
}

fn subscribe(node: &TestServer) -> warden::hub::Subscription {
    subscribe_to(&node.state.hub)
}

fn subscribe_to(hub: &warden::hub::Hub) -> warden::hub::Subscription {
    hub.subscribe(warden::hub::SubscribeRequest {
        access: warden::hub::Access::All,
        rooms: Vec::new(),
        last_event_id: None,
        deadline_ms: None,
        now_ms: 0,
    })
}

/// Publish → frame in another subscriber's hands, without HTTP on either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_to_hub_latency_through_redis_versus_in_process() {
    use futures_util::StreamExt;
    const COUNT: usize = 500;
    let single = support::spawn("").await;
    let redis = RedisServer::start();
    let n = nodes(&redis, 2).await;
    let cluster = n[0].state.cluster.clone().expect("redis backend");
    let (mut local, mut durable, mut through) = (Vec::new(), Vec::new(), Vec::new());
    // In memory: the function call the Redis hop is compared with.
    let memory = warden::hub::Hub::new(warden::hub::HubSettings::from_config(&single.state.config));
    let mut sub = subscribe_to(&memory);
    let _snapshot = sub.next().await;
    for i in 0..COUNT {
        let start = Instant::now();
        let seq = memory.publish(bench_event("bench", i), 0).seq();
        let frame = sub.next().await.expect("frame").expect("bytes");
        local.push(start.elapsed());
        assert_eq!(seq, Some(i as u64 + 1));
        assert!(String::from_utf8_lossy(&frame).contains("EV_bench_"));
    }
    // One node's own hub: on disk (one fsync per event when they come one at a time) before it is visible.
    let mut sub = subscribe(&single);
    let _snapshot = sub.next().await;
    for i in 0..COUNT {
        let start = Instant::now();
        let published = single.state.hub.publish(bench_event("bench", i), 0);
        let frame = sub.next().await.expect("frame").expect("bytes");
        durable.push(start.elapsed());
        published.durable().await.expect("stored");
        assert!(String::from_utf8_lossy(&frame).contains("EV_bench_"));
    }
    let mut sub = subscribe(&n[1]);
    let _snapshot = sub.next().await;
    for i in 0..COUNT {
        let event = bench_event("bench", i);
        let start = Instant::now();
        let published = cluster
            .publish(&event, [i as u8; 16])
            .await
            .expect("queued");
        assert!(matches!(published, warden::cluster::Published::New(_)));
        let frame = tokio::time::timeout(T, sub.next())
            .await
            .expect("in time")
            .expect("frame");
        through.push(start.elapsed());
        assert!(String::from_utf8_lossy(&frame.expect("bytes")).contains(&event.id));
    }
    let (lp50, lp99) = percentiles(&mut local);
    let (dp50, dp99) = percentiles(&mut durable);
    let (rp50, rp99) = percentiles(&mut through);
    println!(
        "hub-to-hub latency ({COUNT} events, debug build): in memory p50 {lp50:?} p99 {lp99:?}; \
         one node's durable hub (SQLite, fsync) p50 {dp50:?} p99 {dp99:?}; \
         through redis (publish on A → frame on B) p50 {rp50:?} p99 {rp99:?}"
    );
    assert!(
        rp50 >= lp50,
        "a network hop cannot be faster than a function call"
    );
}
