//! Single-room subscribers wait on their room alone: woken by its frames
//! only, never cut for other rooms' traffic, still cut for their own lag.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::Stream;

use super::*;

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll(sub: &mut Subscription, waker: &Waker) -> Poll<Option<Bytes>> {
    let mut cx = Context::from_waker(waker);
    Pin::new(sub)
        .poll_next(&mut cx)
        .map(|o| o.map(|r| r.expect("infallible")))
}

/// A subscriber of room "a" only, past its snapshot.
fn in_room_a(hub: &Hub) -> Subscription {
    let mut sub = hub.subscribe(request(Access::All, &["a"], None));
    ready(&mut sub);
    sub
}

fn events(frames: &[Sse]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f.event.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_single_room_subscriber_is_woken_only_by_its_room() {
    let hub = Hub::new(settings(8, 4, 50));
    let mut sub = hub.subscribe(request(Access::All, &["a"], None));
    let mut all = hub.subscribe(request(Access::All, &[], None));
    ready(&mut sub);
    ready(&mut all);
    let count = Arc::new(Count::default());
    let waker = Waker::from(count.clone());
    assert!(poll(&mut sub, &waker).is_pending());
    // More than the history and the queue, all of another room.
    for i in 0..20 {
        hub.publish(joined("b", &format!("PA_b{i}")), NOW);
    }
    assert_eq!(count.0.load(Ordering::SeqCst), 0, "woken by another room");
    hub.publish(joined("a", "PA_a"), NOW);
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "not woken by its room");
    let Poll::Ready(Some(chunk)) = poll(&mut sub, &waker) else {
        panic!("its room's event is ready")
    };
    let frames = parse(&chunk);
    assert_eq!(
        events(&frames),
        ["participant_joined"],
        "no reset, no other room"
    );
    assert_eq!(seqs(&frames), [21]);
    assert!(poll(&mut sub, &waker).is_pending());
    // The unfiltered subscriber fell behind the history meanwhile: it is cut.
    assert_eq!(events(&drain(&mut all)), ["reset"]);
}

#[tokio::test]
async fn lag_counts_the_subscribers_own_room_only() {
    let hub = Hub::new(settings(100, 4, 50));
    let mut sub = in_room_a(&hub);
    assert!(is_pending(&mut sub));
    for i in 0..3 {
        hub.publish(joined("a", &format!("PA_a{i}")), NOW);
        for j in 0..20 {
            hub.publish(joined("b", &format!("PA_b{i}_{j}")), NOW);
        }
    }
    let frames = drain(&mut sub);
    assert_eq!(
        seqs(&frames),
        [1, 22, 43],
        "63 frames unread, 3 of its room"
    );
    for i in 0..5 {
        hub.publish(joined("a", &format!("PA_late{i}")), NOW);
    }
    assert_eq!(
        events(&drain(&mut sub)),
        ["reset"],
        "5 of its room behind a queue of 4"
    );
}

#[tokio::test]
async fn a_dropped_frame_of_its_room_is_a_reset_never_a_gap() {
    // The ring holds max(history, queue) = 4 frames.
    let hub = Hub::new(settings(4, 4, 50));
    let mut sub = in_room_a(&hub);
    assert!(is_pending(&mut sub));
    hub.publish(joined("a", "PA_a"), NOW);
    for i in 0..10 {
        hub.publish(joined("b", &format!("PA_b{i}")), NOW);
    }
    assert_eq!(events(&drain(&mut sub)), ["reset"]);
}

#[tokio::test]
async fn closing_wakes_single_room_subscribers_and_leaving_forgets_the_room() {
    let hub = Hub::new(settings(100, 100, 50));
    let mut sub = in_room_a(&hub);
    let count = Arc::new(Count::default());
    let waker = Waker::from(count.clone());
    assert!(poll(&mut sub, &waker).is_pending());
    hub.close();
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(matches!(poll(&mut sub, &waker), Poll::Ready(None)));
    drop(sub);
    assert_eq!(hub.shared.history.rooms_tracked(), 0);

    let hub = Hub::new(settings(100, 100, 50));
    for i in 0..100 {
        let mut sub = hub.subscribe(request(Access::All, &[&format!("room{i}")], None));
        ready(&mut sub);
        assert!(is_pending(&mut sub));
    }
    assert_eq!(
        hub.shared.history.rooms_tracked(),
        0,
        "churn leaves nothing"
    );
    let _a = hub.subscribe(request(Access::All, &["a"], None));
    let _b = hub.subscribe(request(Access::All, &["a"], None));
    assert_eq!(hub.shared.history.rooms_tracked(), 1);
}
