//! Reconciliation: the hub's rooms ([`Hub::held_rooms`]) compared with
//! LiveKit's answer ([`LiveState`], [`LiveAgents`]), each difference made a
//! `reconciled` event, and the loops that do it on one node or on the
//! cluster's lease holder (see the module docs of [`crate::livekit`]).
//!
//! A change describes the room, participant or job with the same builders as
//! a webhook's (`webhook::normalize`), so it is sanitised and its identity
//! hashed exactly alike.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{LiveAgents, LiveState, RoomService};
use crate::cluster::{Cluster, LEASE_RENEW};
use crate::event::{Event, EventData, JobInfo, ParticipantInfo};
use crate::hub::Hub;
use crate::webhook::decode::{WireJob, WireParticipant, WireRoom};
use crate::webhook::normalize::{self, Identities};

/// One `reconciled` event about `room` (and a participant or a job in it).
/// Its id is `RC_<now>_<the job's id, else the participant's sid, else the
/// room's sid>`. LiveKit's answer now is the authority: it carries no order
/// to check against the events held.
fn reconciled(
    change: &'static str,
    room: &WireRoom,
    participant: Option<ParticipantInfo>,
    job: Option<JobInfo>,
    now_ms: i64,
) -> Event {
    let room_info = normalize::room(room);
    let about = job
        .as_ref()
        .map(|j| j.id.clone())
        .or_else(|| participant.as_ref().map(|p| p.sid.clone()))
        .unwrap_or_else(|| room_info.sid.clone());
    Event {
        id: format!("RC_{now_ms}_{about}"),
        event: "reconciled".to_owned(),
        created_at_ms: 0,
        room_key: room.name.clone(),
        order: None,
        data: EventData {
            room: Some(room_info),
            participant,
            job,
            change: Some(change),
            ..EventData::default()
        },
    }
}

/// The `reconciled` events that bring the hub's rooms and participants to
/// LiveKit's view: rooms and participants LiveKit lists that the hub does not
/// hold are added, those the hub holds that LiveKit no longer lists removed.
pub fn changes(hub: &Hub, identities: &Identities, live: &LiveState, now_ms: i64) -> Vec<Event> {
    let ours = hub.held_rooms();
    let mut out = Vec::new();
    let live_sids: BTreeSet<&str> = live.iter().filter_map(|(r, _)| r.sid.as_deref()).collect();
    for (room, participants) in live {
        let Some(sid) = room.sid.as_deref() else {
            continue;
        };
        let known = ours.get(sid).map(|h| &h.participants);
        if known.is_none() {
            out.push(reconciled("room_added", room, None, None, now_ms));
        }
        let live_p: BTreeSet<&str> = participants
            .iter()
            .filter_map(|p| p.sid.as_deref())
            .collect();
        for p in participants {
            if !known.is_some_and(|k| p.sid.as_deref().is_some_and(|s| k.contains(s))) {
                let info = normalize::participant(p, identities);
                out.push(reconciled(
                    "participant_added",
                    room,
                    Some(info),
                    None,
                    now_ms,
                ));
            }
        }
        for gone in known
            .into_iter()
            .flatten()
            .filter(|s| !live_p.contains(s.as_str()))
        {
            // Described as LiveKit would a participant it knows only by sid.
            let ghost = WireParticipant {
                sid: Some(gone.clone()),
                identity: Some(String::new()),
                ..WireParticipant::default()
            };
            let info = normalize::participant(&ghost, identities);
            out.push(reconciled(
                "participant_removed",
                room,
                Some(info),
                None,
                now_ms,
            ));
        }
    }
    for held in ours
        .values()
        .filter(|h| !live_sids.contains(h.sid.as_str()))
    {
        // Described as LiveKit would a room it knows only by sid and name.
        let ghost = WireRoom {
            sid: Some(held.sid.clone()),
            name: Some(held.name.clone()),
            ..WireRoom::default()
        };
        out.push(reconciled("room_removed", &ghost, None, None, now_ms));
    }
    out
}

