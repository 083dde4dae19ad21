//! Background work and state: alert delivery, retention, health, the alert signing secret.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;

use super::alerts::{Alerter, SigningKey};
use super::{Audit, AuditError, sqlite};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::redact::Secret;
use crate::store::Sqlite;

/// Entries deleted per purge transaction.
const PURGE_BATCH: u32 = 500;
/// Name of the generated alert signing secret in `audit_settings`.
const SECRET_SETTING: &str = "alert_signing_secret";

/// The audit's own state, for `GET /api/security/health`.
#[derive(Clone, Debug, Serialize)]
pub struct AuditHealth {
    /// The last append succeeded (true before the first).
    pub writable: bool,
    /// Why the last append failed, while it is failing.
    pub last_error: Option<String>,
    /// Events dropped because the queue was full, since start.
    pub dropped: u64,
    /// The newest entries verify (seal and link).
    pub head_verified: bool,
    /// What the head check found.
    pub head_detail: String,
    /// Alert delivery, when alerts are configured.
    pub alerts: Option<super::AlertStatus>,
}

/// Background work of a file-backed audit: alert delivery and retention.
#[derive(Debug)]
pub struct AuditWorker {
    pub(super) audit: Audit,
    pub(super) alerter: Option<Alerter>,
}

impl AuditWorker {
    /// The alert sender, when `alerts.webhook_url` is set (status, retry policy).
    pub fn alerter(&self) -> Option<&Alerter> {
        self.alerter.as_ref()
    }

    /// Runs alert delivery and hourly retention until `shutdown` completes (spawn it).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let alerts = async {
            match self.alerter {
                Some(a) => a.run(std::future::pending()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown => {}
            () = alerts => {}
            () = run_maintenance(self.audit.clone(), std::future::pending()) => {}
            () = summarise_denials(self.audit) => {}
        }
    }
}

/// Ends the denial runs whose window is over, every 2 s (see [`super::coalesce`]).
async fn summarise_denials(audit: Audit) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        audit.write_due_summaries();
    }
}

/// Purges expired entries now and then every hour until `shutdown` completes.
pub async fn run_maintenance(audit: Audit, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let a = audit.clone();
        let now = audit.core.clock.now_ms();
        match tokio::task::spawn_blocking(move || a.purge(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(
                purged = n,
                "audit retention: expired entries purged behind the anchor"
            ),
            Ok(Err(e)) => tracing::warn!(error = %e, "audit retention failed"),
            Err(e) => tracing::warn!(error = %e, "audit retention task failed"),
        }
        let a = audit.clone();
        match tokio::task::spawn_blocking(move || a.sweep_logs(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(
                deleted = n,
                "security log retention: old rotated files deleted"
            ),
            Ok(Err(e)) => tracing::warn!(error = %e, "security log retention failed"),
            Err(e) => tracing::warn!(error = %e, "security log retention task failed"),
        }
    }
}

/// The alert signing secret in force: `alerts.signing_secret`, else the one kept
/// in the store (`audit_settings`), generated on first use.
pub fn alert_signing_secret(db: &Sqlite, cfg: &Config) -> Result<Secret, AuditError> {
    if let Some(s) = &cfg.alerts.signing_secret {
        return Ok(s.clone());
    }
    sqlite::migrate(db).map_err(AuditError::Store)?;
    if let Some(s) = sqlite::setting(db, SECRET_SETTING).map_err(AuditError::Store)? {
        return Ok(Secret::new(s));
    }
    let (_, fresh) = SigningKey::generate();
    let kept =
        sqlite::setting_or_insert(db, SECRET_SETTING, fresh.expose()).map_err(AuditError::Store)?;
    tracing::info!(
        "generated the alert signing secret and kept it in the store; `warden audit alert-secret` prints it"
    );
    Ok(Secret::new(kept))
}

impl Audit {
    /// Purges entries older than the retention (relative to `now_ms`) behind the anchor.
    pub fn purge(&self, now_ms: i64) -> Result<u64, AuditError> {
        sqlite::purge(
            &self.core.db,
            now_ms.saturating_sub(self.core.retention_ms),
            PURGE_BATCH,
        )
        .map_err(AuditError::Store)
    }

    /// Deletes rotated security log files past `logging.security_log_retention_days` (relative to `now_ms`).
    pub fn sweep_logs(&self, now_ms: i64) -> std::io::Result<u64> {
        let Some(log) = &self.core.log else {
            return Ok(0);
        };
        let log = log.lock().map_err(|_| std::io::Error::other("poisoned"))?;
        super::logfile::sweep(
            log.path(),
            self.core.log_retention_days,
            crate::clock::from_unix_ms(now_ms).date(),
        )
    }

    /// The audit's database handle (its own connection).
    pub fn store(&self) -> &Sqlite {
        &self.core.db
    }

    /// The metrics this audit counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }

    /// Alerts waiting to be delivered (0 when alerts are not configured).
    pub fn alert_queue_len(&self) -> usize {
        self.core.alerter.as_ref().map_or(0, Alerter::queued)
    }

    /// Store writability, drops, the newest 100 entries verified, alert delivery.
    pub fn health(&self) -> AuditHealth {
        let (head_verified, head_detail) = match sqlite::verify_head(&self.core.db, 100) {
            Ok(n) => (true, format!("newest {n} entries verified")),
            Err(e) => (false, e.to_string()),
        };
        AuditHealth {
            writable: self.core.writable.load(Ordering::Relaxed),
            last_error: self.core.last_error.lock().ok().and_then(|e| e.clone()),
            dropped: self.core.metrics.audit_dropped_count(),
            head_verified,
            head_detail,
            alerts: self.core.alerter.as_ref().map(Alerter::status),
        }
    }
}
