//! Serving: listeners, the life cycle, shutdown.
//!
//! [`run`] serves a bound listener with the state [`AppState::build`] wired
//! until a shutdown future resolves, then drains: stop accepting, end SSE
//! streams cleanly, let in-flight requests finish (bounded by
//! `server.shutdown_grace_seconds`), flush the replay ids and the audit log.
//! [`serve_blocking`] is `warden serve`: telemetry, runtime, state,
//! listeners, banner, signals. The connection handling itself is
//! [`crate::http::serve`]'s.

mod background;
pub mod banner;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::app::AppState;
use crate::clock::Clock;
use crate::config::Config;
use crate::redact::Masker;

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
        tokio::spawn(background::watch_certificates(reloader, stop_rx.clone()));
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
    background::spawn_background(&state, &stop_rx);
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
