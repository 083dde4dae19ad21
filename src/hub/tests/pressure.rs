//! Slow consumers are cut, churn does not grow the hub, and what a subscriber costs.

use super::*;

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
        hub.shared.history.parked_slots() <= 100,
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
