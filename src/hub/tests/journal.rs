//! The journal's rows: a join writes one participant row, not the whole
//! room; rows written before the split are read and rewritten split; a new
//! incarnation of a sid leaves no row of the old one behind.

use rusqlite::Connection;

use super::*;

fn joined_as(room_name: &str, sid: &str, identity: &str) -> Event {
    let mut e = joined(room_name, sid);
    if let Some(p) = &mut e.data.participant {
        p.identity = identity.to_owned();
    }
    e
}

async fn publish_all(hub: &Hub, events: Vec<Event>) {
    for e in events {
        hub.publish(e, NOW).durable().await.expect("stored");
    }
}

fn rooms_json(hub: &Hub) -> Value {
    hub.snapshot_json(&Access::All, &[])
}

fn count(db: &Connection, table: &str) -> i64 {
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

fn room_row_len(db: &Connection, sid: &str) -> usize {
    db.query_row(
        "SELECT length(state) FROM hub_rooms WHERE sid = ?1",
        [sid],
        |r| r.get::<_, i64>(0),
    )
    .expect("room row") as usize
}

#[tokio::test]
async fn a_join_writes_its_own_row_and_the_room_row_stays_small() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.db");
    let hub = Hub::durable(settings(64, 64, 16), &path, None).expect("open");
    let joins = (0..300).map(|i| joined_as("big", &format!("PA_{i}"), &format!("id{i}")));
    publish_all(&hub, joins.collect()).await;
    let db = Connection::open(&path).expect("db");
    assert_eq!(count(&db, "hub_participants"), 300);
    let small = room_row_len(&db, "RM_big");
    assert!(
        small < 512,
        "the room row holds no participant: {small} bytes"
    );

    // One more join adds one participant row, and the room row stays as small.
    publish_all(&hub, vec![joined_as("big", "PA_new", "idnew")]).await;
    assert_eq!(count(&db, "hub_participants"), 301);
    assert_eq!(room_row_len(&db, "RM_big"), small);

    // A leave deletes its row; the restart shows the same state.
    let mut left = joined_as("big", "PA_7", "id7");
    left.event = "participant_left".into();
    publish_all(&hub, vec![left]).await;
    assert_eq!(count(&db, "hub_participants"), 300);
    let shown = rooms_json(&hub);
    hub.close();
    drop(hub);
    let again = Hub::durable(settings(64, 64, 16), &path, None).expect("reopen");
    assert_eq!(rooms_json(&again), shown);
    assert_eq!(shown["rooms"][0]["num_participants"], 300);
}

#[tokio::test]
async fn a_room_row_that_still_holds_its_participants_is_read_and_split() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.db");
    let shown = {
        let hub = Hub::durable(settings(64, 64, 16), &path, None).expect("open");
        let joins = (0..3).map(|i| joined_as("old", &format!("PA_{i}"), &format!("id{i}")));
        publish_all(&hub, joins.collect()).await;
        let shown = rooms_json(&hub);
        hub.close();
        shown
    };
    // Rewrite the database as a version before participant rows left it:
    // the participants inside the room row, no participant table.
    {
        let db = Connection::open(&path).expect("db");
        let mut rows = db
            .prepare("SELECT state FROM hub_participants ORDER BY sid")
            .expect("prepare");
        let parts: Vec<Value> = rows
            .query_map([], |r| r.get::<_, String>(0))
            .expect("rows")
            .map(|r| serde_json::from_str(&r.expect("row")).expect("json"))
            .collect();
        drop(rows);
        let state: String = db
            .query_row("SELECT state FROM hub_rooms", [], |r| r.get(0))
            .expect("room");
        let mut room: Value = serde_json::from_str(&state).expect("room json");
        let (mut participants, mut order) = (serde_json::Map::new(), serde_json::Map::new());
        for p in parts {
            let sid = p["info"]["sid"].as_str().expect("sid").to_owned();
            participants.insert(sid.clone(), p["info"].clone());
            if !p["order"].is_null() {
                order.insert(sid, p["order"].clone());
            }
        }
        room["participants"] = Value::Object(participants);
        room["order"] = Value::Object(order);
        db.execute("UPDATE hub_rooms SET state = ?1", [room.to_string()])
            .expect("legacy row");
        db.execute_batch("DROP TABLE hub_participants")
            .expect("drop");
    }
    let hub = Hub::durable(settings(64, 64, 16), &path, None).expect("reopen");
    assert_eq!(rooms_json(&hub), shown, "the old row is read whole");
    // The next write splits it: the room row loses its participants to their rows.
    publish_all(&hub, vec![joined_as("other", "PA_x", "idx")]).await;
    let db = Connection::open(&path).expect("db");
    assert_eq!(count(&db, "hub_participants"), 4);
    let old: String = db
        .query_row(
            "SELECT state FROM hub_rooms WHERE sid = 'RM_old'",
            [],
            |r| r.get(0),
        )
        .expect("room");
    assert!(!old.contains("PA_0"), "{old}");
    hub.close();
    drop(hub);
    let again = Hub::durable(settings(64, 64, 16), &path, None).expect("reopen");
    let rooms = rooms_json(&again);
    assert_eq!(rooms["rooms"][0]["sid"], "RM_old", "{rooms}");
    assert_eq!(rooms["rooms"][0]["num_participants"], 3, "{rooms}");
}

#[tokio::test]
async fn a_new_incarnation_of_a_sid_keeps_no_participant_of_the_old_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warden.db");
    let hub = Hub::durable(settings(64, 64, 16), &path, None).expect("open");
    publish_all(
        &hub,
        vec![joined_as("r", "PA_1", "a"), joined_as("r", "PA_2", "b")],
    )
    .await;
    // Finished and started again under the same sid, all in one group.
    let finished = event("room_finished", Some("r"), None, None);
    let p1 = hub.publish(finished, NOW);
    let p2 = hub.publish(joined_as("r", "PA_3", "c"), NOW);
    p1.durable().await.expect("stored");
    p2.durable().await.expect("stored");
    let db = Connection::open(&path).expect("db");
    let sids: Vec<String> = db
        .prepare("SELECT sid FROM hub_participants")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(sids, vec!["PA_3".to_owned()]);
    let shown = rooms_json(&hub);
    hub.close();
    drop(hub);
    let again = Hub::durable(settings(64, 64, 16), &path, None).expect("reopen");
    assert_eq!(rooms_json(&again), shown);
}