/// The `reconciled` events that bring the rooms' running agent jobs to
/// LiveKit's view: a pending or running job we do not hold is added, a job we
/// hold that LiveKit no longer runs is removed.
pub fn agent_changes(
    hub: &Hub,
    identities: &Identities,
    live: &LiveAgents,
    now_ms: i64,
) -> Vec<Event> {
    let ours = hub.held_rooms();
    let mut out = Vec::new();
    for (room, jobs) in live {
        let Some(sid) = room.sid.as_deref() else {
            continue;
        };
        let held = ours.get(sid).map(|h| &h.agents);
        let mut running = BTreeSet::new();
        for job in jobs {
            let info = normalize::job_info(job, identities);
            if !matches!(info.status, "pending" | "running") {
                continue;
            }
            running.insert(info.id.clone());
            if !held.is_some_and(|h| h.contains(&info.id)) {
                let participant = job
                    .participant
                    .as_ref()
                    .map(|p| normalize::participant(p, identities));
                out.push(reconciled(
                    "agent_added",
                    room,
                    participant,
                    Some(info),
                    now_ms,
                ));
            }
        }
        for gone in held
            .into_iter()
            .flatten()
            .filter(|id| !running.contains(*id))
        {
            let ghost = WireJob {
                id: Some(gone.clone()),
                ..WireJob::default()
            };
            let info = normalize::job_info(&ghost, identities);
            out.push(reconciled("agent_removed", room, None, Some(info), now_ms));
        }
    }
    out
}

/// Applies LiveKit's view to the hub (one node); returns the changes published.
pub async fn reconcile(
    hub: &Hub,
    identities: &Identities,
    live: &LiveState,
    agents: Option<&LiveAgents>,
    now_ms: i64,
) -> usize {
    let mut changes = changes(hub, identities, live, now_ms);
    if let Some(agents) = agents {
        changes.extend(agent_changes(hub, identities, agents, now_ms));
    }
    let n = changes.len();
    for ev in changes {
        if let Err(e) = hub.publish(ev, now_ms).durable().await {
            tracing::warn!(error = %e, "reconciled change not stored; will retry");
            break;
        }
    }
    n
}

/// Reconciles at start and then every `interval` until `shutdown` — on this
/// node alone, or, with a `cluster`, on whichever node holds the lease.
pub async fn run(
    service: RoomService,
    hub: Hub,
    cluster: Option<Cluster>,
    identities: Identities,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    match cluster {
        Some(cluster) => {
            run_clustered(service, hub, cluster, identities, interval, shutdown).await;
        }
        None => run_alone(service, hub, identities, interval, shutdown).await,
    }
}

async fn run_alone(
    service: RoomService,
    hub: Hub,
    identities: Identities,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown => return,
        }
        match service.fetch().await {
            Ok(live) => {
                let agents = service.fetch_agents(&live).await;
                let n = reconcile(
                    &hub,
                    &identities,
                    &live,
                    agents.as_ref(),
                    service.clock.now_ms(),
                )
                .await;
                log_reconciled(n, live.len());
            }
            Err(e) => tracing::warn!(error = %e, "room reconciliation failed; will retry"),
        }
    }
}

fn log_reconciled(changes: usize, rooms: usize) {
    if changes > 0 {
        tracing::info!(changes, rooms, "room state reconciled with LiveKit");
    }
}

/// The cluster's reconciler (see `cluster/reconciler.rs`): every
/// [`LEASE_RENEW`] take or renew the lease; while holding it, reconcile at
/// once and then every `interval`, publishing through the shared stream.
/// LiveKit's answer is used only if the lease is still held after it came.
async fn run_clustered(
    service: RoomService,
    hub: Hub,
    cluster: Cluster,
    identities: Identities,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(LEASE_RENEW.min(interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut shutdown => {
                cluster.release_reconciler_lease().await;
                return;
            }
        }
        let held = cluster.hold_reconciler_lease().await.unwrap_or(false);
        if held != last.is_some() {
            if held {
                tracing::info!("this node now reconciles rooms with LiveKit (cluster lease taken)");
            } else {
                tracing::info!("another node reconciles rooms with LiveKit now");
            }
        }
        if !held {
            last = None;
            continue;
        }
        if last.is_some_and(|t| t.elapsed() < interval) {
            continue;
        }
        last = Some(tokio::time::Instant::now());
        let live = match service.fetch().await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "room reconciliation failed; will retry");
                continue;
            }
        };
        if !cluster.hold_reconciler_lease().await.unwrap_or(false) {
            continue;
        }
        let agents = service.fetch_agents(&live).await;
        let mut changes = changes(&hub, &identities, &live, service.clock.now_ms());
        if let Some(agents) = &agents {
            changes.extend(agent_changes(
                &hub,
                &identities,
                agents,
                service.clock.now_ms(),
            ));
        }
        let n = changes.len();
        for ev in changes {
            if let Err(e) = cluster.publish_own(&ev).await {
                tracing::warn!(error = %e, "reconciled change not published; will retry");
                break;
            }
        }
        log_reconciled(n, live.len());
    }
}
