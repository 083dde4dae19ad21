//! Where a verified event goes: this node's replay store and hub, or the
//! cluster's shared stream. Both dedupe on the event id with the body digest
//! the verification computed; both record a repeat with another body as
//! `WEBHOOK_REPLAY`, built by [`crate::webhook::replay::replay_event`].

use std::net::IpAddr;
use std::time::Instant;

use super::{Accepted, AcceptedLine, Ingest, IngestError};
use crate::cluster::{Cluster, Published};
use crate::event::Event;
use crate::hub::Hub;
use crate::webhook::replay::{BodyDigest, replay_event};
use crate::webhook::{ReplayStore, Seen};

/// One node or several.
#[derive(Clone)]
pub enum Publisher {
    /// One node: ids in the replay store (committed with the events by the
    /// hub's journal), events in the hub. Durable before acknowledged.
    Local {
        /// The hub new events are published to.
        hub: Hub,
        /// The seen ids.
        replay: ReplayStore,
    },
    /// Several nodes: the cluster's publish script dedupes and appends to
    /// the shared stream, which every node's reader broadcasts.
    Cluster(Cluster),
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local { replay, .. } => f.debug_struct("Local").field("replay", replay).finish(),
            Self::Cluster(_) => f.write_str("Cluster"),
        }
    }
}

impl Publisher {
    /// Writes the ids still waiting for the disk (one node; nothing to do for a cluster).
    pub fn flush(&self) {
        if let Self::Local { replay, .. } = self {
            replay.flush();
        }
    }
}

impl Ingest {
    /// Dedupes and publishes a verified `event` whose body hashed to `digest`.
    pub(super) async fn publish(
        &self,
        ip: IpAddr,
        event: Event,
        digest: BodyDigest,
        started: Instant,
    ) -> Result<Accepted, IngestError> {
        match &self.inner.parts.publisher {
            Publisher::Local { hub, replay } => {
                self.publish_local(hub, replay, ip, event, digest, started)
                    .await
            }
            // Boxed: the Redis round trip's future is large, and every
            // single-node request would otherwise carry (and move) its size.
            Publisher::Cluster(cluster) => {
                Box::pin(self.publish_to_cluster(cluster, ip, event, digest, started)).await
            }
        }
    }

    async fn publish_local(
        &self,
        hub: &Hub,
        replay: &ReplayStore,
        ip: IpAddr,
        event: Event,
        digest: BodyDigest,
        started: Instant,
    ) -> Result<Accepted, IngestError> {
        let p = &self.inner.parts;
        let window = p.receiver.replay_window();
        match replay.check(&event.id, digest, p.clock.now_ms(), window) {
            Seen::New => {}
            Seen::Retry => return Ok(duplicate()),
            Seen::Replay => {
                p.audit.record(replay_event(ip, &event));
                return Ok(duplicate());
            }
        }
        let lag = self.lag(&event);
        let line = AcceptedLine::of(&event, lag);
        let id = event.id.clone();
        // Durable before acknowledged: LiveKit never resends what got a 200.
        if let Err(e) = hub.publish(event, p.clock.now_ms()).durable().await {
            replay.forget(&id);
            tracing::error!(error = %e, "webhook not stored; LiveKit will retry it");
            return Err(IngestError::Storage);
        }
        p.metrics.webhook_to_enqueue(started.elapsed());
        if let Some(line) = line {
            line.write(&id, started);
        }
        Ok(Accepted::Accepted)
    }

    /// Queued in the shared stream (dedupe included), or refused so LiveKit retries.
    async fn publish_to_cluster(
        &self,
        cluster: &Cluster,
        ip: IpAddr,
        event: Event,
        digest: BodyDigest,
        started: Instant,
    ) -> Result<Accepted, IngestError> {
        let p = &self.inner.parts;
        let lag = self.lag(&event);
        match cluster.publish(&event, digest).await {
            Ok(published) => {
                if published == Published::Replay {
                    p.audit
                        .record(replay_event(ip, &event).detail("scope", "cluster"));
                }
                p.metrics.webhook_to_enqueue(started.elapsed());
                if let Some(line) = AcceptedLine::of(&event, lag) {
                    line.write(&event.id, started);
                }
                Ok(match published {
                    Published::New(_) => Accepted::Accepted,
                    Published::Retry | Published::Replay => Accepted::Duplicate,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhook not queued: the shared stream is unreachable");
                Err(IngestError::Cluster)
            }
        }
    }
}

/// A repeat of an accepted id: acknowledged, not broadcast again.
fn duplicate() -> Accepted {
    tracing::info!(
        reason =
            "event id already accepted (LiveKit retried it); answered 200, not broadcast again",
        "webhook duplicate"
    );
    Accepted::Duplicate
}
