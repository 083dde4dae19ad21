//! Resume from `Last-Event-ID`: exact replay, or reset and a fresh snapshot.

use super::*;

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
