//! The LiveKit server API client (Twirp `RoomService` over HTTPS) and room
//! reconciliation.
//!
//! LiveKit's webhooks are best effort: a `participant_left` can be lost, and
//! a `room_started` can arrive after its `room_finished`. Left alone, the
//! room snapshot would keep ghosts. At start and every
//! `livekit.reconcile_interval_seconds`, Warden asks LiveKit for the truth
//! (`ListRooms`, then `ListParticipants` per room), compares it with the
//! hub's snapshot and publishes each difference as an `event: reconciled`
//! (with `data.change` = `room_added|room_removed|participant_added|
//! participant_removed`), which the hub applies like the missed event.
//!
//! With the Redis backend one node at a time reconciles (the holder of a
//! lease in Redis; another node takes over when it dies) and its changes go
//! through the shared stream, so every node applies and broadcasts them
//! with the same ids (see `cluster/reconciler.rs`).
//!
//! Each call carries a fresh 60 s token minted with the active key and only
//! the grant it needs: `roomList` for `ListRooms`, `roomAdmin` for one room
//! for `ListParticipants`. The URL goes through the outbound policy
//! (`ws://` → `wss://`, plain http refused unless loopback in lax mode).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use crate::clock::Clock;
use crate::cluster::{Cluster, LEASE_RENEW};
use crate::event::{Event, EventData};
use crate::hub::{Access, Hub};
use crate::keys::KeyRing;
use crate::transport::{OutboundPolicy, TransportError};
use crate::webhook::decode::{WireEvent, WireJob, WireParticipant, WireRoom};
use crate::webhook::normalize::{Identities, Normalized, normalize};

/// Why the LiveKit API could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LivekitError {
    /// The URL is refused by the outbound policy.
    #[error("livekit.api_url: {0}")]
    Url(#[from] TransportError),
    /// No active key to sign API tokens with.
    #[error("no active API key to call the LiveKit API with")]
    NoKey,
    /// A request failed (network, TLS, timeout).
    #[error("LiveKit API {method}: {message}")]
    Request {
        /// Twirp method.
        method: &'static str,
        /// What happened (no URL query, no token).
        message: String,
    },
    /// LiveKit answered with an error status.
    #[error("LiveKit API {method}: HTTP {status}")]
    Status {
        /// Twirp method.
        method: &'static str,
        /// HTTP status.
        status: u16,
    },
}

/// A client of LiveKit's RoomService.
#[derive(Clone)]
pub struct RoomService {
    base: Url,
    http: reqwest::Client,
    keys: KeyRing,
    clock: Clock,
}

