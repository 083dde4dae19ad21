//! Serialise an event once and hand it to N subscribers.
//!
//! Each iteration publishes one event and polls every subscription once, as
//! the HTTP bodies would: the cost is one serialisation plus N cursor reads
//! (a refcount bump each), never N serialisations.

use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::Stream;
use warden::event::{Event, EventData, ParticipantInfo, RoomInfo};
use warden::hub::{Access, Hub, HubSettings, SubscribeRequest, Subscription};

fn settings() -> HubSettings {
    HubSettings {
        history_size: 10_000,
        client_queue_size: 1024,
        max_batch_size: 50,
        batch_interval: std::time::Duration::from_millis(100),
        heartbeat: std::time::Duration::from_secs(15),
        max_connection_age: std::time::Duration::from_secs(24 * 3600),
    }
}

fn event(i: u64) -> Event {
    Event {
        id: format!("EV_{i}"),
        event: "participant_joined".into(),
        created_at_ms: 1_700_000_000_000,
        room_key: Some("demo".into()),
        data: EventData {
            room: Some(RoomInfo {
                sid: "RM_demo".into(),
                name: "demo".into(),
                ..RoomInfo::default()
            }),
            participant: Some(ParticipantInfo {
                sid: format!("PA_{}", i % 64),
                identity: "3f2a9c1d".into(),
                name: "Alice".into(),
                state: "active",
                ..ParticipantInfo::default()
            }),
            ..EventData::default()
        },
    }
}

/// Polls once; returns the bytes delivered.
fn poll_once(sub: &mut Subscription, cx: &mut Context<'_>) -> usize {
    match Pin::new(sub).poll_next(cx) {
        Poll::Ready(Some(Ok(bytes))) => bytes.len(),
        _ => 0,
    }
}

fn fan_out(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _enter = runtime.enter();
    let mut cx = Context::from_waker(Waker::noop());
    let mut group = c.benchmark_group("serialise an event once for N subscribers");
    for n in [1usize, 1_000, 10_000] {
        let hub = Hub::new(settings());
        let mut subs: Vec<Subscription> = (0..n)
            .map(|_| {
                hub.subscribe(SubscribeRequest {
                    access: Access::All,
                    rooms: Vec::new(),
                    last_event_id: None,
                    deadline_ms: None,
                    now_ms: 0,
                })
            })
            .collect();
        for sub in &mut subs {
            poll_once(sub, &mut cx); // the snapshot
        }
        let mut i = 0u64;
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                hub.publish(event(i), 1_700_000_000_000);
                let mut bytes = 0;
                for sub in &mut subs {
                    bytes += poll_once(sub, &mut cx);
                }
                black_box(bytes)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
