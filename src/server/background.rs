//! The server's background tasks, all stopped by one watch channel.

use crate::app::AppState;

/// Key watching (rotation, revocation, expiry), the cluster's reader and
/// lockout sharing, and the audit's alert and retention work.
pub(super) fn spawn_background(state: &AppState, stop: &tokio::sync::watch::Receiver<bool>) {
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
    tokio::spawn(crate::app::lifelines::sweep_task(
        state.clone(),
        stop.clone(),
    ));
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
    if let Some(worker) = state.take_audit_worker() {
        tokio::spawn(worker.run(until_stopped(stop.clone())));
    }
}

/// Re-reads the certificate every few seconds; a broken file keeps the old one and is reported.
pub(super) async fn watch_certificates(
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
