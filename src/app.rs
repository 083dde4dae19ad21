//! Application state and the server's life cycle.
//!
//! [`AppState`] is a cheap `Clone` handle (one `Arc`) to every component;
//! handlers get it from axum's `State`. [`AppState::build`] opens the store
//! and wires the components in dependency order; [`run`] serves a bound
//! listener until a shutdown future resolves, then drains: stop accepting,
//! end SSE streams cleanly, let in-flight requests finish (bounded by
//! `server.shutdown_grace_seconds`), flush the audit log.

pub mod admission;
pub mod banner;
pub mod lifelines;
pub mod tickets;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use tokio::net::TcpListener;

pub use admission::{Admission, ConnPermit};
pub use lifelines::{LifeWatch, Lifeline, Lifelines};
pub use tickets::Tickets;

use crate::audit::{Audit, AuditWorker};
use crate::clock::Clock;
use crate::cluster::Cluster;
use crate::config::Config;
use crate::guard::Guard;
use crate::hub::{Hub, HubSettings};
use crate::ingest::{Ingest, Publisher};
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::pepper::Pepper;
use crate::redact::Masker;
use crate::store::Sqlite;
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
    /// The audit's background work, taken by [`run_with`].
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
}

/// A listening socket with a backlog for connection storms: a dashboard
/// fleet reconnecting at once after a restart must not see SYNs dropped and
/// retried a second later (the kernel caps it at `net.core.somaxconn`).
fn listen_on(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves `listener` until `shutdown` resolves, then drains (see module docs).
pub async fn run(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    run_with(state, listener, None, shutdown).await
}

/// [`run`], plus an optional plain-HTTP listener that only redirects to https.
pub async fn run_with(
    state: AppState,
    listener: TcpListener,
    redirect: Option<TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut opts = crate::http::serve::ServeOptions::from_config(&state.config);
    opts.metrics = Some(state.metrics.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let Some(tls) = &state.config.server.tls {
        let reloader = crate::tls::Reloader::new(tls)?;
        opts.tls = Some(reloader.config.clone());
        tokio::spawn(watch_certificates(reloader, stop_rx.clone()));
    }
    if let Some(redirect) = redirect {
        let https = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 443)));
        let router =
            crate::http::serve::redirect_router(state.config.server.public_url.clone(), https);
        let mut plain = crate::http::serve::ServeOptions::from_config(&state.config);
        plain.metrics = Some(state.metrics.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(crate::http::serve::serve(
            redirect,
            router,
            plain,
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
    }
    spawn_background(&state, &stop_rx);
    let router = crate::http::router(state.clone());
    state.ready.store(true, Ordering::Relaxed);
    // Bound, keys, stores and certificate loaded: ready for systemd's
    // `Type=notify` (nothing is sent without $NOTIFY_SOCKET).
    crate::notify::notify_logged("READY=1");
    crate::http::serve::serve(listener, router, opts, async {
        shutdown.await;
        crate::notify::notify_logged("STOPPING=1");
        state.ready.store(false, Ordering::Relaxed);
        let _ = stop_tx.send(true);
        state.hub.close();
    })
    .await;
    state.hub.flush();
    state.ingest.flush();
    state.audit.close().await;
    Ok(())
}

/// Key watching (rotation, revocation, expiry), the cluster's reader and
/// lockout sharing, and the audit's alert and retention work.
fn spawn_background(state: &AppState, stop: &tokio::sync::watch::Receiver<bool>) {
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(crate::keys::watch(
        state.keys.clone(),
        state.clock.clone(),
        state.audit.clone(),
        state.masker.clone(),
        until_stopped(stop.clone()),
    ));
    tokio::spawn(lifelines::sweep_task(state.clone(), stop.clone()));
    if let Some(service) = state.livekit.clone() {
        let identities = if state.config.realtime.hash_identities {
            crate::webhook::normalize::Identities::Hashed(state.pepper.clone())
        } else {
            crate::webhook::normalize::Identities::Plain
        };
        tokio::spawn(crate::livekit::run(
            service,
            state.hub.clone(),
            state.cluster.clone(),
            identities,
            state.config.livekit.reconcile_interval,
            until_stopped(stop.clone()),
        ));
    }
    if let Some(cluster) = &state.cluster {
        cluster.spawn(stop.clone());
    }
    tokio::spawn(crate::subject::run_retention(
        state.clone(),
        until_stopped(stop.clone()),
    ));
    let worker = state.audit_worker.lock().ok().and_then(|mut w| w.take());
    if let Some(worker) = worker {
        tokio::spawn(worker.run(until_stopped(stop.clone())));
    }
}

/// Re-reads the certificate every few seconds; a broken file keeps the old one and is reported.
async fn watch_certificates(
    mut reloader: crate::tls::Reloader,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match reloader.poll() {
            Ok(true) => tracing::info!("TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate reload failed; still serving the previous certificate")
            }
        }
    }
}

/// `warden serve`: telemetry, state, listener, signals.
pub fn serve_blocking(
    config: Config,
    listen: Option<SocketAddr>,
    masker: Masker,
) -> anyhow::Result<()> {
    let listen = listen.unwrap_or(config.server.listen);
    config.check_transport(listen)?;
    crate::telemetry::init(&config.logging, &masker, crate::telemetry::Sink::Stderr);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let (state, report) = AppState::build(config, Clock::system(), masker)?;
        if let Some((id, path)) = &report.created_key {
            println!(
                "created API key {id}; its secret is in {} (mode 0600)",
                path.display()
            );
            tracing::info!(key.id = %id, key.file = %path.display(), "created the first API key");
        }
        let listener = listen_on(listen).with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr().context("listener address")?;
        let redirect = match state.config.server.redirect_listen {
            Some(addr) => {
                let redirect = listen_on(addr)
                    .with_context(|| format!("cannot listen on server.redirect_listen {addr}"))?;
                let addr = redirect.local_addr().context("listener address")?;
                tracing::info!(listen = %addr, "redirecting plain HTTP to https");
                Some(redirect)
            }
            None => None,
        };
        let scheme = if state.config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let banner = banner::Banner::of(&state, local);
        banner.log();
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            print!("{}", banner.text());
        }
        let started = crate::clock::rfc3339_ms(state.clock.now_ms());
        let _runfile = crate::runfile::write(
            &state.config.data_dir(),
            local,
            state.config.server.tls.is_some(),
            started,
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot write the runtime file (warden status and unblock will look at server.listen)");
        })
        .ok();
        // Last: whoever waits for this line finds the runtime file written.
        println!("warden listening on {scheme}://{local}");
        run_with(state, listener, redirect, shutdown_signal()).await?;
        tracing::info!("warden stopped");
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
}
