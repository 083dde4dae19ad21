//! The room snapshot follows the events, idempotently.

use super::*;
use crate::event::IngressInfo;

fn rooms(hub: &Hub) -> Vec<Value> {
    hub.snapshot_json(&Access::All, &[])["rooms"]
        .as_array()
        .expect("rooms")
        .clone()
}

#[tokio::test]
async fn joins_leaves_tracks_and_room_finished_shape_the_snapshot() {
    let hub = Hub::new(settings(100, 100, 50));
    hub.publish(event("room_started", Some("demo"), None, None), NOW);
    hub.publish(joined("demo", "PA_1"), NOW);
    hub.publish(joined("demo", "PA_2"), NOW);
    let t1 = event(
        "track_published",
        Some("demo"),
        Some(participant("PA_1")),
        Some(track("TR_1")),
    );
    hub.publish(t1.clone(), NOW);
    hub.publish(t1, NOW); // a repeat changes nothing
    let mut muted = track("TR_1");
    muted.muted = true;
    hub.publish(
        event(
            "track_published",
            Some("demo"),
            Some(participant("PA_1")),
            Some(muted),
        ),
        NOW,
    );
    hub.publish(
        event(
            "track_published",
            Some("demo"),
            Some(participant("PA_1")),
            Some(track("TR_2")),
        ),
        NOW,
    );
    let r = rooms(&hub);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["sid"], "RM_demo");
    assert_eq!(r[0]["num_participants"], 2);
    let p1 = &r[0]["participants"][0];
    assert_eq!(p1["sid"], "PA_1");
    assert_eq!(p1["identity"], "3f2a9c1d");
    assert_eq!(p1["state"], "active");
    assert_eq!(p1["tracks"].as_array().map(Vec::len), Some(2));
    assert_eq!(p1["tracks"][0]["muted"], true);
    assert_eq!(r[0]["participants"][1]["tracks"], serde_json::json!([]));

    hub.publish(
        event(
            "track_unpublished",
            Some("demo"),
            Some(participant("PA_1")),
            Some(track("TR_1")),
        ),
        NOW,
    );
    // A later participant event without tracks keeps the known ones.
    hub.publish(joined("demo", "PA_1"), NOW);
    let r = rooms(&hub);
    assert_eq!(r[0]["participants"][0]["tracks"][0]["sid"], "TR_2");
    assert_eq!(
        r[0]["participants"][0]["tracks"].as_array().map(Vec::len),
        Some(1)
    );

    hub.publish(
        event(
            "participant_left",
            Some("demo"),
            Some(participant("PA_2")),
            None,
        ),
        NOW,
    );
    hub.publish(
        event(
            "participant_connection_aborted",
            Some("demo"),
            Some(participant("PA_1")),
            None,
        ),
        NOW,
    );
    assert_eq!(rooms(&hub)[0]["num_participants"], 0);

    hub.publish(joined("other", "PA_9"), NOW);
    hub.publish(event("room_finished", Some("demo"), None, None), NOW);
    let r = rooms(&hub);
    assert_eq!(
        r.len(),
        1,
        "room_finished removed demo and its participants"
    );
    assert_eq!(r[0]["name"], "other");
    assert_eq!(hub.stats().rooms, 1);
}

#[tokio::test]
async fn missed_events_do_not_corrupt_the_state() {
    let hub = Hub::new(settings(100, 100, 50));
    // A track for a room and participant never announced creates both.
    hub.publish(
        event(
            "track_published",
            Some("late"),
            Some(participant("PA_1")),
            Some(track("TR_1")),
        ),
        NOW,
    );
    // Removals of unknown things are no-ops and create nothing.
    hub.publish(
        event(
            "participant_left",
            Some("ghost"),
            Some(participant("PA_x")),
            None,
        ),
        NOW,
    );
    hub.publish(
        event(
            "track_unpublished",
            Some("late"),
            Some(participant("PA_y")),
            Some(track("TR_1")),
        ),
        NOW,
    );
    hub.publish(event("room_finished", Some("never"), None, None), NOW);
    let r = rooms(&hub);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["participants"][0]["tracks"][0]["sid"], "TR_1");
}

#[tokio::test]
async fn egress_and_ingress_status_follow_their_events() {
    let hub = Hub::new(settings(100, 100, 50));
    let mut started = event("egress_started", Some("demo"), None, None);
    started.data.egress = Some(EgressInfo {
        id: "EG_1".into(),
        status: "starting",
    });
    hub.publish(started, NOW);
    let mut ingress = event("ingress_started", Some("demo"), None, None);
    ingress.data.ingress = Some(IngressInfo {
        id: "IN_1".into(),
        state: "publishing",
    });
    hub.publish(ingress, NOW);
    // An update without a room still finds the egress.
    hub.publish(egress_without_room(), NOW);
    let r = rooms(&hub);
    assert_eq!(
        r[0]["egress"],
        serde_json::json!([{"id": "EG_1", "status": "active"}])
    );
    assert_eq!(
        r[0]["ingress"],
        serde_json::json!([{"id": "IN_1", "state": "publishing"}])
    );

    let mut ended = event("egress_ended", None, None, None);
    ended.data.egress = Some(EgressInfo {
        id: "EG_1".into(),
        status: "complete",
    });
    hub.publish(ended, NOW);
    let mut gone = event("ingress_ended", Some("demo"), None, None);
    gone.data.ingress = Some(IngressInfo {
        id: "IN_1".into(),
        state: "complete",
    });
    hub.publish(gone, NOW);
    let r = rooms(&hub);
    assert_eq!(r[0]["egress"], serde_json::json!([]));
    assert_eq!(r[0]["ingress"], serde_json::json!([]));
}

#[tokio::test]
async fn rooms_scoped_access_sees_only_its_rooms_in_the_snapshot_json() {
    let hub = Hub::new(settings(100, 100, 50));
    hub.publish(joined("a", "PA_1"), NOW);
    hub.publish(joined("b", "PA_2"), NOW);
    let seen = hub.snapshot_json(&Access::Rooms(vec!["b".into()]), &[]);
    assert_eq!(seen["rooms"].as_array().map(Vec::len), Some(1));
    assert_eq!(seen["rooms"][0]["participants"][0]["sid"], "PA_2");
    let none = hub.snapshot_json(&Access::Rooms(vec!["b".into()]), &["a".into()]);
    assert_eq!(none["rooms"], serde_json::json!([]));
}
