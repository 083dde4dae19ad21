//! Redis losing its data under a running cluster (issue #25): a node that
//! was behind (paused with SIGSTOP, as a VM pause or a starved CPU would)
//! publishes first into a Redis that restarted empty. No acknowledged event
//! may vanish from a client without that client being told (`event:
//! reset`), no SSE id may name two events, and a node started afterwards
//! must hash identities as the others do. The nodes that are paused run as
//! real `warden serve` processes.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::server::RedisServer;
use super::{T, joined, participant_sid, sid};
use crate::support::{self, Binary, Served, Sse, SseEvent};

/// `kill -<signal> <pid>`.
fn signal(node: &Served, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &node.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal}");
}

/// A `warden serve` process on `redis`, with its key file in `shared`.
fn serve(redis: &RedisServer, shared: &Path) -> (Binary, Served) {
    let bin = Binary::new();
    bin.write_config(&format!(
        "storage: {{backend: redis, redis_url: \"{}\"}}\nlivekit: {{keys_file: \"{}\"}}\n",
        redis.url(),
        shared.join("keys.yaml").display()
    ));
    let served = bin.serve(&[]);
    (bin, served)
}

async fn watch(base: &str, headers: &[(&str, &str)]) -> Sse {
    let sse = Sse::open(
        &format!("{base}/api/events"),
        Some(&support::list_token()),
        headers,
    )
    .await;
    assert_eq!(sse.status, 200, "{}", sse.body);
    sse
}

/// Events until every one of `acked` has come, or a reset has (with the
/// snapshot that follows it in the same stream), or nothing for `T`.
async fn until_all_or_reset(sse: &mut Sse, acked: &[String]) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while !acked.iter().all(|a| sids(&out).contains(a)) {
        let Some(ev) = sse.next(T).await else { break };
        let reset = ev.event == "reset";
        out.push(ev);
        if reset {
            out.push(sse.next(T).await.expect("a snapshot follows the reset"));
            break;
        }
    }
    out
}

/// Asserts that `events` hold a `history_lost` reset followed by a snapshot.
fn assert_history_lost(name: &str, events: &[SseEvent]) {
    let at = events.iter().position(|e| e.event == "reset");
    let at = at.unwrap_or_else(|| panic!("{name}: no reset in {events:?}"));
    assert_eq!(events[at].json()["reason"], "history_lost", "{name}");
    let next = events.get(at + 1).map(|e| e.event.as_str());
    assert_eq!(next, Some("snapshot"), "{name}: {events:?}");
}

/// What one SSE id named, checked across every client of every node.
#[derive(Default)]
struct Ids(HashMap<String, String>);

impl Ids {
    fn saw(&mut self, events: &[SseEvent]) {
        for ev in events.iter().filter(|e| e.event == "participant_joined") {
            let id = ev.id.clone().expect("an event has an id");
            let what = participant_sid(ev);
            let before = self.0.entry(id.clone()).or_insert_with(|| what.clone());
            assert_eq!(*before, what, "SSE id {id} names two events");
        }
    }
}

fn sids(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "participant_joined")
        .map(participant_sid)
        .collect()
}

