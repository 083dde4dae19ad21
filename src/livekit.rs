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

mod reconcile;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

pub use reconcile::{agent_changes, changes, reconcile, run};

use crate::clock::Clock;
use crate::keys::KeyRing;
use crate::transport::{OutboundPolicy, TransportError};
use crate::webhook::decode::{WireJob, WireParticipant, WireRoom};

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
