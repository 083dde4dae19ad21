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

/// A join by `identity` as session `sid`, started at `joined_at_ms`.
fn session(sid: &str, identity: &str, joined_at_ms: i64) -> Event {
    let mut p = participant(sid);
    p.identity = identity.into();
    let mut e = event("participant_joined", Some("big"), Some(p), None);
    e.order = Some(crate::event::Order {
        joined_at_ms,
        version: 1,
    });
    e
}

fn sids(hub: &Hub) -> Vec<String> {
    rooms(hub)[0]["participants"]
        .as_array()
        .expect("participants")
        .iter()
        .map(|p| p["sid"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test]
async fn a_join_replaces_the_identitys_older_session_among_many() {
    let hub = Hub::new(settings(10_000, 100, 50));
    for i in 0..500 {
        hub.publish(session(&format!("PA_{i:03}"), &format!("id{i}"), 1000), NOW);
    }
    // id7 reconnects: its old session goes, nobody else's.
    hub.publish(session("PA_new7", "id7", 2000), NOW);
    let held = sids(&hub);
    assert_eq!(held.len(), 500);
    assert!(held.contains(&"PA_new7".to_owned()) && !held.contains(&"PA_007".to_owned()));
    // An older session of id7 arriving late does not push out the newer one.
    hub.publish(session("PA_old7", "id7", 500), NOW);
    assert!(sids(&hub).contains(&"PA_new7".to_owned()));
    // The session that left no longer counts: id7's next session replaces
    // only what is held (both sessions the index knew of are checked).
    hub.publish(session("PA_third7", "id7", 3000), NOW);
    let held = sids(&hub);
    assert!(held.contains(&"PA_third7".to_owned()));
    assert!(!held.contains(&"PA_new7".to_owned()) && !held.contains(&"PA_old7".to_owned()));
    assert_eq!(held.len(), 500, "{held:?}");
}
