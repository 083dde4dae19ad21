//! Application state: a cheap `Clone` handle (one `Arc`) to every component.
//!
//! Handlers get [`AppState`] from the router's state. [`AppState::build`]
//! opens the store and wires the components in dependency order; serving
//! them is [`crate::server`]'s.

pub mod lifelines;

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context as _;

pub use lifelines::{LifeWatch, Lifeline, Lifelines};

use crate::audit::{Audit, AuditWorker};
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::guard::{Admission, Guard};
use crate::hub::{Hub, HubSettings};
use crate::ingest::{Ingest, Publisher};
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::pepper::Pepper;
use crate::redact::Masker;
use crate::store::Sqlite;
use crate::token::Tickets;
use crate::webhook::{Receiver, ReceiverSettings, ReplayStore};

/// Cheap handle to every component.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The components (see [`AppState`]).
pub struct Inner {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Time source.
    pub clock: Clock,
    /// Log masker (knows the API secrets).
    pub masker: Masker,
    /// The embedded database.
    pub store: Sqlite,
    /// Deployment pepper.
    pub pepper: Pepper,
    /// API keys.
    pub keys: KeyRing,
    /// Security events.
    pub audit: Audit,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The LiveKit API client, when `livekit.api_url` is set.
    pub livekit: Option<crate::livekit::RoomService>,
    /// The audit's background work, taken by [`AppState::take_audit_worker`].
    audit_worker: std::sync::Mutex<Option<AuditWorker>>,
    /// Limits and lockouts.
    pub guard: Guard,
    /// SSE fan-out.
    pub hub: Hub,
    /// Membership of a cluster (`storage.backend: redis`); `None` on one node.
    pub cluster: Option<Cluster>,
    /// Webhook ingest: kill switch, verification, dedupe, publishing.
    pub ingest: Ingest,
    /// Single-use SSE tickets.
    pub tickets: Tickets,
    /// SSE connection caps.
    pub admission: Admission,
    /// Open streams by signing key (revocation ends them).
    pub lifelines: Lifelines,
    /// False while starting and once shutdown begins (`/health` answers 503).
    pub ready: AtomicBool,
    /// Unix ms at start.
    pub started_ms: i64,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What start-up wants the operator to know (printed by `serve`).
#[derive(Debug, Default)]
pub struct StartupReport {
    /// A key created on first start: (key id, file holding the secret).
    pub created_key: Option<(String, std::path::PathBuf)>,
}

impl AppState {
    /// Wires every component from the configuration.
    pub fn build(
        config: Config,
        clock: Clock,
        masker: Masker,
    ) -> anyhow::Result<(Self, StartupReport)> {
        let store = Sqlite::open(&config.storage.path)?;
        let pepper = Pepper::load_or_create(&config.data_dir())
            .with_context(|| format!("pepper in {}", config.data_dir().display()))?;
        let boot = match config.storage.backend {
            crate::config::Backend::Redis => Some(crate::cluster::Boot::connect(&config, &pepper)?),
            crate::config::Backend::Sqlite => None,
        };
        let pepper = boot.as_ref().map_or(pepper, crate::cluster::Boot::pepper);
        let (keys, created) = KeyRing::load(&config, &clock)?;
        let report = StartupReport {
            created_key: created.map(|c| (c.id, c.path)),
        };
        masker.set_known_secrets(
            keys.all_secrets()
                .iter()
                .chain(config.alerts.signing_secret.iter()),
        );
        let metrics = Metrics::new();
        let (audit, audit_worker) = Audit::open(
            &config,
            store.clone(),
            clock.clone(),
            masker.clone(),
            metrics.clone(),
        )?;
        let guard = Guard::new(&config, clock.clone(), audit.clone());
        let livekit = match &config.livekit.api_url {
            Some(url) => {
                let policy = crate::transport::OutboundPolicy::from_config(&config);
                Some(crate::livekit::RoomService::new(
                    url,
                    &policy,
                    keys.clone(),
                    clock.clone(),
                )?)
            }
            None => None,
        };
        // One node dedupes in its replay store; a cluster in its publish script.
        let replay = match &boot {
            Some(_) => None,
            None => Some(ReplayStore::sqlite(
                store.clone(),
                crate::webhook::replay::DEFAULT_CAP,
            )?),
        };
        // One node keeps its history and room state in the embedded database;
        // a cluster keeps them in Redis' shared stream.
        let hub = match &boot {
            Some(b) => Hub::with_epoch(HubSettings::from_config(&config), b.epoch().to_owned()),
            None => Hub::durable(
                HubSettings::from_config(&config),
                &config.storage.path,
                replay.clone(),
            )
            .with_context(|| format!("event history in {}", config.storage.path.display()))?,
        };
        let cluster = boot
            .map(|b| {
                b.start(crate::cluster::Parts {
                    hub: hub.clone(),
                    guard: guard.clone(),
                    audit: audit.clone(),
                    clock: clock.clone(),
                    metrics: metrics.clone(),
                })
            })
            .transpose()?;
        let receiver = Receiver::new(
            keys.clone(),
            pepper.clone(),
            audit.clone(),
            clock.clone(),
            ReceiverSettings::from_config(&config),
        );
        let publisher = match (&cluster, replay) {
            (Some(cluster), _) => Publisher::Cluster(cluster.clone()),
            (None, Some(replay)) => Publisher::Local {
                hub: hub.clone(),
                replay,
            },
            (None, None) => anyhow::bail!("a cluster node started without its cluster"),
        };
        let ingest = Ingest::new(crate::ingest::Parts {
            guard: guard.clone(),
            receiver,
            publisher,
            audit: audit.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
        });
        let admission = Admission::new(
            config.realtime.max_connections,
            config.realtime.max_connections_per_ip,
            config.suspicious_activity.ipv6_prefix_length,
        );
        let started_ms = clock.now_ms();
        let inner = Inner {
            config: Arc::new(config),
            clock,
            masker,
            store,
            pepper,
            keys,
            audit,
            metrics,
            audit_worker: std::sync::Mutex::new(Some(audit_worker)),
            livekit,
            guard,
            hub,
            cluster,
            ingest,
            tickets: Tickets::new(100_000),
            admission,
            lifelines: Lifelines::default(),
            ready: AtomicBool::new(false),
            started_ms,
        };
        Ok((Self(Arc::new(inner)), report))
    }

    /// True while webhooks are processed.
    pub fn ingestion_enabled(&self) -> bool {
        self.ingest.enabled()
    }

    /// The audit's background work, once (the server runs it).
    pub fn take_audit_worker(&self) -> Option<AuditWorker> {
        self.audit_worker.lock().ok().and_then(|mut w| w.take())
    }
}