fn identity(ev: &SseEvent) -> String {
    ev.json()["data"]["participant"]["identity"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn metric(base: &str, name: &str) -> u64 {
    let text = support::client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_publishing_first_into_an_emptied_redis_reuses_no_id_and_loses_nothing_silently()
 {
    let mut redis = RedisServer::start();
    let shared = tempfile::tempdir().expect("tempdir");
    let (_a_dir, a) = serve(&redis, shared.path());
    let (_b_dir, b) = serve(&redis, shared.path());
    let (mut on_a, mut on_b) = (watch(&a.url, &[]).await, watch(&b.url, &[]).await);
    for sse in [&mut on_a, &mut on_b] {
        assert_eq!(sse.next(T).await.expect("snapshot").event, "snapshot");
    }
    let room = sid("room-");
    let mut acked = vec![sid("PA_")];
    assert_eq!(
        support::deliver(&a.url, &joined(&room, &acked[0])).await,
        200
    );
    let first_a = on_a.next(T).await.expect("first event on A");
    let first_b = on_b.next(T).await.expect("first event on B");
    assert_eq!(first_a.id, first_b.id);
    let old_id = first_a.id.clone().expect("id");

    // B stops reading; A takes three more events that B never sees.
    signal(&b, "-STOP");
    for _ in 0..3 {
        let psid = sid("PA_");
        assert_eq!(support::deliver(&a.url, &joined(&room, &psid)).await, 200);
        acked.push(psid);
    }
    // A pauses too, so that B — behind — is the first to reach the emptied Redis.
    signal(&a, "-STOP");
    redis.restart();
    signal(&b, "-CONT");
    let late = sid("PA_");
    assert!(
        deliver_until_accepted_at(&b.url, &joined(&room, &late)).await,
        "B accepts a webhook once Redis is back"
    );
    acked.push(late.clone());
    signal(&a, "-CONT");

    // Each client has every acknowledged event, or a reset (and a fresh snapshot).
    let mut ids = Ids::default();
    for (name, mut events) in [("A", vec![first_a.clone()]), ("B", vec![first_b.clone()])] {
        let sse = if name == "A" { &mut on_a } else { &mut on_b };
        events.extend(until_all_or_reset(sse, &acked).await);
        ids.saw(&events);
        let got = sids(&events);
        if acked.iter().any(|s| !got.contains(s)) {
            assert_history_lost(name, &events);
        }
    }

    // A client that reconnects with its last id: a reset and a fresh snapshot.
    let mut again = Vec::new();
    for base in [&a.url, &b.url] {
        let mut sse = watch(base, &[("last-event-id", &old_id)]).await;
        let reset = sse.next(T).await.expect("reset");
        assert_eq!(reset.event, "reset", "{reset:?}");
        let snapshot = sse.next(T).await.expect("snapshot");
        assert_eq!(snapshot.event, "snapshot");
        assert!(snapshot.data.contains(&late), "{}", snapshot.data);
        again.push(sse);
    }
    // The streams that were reset go on, as do the new ones: the same ids on
    // both nodes, none of them naming an earlier event.
    let more = [sid("PA_"), sid("PA_")];
    assert_eq!(
        support::deliver(&a.url, &joined(&room, &more[0])).await,
        200
    );
    assert_eq!(
        support::deliver(&b.url, &joined(&room, &more[1])).await,
        200
    );
    let mut seen = Vec::new();
    for sse in [&mut on_a, &mut on_b].into_iter().chain(&mut again) {
        let mut events = Vec::new();
        while events.len() < 2 {
            let ev = sse
                .next_named("participant_joined", T)
                .await
                .expect("event");
            if participant_sid(&ev) != late {
                events.push(ev);
            }
        }
        assert_eq!(sids(&events), more, "in order on every node");
        ids.saw(&events);
        seen.push(events);
    }
    assert!(
        seen.iter().all(|e| e[0].id == seen[0][0].id),
        "one id on every node"
    );
    assert!(seen[0][0].id != Some(old_id.clone()));

    // A node started after the loss hashes identities as the others did before it.
    let c = support::spawn(&format!(
        "storage: {{backend: redis, redis_url: \"{}\"}}\nlivekit: {{keys_file: \"{}\"}}\n",
        redis.url(),
        shared.path().join("keys.yaml").display()
    ))
    .await;
    let mut on_c = watch(&c.url, &[]).await;
    assert_eq!(on_c.next(T).await.expect("snapshot").event, "snapshot");
    let from_c = sid("PA_");
    assert_eq!(support::deliver(&c.url, &joined(&room, &from_c)).await, 200);
    let on_c_event = on_c.next(T).await.expect("C's event");
    assert_eq!(participant_sid(&on_c_event), from_c);
    let hashes = [
        identity(&first_a),
        identity(&first_b),
        identity(&seen[1][1]),
        identity(&on_c_event),
    ];
    assert!(hashes[0].len() == 8, "{hashes:?}");
    assert!(
        hashes.iter().all(|h| *h == hashes[0]),
        "one identity, one hash on every node: {hashes:?}"
    );
    ids.saw(&[on_c_event]);

    // Counted: one epoch change on each node, and the loss seen by at least one.
    for node in [&a, &b] {
        assert_eq!(
            metric(&node.url, "warden_cluster_epoch_changes_total").await,
            1,
            "{}",
            node.url
        );
    }
    let lost = metric(&a.url, "warden_cluster_data_loss_total").await
        + metric(&b.url, "warden_cluster_data_loss_total").await;
    assert!(lost >= 1, "the data loss is counted");
}

async fn deliver_until_accepted_at(base: &str, body: &[u8]) -> bool {
    super::eventually(Duration::from_secs(10), || async {
        support::deliver(base, body).await == 200
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_after_redis_lost_everything_and_every_node_stopped_hashes_alike() {
    let mut redis = RedisServer::start();
    let shared = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "storage: {{backend: redis, redis_url: \"{}\"}}\nlivekit: {{keys_file: \"{}\"}}\n",
        redis.url(),
        shared.path().join("keys.yaml").display()
    );
    let a = support::spawn(&yaml).await;
    let before = a.state.pepper.hash_identity("alice@example.com");
    let own = std::fs::read_to_string(a.dir.path().join("data/pepper")).expect("A's own copy");
    let beside = std::fs::read_to_string(shared.path().join("keys.yaml.pepper")).expect("shared");
    assert_eq!(own.trim(), beside.trim(), "A keeps the cluster's pepper");
    a.stop().await;

    // Nothing left running, nothing in Redis: only the files remember.
    redis.restart();
    let c = support::spawn(&yaml).await;
    assert_eq!(c.state.pepper.hash_identity("alice@example.com"), before);
    let own = std::fs::read_to_string(c.dir.path().join("data/pepper")).expect("C's own copy");
    assert_eq!(own.trim(), beside.trim(), "C's data directory has it too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_aof_always_a_redis_crash_loses_nothing_and_resets_no_stream() {
    let mut redis = RedisServer::start_persistent(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ]);
    let n = super::nodes(&redis, 2).await;
    let (a, b) = (&n[0], &n[1]);
    let epoch = a.state.hub.epoch();
    let mut on_b = super::events(b, &[]).await;
    assert_eq!(on_b.next(T).await.expect("snapshot").event, "snapshot");
    let room = sid("room-");
    let mut last_id = String::new();
    for _ in 0..3 {
        assert_eq!(
            support::deliver(&a.url, &joined(&room, &sid("PA_"))).await,
            200
        );
        last_id = on_b.next(T).await.expect("event").id.expect("id");
    }

    redis.kill();
    redis.restart();
    let after = [sid("PA_"), sid("PA_"), sid("PA_")];
    for (i, psid) in after.iter().enumerate() {
        let node = if i % 2 == 0 { a } else { b };
        assert!(deliver_until_accepted_at(&node.url, &joined(&room, psid)).await);
    }
    // Long enough for each reader's idle check to have looked at Redis.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut resumed = super::events(a, &[("last-event-id", &last_id)]).await;
    let mut seq = super::seq_of(&last_id);
    for psid in &after {
        seq += 1;
        for (name, sse) in [("open on B", &mut on_b), ("resumed on A", &mut resumed)] {
            let ev = sse.next(T).await.expect("event");
            assert_eq!(ev.event, "participant_joined", "{name}: no reset: {ev:?}");
            assert_eq!(&participant_sid(&ev), psid, "{name}");
            assert_eq!(
                ev.id,
                Some(format!("{epoch}-{seq}")),
                "{name}: same epoch, next seq"
            );
        }
    }
    for node in [a, b] {
        assert_eq!(node.state.hub.epoch(), epoch);
        assert_eq!(
            metric(&node.url, "warden_cluster_epoch_changes_total").await,
            0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_back_with_an_older_snapshot_moves_the_cluster_on_before_a_seq_is_reused() {
    // RDB only, saved by hand: a restart comes back to the last SAVE.
    let mut redis = RedisServer::start_persistent(&["--save", "", "--appendonly", "no"]);
    let n = super::nodes(&redis, 2).await;
    let (a, b) = (&n[0], &n[1]);
    let epoch = a.state.hub.epoch();
    let mut on_a = super::events(a, &[]).await;
    let mut on_b = super::events(b, &[]).await;
    for sse in [&mut on_a, &mut on_b] {
        assert_eq!(sse.next(T).await.expect("snapshot").event, "snapshot");
    }
    let room = sid("room-");
    let mut ids = Ids::default();
    let mut seen = [Vec::new(), Vec::new()];
    for i in 0..4 {
        if i == 2 {
            redis.save();
        }
        assert_eq!(
            support::deliver(&a.url, &joined(&room, &sid("PA_"))).await,
            200
        );
        for (k, sse) in [&mut on_a, &mut on_b].into_iter().enumerate() {
            seen[k].push(sse.next(T).await.expect("event"));
        }
    }
    // Back at seq 2 with the same epoch: seqs 3 and 4 would be issued again.
    redis.kill();
    redis.restart();
    let late = sid("PA_");
    assert!(deliver_until_accepted_at(&b.url, &joined(&room, &late)).await);
    for (k, sse) in [&mut on_a, &mut on_b].into_iter().enumerate() {
        seen[k].extend(until_all_or_reset(sse, std::slice::from_ref(&late)).await);
        ids.saw(&seen[k]);
        assert_history_lost(if k == 0 { "A" } else { "B" }, &seen[k]);
    }
    let moved = a.state.hub.epoch();
    assert_ne!(moved, epoch, "a new epoch");
    let applied = super::eventually(T, || async { b.state.hub.position() == (moved.clone(), 1) });
    assert!(applied.await, "B applies the late event in the new epoch");
    let mut fresh = super::events(b, &[]).await;
    let snapshot = fresh.next(T).await.expect("snapshot");
    assert!(snapshot.data.contains(&late), "{}", snapshot.data);
    assert_eq!(snapshot.id, Some(format!("{moved}-1")));
    let lost = metric(&a.url, "warden_cluster_data_loss_total").await
        + metric(&b.url, "warden_cluster_data_loss_total").await;
    assert!(lost >= 1, "the data loss is counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_read_twice_with_other_content_is_counted_and_moves_the_cluster_on() {
    // The case no node can see at once (README, Multi-node): Redis back at
    // an older snapshot, and a node that was behind even that publishing
    // before the node ahead reconnects. The node ahead then reads seqs it
    // already sent with other events: never dropped in silence.
    let mut redis = RedisServer::start_persistent(&["--save", "", "--appendonly", "no"]);
    let shared = tempfile::tempdir().expect("tempdir");
    let (_a_dir, a) = serve(&redis, shared.path());
    let (_b_dir, b) = serve(&redis, shared.path());
    let (mut on_a, mut on_b) = (watch(&a.url, &[]).await, watch(&b.url, &[]).await);
    for sse in [&mut on_a, &mut on_b] {
        assert_eq!(sse.next(T).await.expect("snapshot").event, "snapshot");
    }
    let room = sid("room-");
    assert_eq!(
        support::deliver(&a.url, &joined(&room, &sid("PA_"))).await,
        200
    );
    for sse in [&mut on_a, &mut on_b] {
        assert_eq!(sse.next(T).await.expect("e1").event, "participant_joined");
    }
    signal(&b, "-STOP");
    assert_eq!(
        support::deliver(&a.url, &joined(&room, &sid("PA_"))).await,
        200
    );
    redis.save();
    for _ in 0..2 {
        assert_eq!(
            support::deliver(&a.url, &joined(&room, &sid("PA_"))).await,
            200
        );
    }
    signal(&a, "-STOP");
    redis.kill();
    redis.restart();
    signal(&b, "-CONT");
    for _ in 0..2 {
        assert!(deliver_until_accepted_at(&b.url, &joined(&room, &sid("PA_"))).await);
    }
    signal(&a, "-CONT");
    let never = [String::from("none")];
    for (name, sse) in [("A", &mut on_a), ("B", &mut on_b)] {
        assert_history_lost(name, &until_all_or_reset(sse, &never).await);
    }
    assert!(metric(&a.url, "warden_cluster_seq_conflicts_total").await >= 1);
    let text = support::client()
        .get(format!("{}/metrics", a.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        text.contains("warden_cluster_data_loss_total{cause=\"seq_conflict\"} 1"),
        "{text}"
    );
}
