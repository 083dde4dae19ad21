//! Heartbeat, token expiry, maximum age and shutdown (tokio time paused where timed).

use super::*;

#[tokio::test(start_paused = true)]
async fn heartbeat_after_silence_and_not_while_events_flow() {
    let hub = Hub::new(settings(100, 100, 50));
    let mut sub = hub.subscribe(request(Access::All, &[], None));
    ready(&mut sub);
    let start = tokio::time::Instant::now();
    let ping = sub.next().await.expect("a ping").expect("infallible");
    assert_eq!(&ping[..], b": ping\n\n");
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(15),
        "one heartbeat after connecting"
    );

    // An event every 10 s: no window is silent, so no ping.
    for i in 0..6 {
        tokio::time::advance(Duration::from_secs(10)).await;
        hub.publish(joined("demo", &format!("PA_{i}")), NOW);
        let chunk = sub.next().await.expect("chunk").expect("infallible");
        assert_eq!(
            seqs(&parse(&chunk)),
            [i + 1],
            "events only, no ping in between"
        );
    }
    let after_event = tokio::time::Instant::now();
    let ping = sub.next().await.expect("a ping").expect("infallible");
    assert!(parse(&ping)[0].comment);
    let silent = after_event.elapsed();
    assert!(
        silent >= Duration::from_secs(15) && silent <= Duration::from_secs(30),
        "a ping follows the last event after one to two heartbeats: {silent:?}"
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
