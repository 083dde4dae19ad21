//! Serialise an event once and hand it to N subscribers.
//!
//! Each iteration publishes one event and polls every subscription once, as
//! the HTTP bodies would: the cost is one serialisation plus N cursor reads
//! (a refcount bump each), never N serialisations.

use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{Stream, StreamExt};
use warden::event::{Event, EventData, ParticipantInfo, RoomInfo};
use warden::hub::{Access, Hub, HubSettings, SubscribeRequest, Subscription};

fn settings() -> HubSettings {
    HubSettings {
        history_size: 10_000,
        client_queue_size: 1024,
        max_batch_size: 50,
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
        order: None,
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

/// Polls until the subscription would wait (as an HTTP body is polled), so
/// each delivery also pays for parking the waker; returns the bytes delivered.
fn poll_once(sub: &mut Subscription, cx: &mut Context<'_>) -> usize {
    let mut bytes = 0;
    while let Poll::Ready(Some(Ok(chunk))) = Pin::new(&mut *sub).poll_next(cx) {
        bytes += chunk.len();
    }
    bytes
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

/// One event to N subscribers, each a parked task on a 2-worker runtime:
/// the time from `publish` until every task has its bytes (wake-ups included).
fn parked_tasks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("one event to N parked subscriber tasks");
    group.sample_size(20);
    for n in [1usize, 10_000] {
        let hub = Hub::new(settings());
        let received = Arc::new(AtomicUsize::new(0));
        let all_done = Arc::new(tokio::sync::Notify::new());
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (received, all_done) = (Arc::clone(&received), Arc::clone(&all_done));
                let mut sub = runtime.block_on(async { hub.subscribe(request()) });
                runtime.spawn(async move {
                    sub.next().await; // the snapshot
                    while let Some(Ok(_)) = sub.next().await {
                        if received.fetch_add(1, Ordering::AcqRel) + 1 == n {
                            all_done.notify_one();
                        }
                    }
                })
            })
            .collect();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for i in 0..iters {
                    received.store(0, Ordering::Release);
                    let (hub, done) = (hub.clone(), Arc::clone(&all_done));
                    // Published from a worker, as the webhook handler does.
                    total += runtime
                        .block_on(runtime.spawn(async move {
                            let start = std::time::Instant::now();
                            hub.publish(event(i), 1_700_000_000_000);
                            done.notified().await;
                            start.elapsed()
                        }))
                        .expect("publisher task");
                }
                total
            })
        });
        hub.close();
        for task in tasks {
            let _ = runtime.block_on(task);
        }
    }
    group.finish();
}

fn request() -> SubscribeRequest {
    SubscribeRequest {
        access: Access::All,
        rooms: Vec::new(),
        last_event_id: None,
        deadline_ms: None,
        now_ms: 0,
    }
}

criterion_group!(benches, fan_out, parked_tasks);
criterion_main!(benches);