impl std::fmt::Debug for RoomService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomService")
            .field("host", &self.base.host_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Rooms {
    #[serde(default)]
    rooms: Vec<WireRoom>,
}

#[derive(Deserialize)]
struct Participants {
    #[serde(default)]
    participants: Vec<WireParticipant>,
}

/// LiveKit's view: each room with its participants.
pub type LiveState = Vec<(WireRoom, Vec<WireParticipant>)>;

/// LiveKit's agent jobs: each room with the jobs of its dispatches.
pub type LiveAgents = Vec<(WireRoom, Vec<WireJob>)>;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Dispatches {
    #[serde(default, alias = "agent_dispatches")]
    agent_dispatches: Vec<Dispatch>,
}

#[derive(Deserialize)]
struct Dispatch {
    state: Option<DispatchState>,
}

#[derive(Deserialize)]
struct DispatchState {
    #[serde(default)]
    jobs: Vec<WireJob>,
}

impl RoomService {
    /// A client for `api_url`, checked (and upgraded) by `policy`.
    pub fn new(
        api_url: &str,
        policy: &OutboundPolicy,
        keys: KeyRing,
        clock: Clock,
    ) -> Result<Self, LivekitError> {
        let mut base = policy.upgrade(api_url)?;
        match base.scheme() {
            "wss" => base
                .set_scheme("https")
                .map_err(|()| TransportError::Invalid(api_url.to_owned()))?,
            "ws" => base
                .set_scheme("http")
                .map_err(|()| TransportError::Invalid(api_url.to_owned()))?,
            _ => {}
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| LivekitError::Request {
                method: "client",
                message: e.to_string(),
            })?;
        Ok(Self {
            base,
            http,
            keys,
            clock,
        })
    }

    /// A 60 s token with exactly `video`.
    fn token(&self, video: Value) -> Result<String, LivekitError> {
        crate::token::mint_service(&self.keys, "warden-reconciler", video, self.clock.now_ms())
            .map_err(|_| LivekitError::NoKey)
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: &'static str,
        body: Value,
        video: Value,
    ) -> Result<T, LivekitError> {
        self.call_in("RoomService", method, body, video).await
    }

    async fn call_in<T: for<'de> Deserialize<'de>>(
        &self,
        service: &'static str,
        method: &'static str,
        body: Value,
        video: Value,
    ) -> Result<T, LivekitError> {
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}/twirp/livekit.{service}/{method}",
            self.base.path().trim_end_matches('/')
        ));
        let err = |e: reqwest::Error| LivekitError::Request {
            method,
            message: e.without_url().to_string(),
        };
        let resp = self
            .http
            .post(url)
            .bearer_auth(self.token(video)?)
            .json(&body)
            .send()
            .await
            .map_err(err)?;
        if !resp.status().is_success() {
            return Err(LivekitError::Status {
                method,
                status: resp.status().as_u16(),
            });
        }
        resp.json::<T>().await.map_err(err)
    }

    /// The agent jobs of every room in `live` (AgentDispatchService), or
    /// `None` when LiveKit cannot say (a server without agent dispatch): agent
    /// jobs are then not reconciled, rooms and participants still are.
    pub async fn fetch_agents(&self, live: &LiveState) -> Option<LiveAgents> {
        let mut out = Vec::with_capacity(live.len());
        for (room, _) in live {
            let name = room.name.clone()?;
            let video = json!({"roomAdmin": true, "room": name});
            let listed: Result<Dispatches, _> = self
                .call_in(
                    "AgentDispatchService",
                    "ListDispatch",
                    json!({"room": name}),
                    video,
                )
                .await;
            match listed {
                Ok(d) => {
                    let jobs = d
                        .agent_dispatches
                        .into_iter()
                        .filter_map(|d| d.state)
                        .flat_map(|s| s.jobs)
                        .collect();
                    out.push((room.clone(), jobs));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "agent jobs not reconciled: LiveKit did not list them");
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Every room with its participants.
    pub async fn fetch(&self) -> Result<LiveState, LivekitError> {
        let rooms: Rooms = self
            .call("ListRooms", json!({}), json!({"roomList": true}))
            .await?;
        let mut out = Vec::with_capacity(rooms.rooms.len());
        for room in rooms.rooms {
            let Some(name) = room.name.clone() else {
                continue;
            };
            let video = json!({"roomAdmin": true, "room": name});
            let p: Participants = self
                .call("ListParticipants", json!({"room": name}), video)
                .await?;
            out.push((room, p.participants));
        }
        Ok(out)
    }
}

/// One normalised room or participant, by way of the webhook normaliser (so
/// it is sanitised and its identity hashed exactly like a webhook's).
fn normalised(
    room: &WireRoom,
    participant: Option<&WireParticipant>,
    identities: &Identities,
) -> Option<Event> {
    let wire = WireEvent {
        event: Some(
            if participant.is_some() {
                "participant_joined"
            } else {
                "room_started"
            }
            .to_owned(),
        ),
        room: Some(room.clone()),
        participant: participant.cloned(),
        ..WireEvent::default()
    };
    match normalize(wire, identities, || "RC".to_owned()) {
        Normalized::Event(ev) => Some(*ev),
        _ => None,
    }
}

/// Our snapshot, read once: per room sid, its display name, participant sids and running job ids.
#[derive(Default)]
struct Held {
    name: Option<String>,
    participants: BTreeSet<String>,
    agents: BTreeSet<String>,
}

fn current(hub: &Hub) -> BTreeMap<String, Held> {
    let snap = hub.snapshot_json(&Access::All, &[]);
    let ids = |room: &Value, list: &str, key: &str| -> BTreeSet<String> {
        room.get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|x| x.get(key).and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    let mut out = BTreeMap::new();
    for room in snap
        .get("rooms")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(sid) = room.get("sid").and_then(Value::as_str) else {
            continue;
        };
        out.insert(
            sid.to_owned(),
            Held {
                name: room.get("name").and_then(Value::as_str).map(str::to_owned),
                participants: ids(room, "participants", "sid"),
                agents: ids(room, "agents", "id"),
            },
        );
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
    let ours = current(hub);
    let mut out = Vec::new();
    for (room, jobs) in live {
        let Some(sid) = room.sid.as_deref() else {
            continue;
        };
        let held = ours.get(sid).map(|h| &h.agents);
        let mut running = BTreeSet::new();
        for job in jobs {
            let Some(ev) = job_event(room, job, identities) else {
                continue;
            };
            let Some(info) = ev.data.job.as_ref() else {
                continue;
            };
            if !matches!(info.status, "pending" | "running") {
                continue;
            }
            running.insert(info.id.clone());
            if !held.is_some_and(|h| h.contains(&info.id)) {
                out.push(as_reconciled(ev, "agent_added", now_ms));
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
            if let Some(ev) = job_event(room, &ghost, identities) {
                out.push(as_reconciled(ev, "agent_removed", now_ms));
            }
        }
    }
    out
}

fn job_event(room: &WireRoom, job: &WireJob, identities: &Identities) -> Option<Event> {
    let wire = WireEvent {
        event: Some("agent_job_started".to_owned()),
        job: Some(WireJob {
            room: Some(room.clone()),
            ..job.clone()
        }),
        ..WireEvent::default()
    };
    match normalize(wire, identities, || "RC".to_owned()) {
        Normalized::Event(ev) => Some(*ev),
        _ => None,
    }
}

fn as_reconciled(mut ev: Event, change: &'static str, now_ms: i64) -> Event {
    let job = ev
        .data
        .job
        .as_ref()
        .map(|j| j.id.clone())
        .unwrap_or_default();
    ev.id = format!("RC_{now_ms}_{job}");
    ev.event = "reconciled".to_owned();
    ev.order = None;
    ev.data.change = Some(change);
    ev
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

/// The `reconciled` events that bring the hub's snapshot to LiveKit's view.
pub fn changes(hub: &Hub, identities: &Identities, live: &LiveState, now_ms: i64) -> Vec<Event> {
    let ours = current(hub);
    let mut changes = Vec::new();
    let live_sids: BTreeSet<&str> = live.iter().filter_map(|(r, _)| r.sid.as_deref()).collect();
    for (room, participants) in live {
        let Some(sid) = room.sid.as_deref() else {
            continue;
        };
        let known = ours.get(sid).map(|h| &h.participants);
        if known.is_none() {
            changes.extend(normalised(room, None, identities).map(|e| (e, "room_added")));
        }
        let live_p: BTreeSet<&str> = participants
            .iter()
            .filter_map(|p| p.sid.as_deref())
            .collect();
        for p in participants {
            if !known.is_some_and(|k| p.sid.as_deref().is_some_and(|s| k.contains(s))) {
                changes.extend(
                    normalised(room, Some(p), identities).map(|e| (e, "participant_added")),
                );
            }
        }
        for gone in known
            .into_iter()
            .flatten()
            .filter(|s| !live_p.contains(s.as_str()))
        {
            let ghost = WireParticipant {
                sid: Some(gone.clone()),
                identity: Some(String::new()),
                ..Default::default()
            };
            changes.extend(
                normalised(room, Some(&ghost), identities).map(|e| (e, "participant_removed")),
            );
        }
    }
    for (sid, Held { name, .. }) in ours
        .iter()
        .filter(|(sid, _)| !live_sids.contains(sid.as_str()))
    {
        let ghost = WireRoom {
            sid: Some(sid.clone()),
            name: name.clone(),
            ..Default::default()
        };
        changes.extend(normalised(&ghost, None, identities).map(|e| (e, "room_removed")));
    }
    changes
        .into_iter()
        .map(|(mut ev, change)| {
            ev.id = format!(
                "RC_{now_ms}_{}",
                ev.data
                    .participant
                    .as_ref()
                    .map_or_else(|| room_sid(&ev), |p| p.sid.clone())
            );
            ev.event = "reconciled".to_owned();
            // LiveKit's answer now is the authority: no order check against events held.
            ev.order = None;
            ev.data = EventData {
                change: Some(change),
                ..ev.data
            };
            ev
        })
        .collect()
}

fn room_sid(ev: &Event) -> String {
    ev.data
        .room
        .as_ref()
        .map(|r| r.sid.clone())
        .unwrap_or_default()
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
                reconciled(n, live.len());
            }
            Err(e) => tracing::warn!(error = %e, "room reconciliation failed; will retry"),
        }
    }
}

fn reconciled(changes: usize, rooms: usize) {
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
        reconciled(n, live.len());
    }
}
