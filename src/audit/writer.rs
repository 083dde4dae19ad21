//! The [`Audit`] handle and the writer behind it.
//!
//! File-backed audits write on a dedicated thread fed by a bounded channel:
//! an append may wait up to SQLite's busy timeout while another process (the
//! CLI) holds the write lock, and that wait must never sit on a request or
//! on a tokio worker. The audit opens its own connection to the database for
//! the same reason: a slow append never holds the lock other components use.
//! In-memory audits (unit tests of other modules) write inline, so an event
//! is visible as soon as `record` returns.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::alerts::{Alerter, SigningKey};
use super::logfile::SecurityLog;
use super::{AuditError, NewEvent, Severity, StoredEvent, sqlite, target};
use crate::clock::{self, Clock};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::redact::{Masker, Secret};
use crate::store::{Sqlite, StoreError};

/// Events waiting for the writer before `record` starts dropping.
const QUEUE: usize = 4096;
/// Events kept in memory for [`Audit::recent`].
const RECENT: usize = 256;
/// Entries deleted per purge transaction.
const PURGE_BATCH: u32 = 500;
/// Name of the generated alert signing secret in `audit_settings`.
const SECRET_SETTING: &str = "alert_signing_secret";

enum Job {
    Record(NewEvent, i64),
    Durable(NewEvent, i64, oneshot::Sender<Result<StoredEvent, AuditError>>),
    Flush(oneshot::Sender<()>),
}

/// The audit handle: cheap to clone; `record` never blocks the caller.
#[derive(Clone)]
pub struct Audit {
    core: Arc<Core>,
    tx: Option<mpsc::Sender<Job>>,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit").field("db", &self.core.db).finish_non_exhaustive()
    }
}

struct Core {
    db: Sqlite,
    masker: Masker,
    clock: Clock,
    metrics: Metrics,
    retention_ms: i64,
    min_severity: Severity,
    log: Option<Mutex<SecurityLog>>,
    alerter: Option<Alerter>,
    writable: AtomicBool,
    last_error: Mutex<Option<String>>,
    drop_warned: AtomicBool,
    log_warned: AtomicBool,
    recent: Mutex<VecDeque<NewEvent>>,
}

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
    audit: Audit,
    alerter: Option<Alerter>,
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
            () = run_maintenance(self.audit, std::future::pending()) => {}
        }
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
            Ok(Ok(n)) => tracing::info!(purged = n, "audit retention: expired entries purged behind the anchor"),
            Ok(Err(e)) => tracing::warn!(error = %e, "audit retention failed"),
            Err(e) => tracing::warn!(error = %e, "audit retention task failed"),
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
    let kept = sqlite::setting_or_insert(db, SECRET_SETTING, fresh.expose()).map_err(AuditError::Store)?;
    tracing::info!("generated the alert signing secret and kept it in the store; `warden audit alert-secret` prints it");
    Ok(Secret::new(kept))
}

impl Audit {
    /// Opens the audit on `db`'s file (its own connection), the security log and
    /// the alert sender, and starts the writer thread. Spawn the returned
    /// worker for alerts and retention. Fails on an invalid alert URL or secret.
    pub fn open(cfg: &Config, db: Sqlite, clock: Clock, masker: Masker, metrics: Metrics) -> Result<(Self, AuditWorker), AuditError> {
        let db = match db.path().to_str() {
            Some(":memory:") => db,
            _ => Sqlite::open(db.path()).map_err(AuditError::Store)?,
        };
        sqlite::migrate(&db).map_err(AuditError::Store)?;
        let alerter = match &cfg.alerts.webhook_url {
            Some(url) => {
                let url = target::validate_alert_url(url, cfg)?;
                let key = SigningKey::from_whsec(&alert_signing_secret(&db, cfg)?)?;
                Some(Alerter::new(url, cfg, key, clock.clone(), metrics.clone()))
            }
            None => None,
        };
        let log = Some(Mutex::new(SecurityLog::new(cfg.logging.security_log_file.clone(), cfg.logging.security_log_max_bytes)));
        let retention_ms = i64::from(cfg.logging.audit_log_retention_days) * 86_400_000;
        let core = Arc::new(Core::new(db, masker, clock, metrics, retention_ms, cfg.alerts.min_severity, log, alerter.clone()));
        let (tx, mut rx) = mpsc::channel(QUEUE);
        let writer = Arc::clone(&core);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    writer.handle(job);
                }
            })
            .map_err(|e| AuditError::Store(StoreError::Dir { path: "audit-writer thread".into(), source: e }))?;
        let audit = Self { core, tx: Some(tx) };
        Ok((audit.clone(), AuditWorker { audit, alerter }))
    }

    /// An audit whose chain lives in an in-memory database, written inline
    /// (no thread, no runtime, no log file, no alerts): for tests.
    pub fn in_memory() -> Self {
        let db = Sqlite::in_memory().expect("an in-memory SQLite database opens");
        sqlite::migrate(&db).expect("the audit schema applies to an empty database");
        let core = Core::new(db, Masker::new(), Clock::system(), Metrics::new(), 90 * 86_400_000, Severity::Critical, None, None);
        Self { core: Arc::new(core), tx: None }
    }

    /// Records a security event. Never blocks: when the writer is behind the
    /// event is dropped and counted; a store failure is logged and alerted.
    pub fn record(&self, event: NewEvent) {
        let event = self.core.prepare(event);
        let at = self.core.clock.now_ms();
        match &self.tx {
            None => {
                let _ = self.core.write(event, at);
            }
            Some(tx) => match tx.try_send(Job::Record(event, at)) {
                Ok(()) => self.core.drop_warned.store(false, Ordering::Relaxed),
                Err(_) => {
                    self.core.metrics.audit_dropped();
                    if !self.core.drop_warned.swap(true, Ordering::Relaxed) {
                        tracing::error!("audit queue full: security events are being dropped (counted in warden_audit_dropped_total)");
                    }
                }
            },
        }
    }

    /// Records an event and returns once it is in the store; an error means it
    /// is not, and the operation that needed it must not go ahead.
    pub async fn record_durable(&self, event: NewEvent) -> Result<StoredEvent, AuditError> {
        let event = self.core.prepare(event);
        let at = self.core.clock.now_ms();
        let Some(tx) = &self.tx else {
            return self.core.write(event, at);
        };
        let (done, wait) = oneshot::channel();
        tx.send(Job::Durable(event, at, done)).await.map_err(|_| AuditError::WriterStopped)?;
        wait.await.map_err(|_| AuditError::WriterStopped)?
    }

    /// [`Audit::record_durable`] for synchronous callers (the CLI): writes on the calling thread.
    pub fn record_durable_blocking(&self, event: NewEvent) -> Result<StoredEvent, AuditError> {
        let event = self.core.prepare(event);
        self.core.write(event, self.core.clock.now_ms())
    }

    /// Waits until every event recorded before this call has been written.
    pub async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Job::Flush(done)).await.is_ok() {
                let _ = wait.await;
            }
        }
    }

    /// Events recorded by this process (masked, newest last, at most 256): for tests.
    pub fn recent(&self) -> Vec<NewEvent> {
        self.core.recent.lock().map(|r| r.iter().cloned().collect()).unwrap_or_default()
    }

    /// Purges entries older than the retention (relative to `now_ms`) behind the anchor.
    pub fn purge(&self, now_ms: i64) -> Result<u64, AuditError> {
        sqlite::purge(&self.core.db, now_ms.saturating_sub(self.core.retention_ms), PURGE_BATCH).map_err(AuditError::Store)
    }

    /// The audit's database handle (its own connection).
    pub fn store(&self) -> &Sqlite {
        &self.core.db
    }

    /// The metrics this audit counts into.
    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
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

impl Core {
    #[allow(clippy::too_many_arguments)]
    fn new(
        db: Sqlite,
        masker: Masker,
        clock: Clock,
        metrics: Metrics,
        retention_ms: i64,
        min_severity: Severity,
        log: Option<Mutex<SecurityLog>>,
        alerter: Option<Alerter>,
    ) -> Self {
        Self {
            db,
            masker,
            clock,
            metrics,
            retention_ms,
            min_severity,
            log,
            alerter,
            writable: AtomicBool::new(true),
            last_error: Mutex::new(None),
            drop_warned: AtomicBool::new(false),
            log_warned: AtomicBool::new(false),
            recent: Mutex::new(VecDeque::new()),
        }
    }

    /// Masks every string the caller supplied (they should hold no secret; this makes sure).
    fn prepare(&self, mut e: NewEvent) -> NewEvent {
        for (k, v) in e.details.iter_mut() {
            if secret_name(k) {
                *v = Value::String(crate::redact::MASK.to_owned());
            } else {
                mask_value(&self.masker, v);
            }
        }
        for s in [&mut e.identity, &mut e.key_id].into_iter().flatten() {
            *s = self.masker.mask(s).into_owned();
        }
        if let Ok(mut r) = self.recent.lock() {
            if r.len() >= RECENT {
                r.pop_front();
            }
            r.push_back(e.clone());
        }
        e
    }

    fn handle(&self, job: Job) {
        match job {
            Job::Record(e, at) => {
                let _ = self.write(e, at);
            }
            Job::Durable(e, at, done) => {
                let _ = done.send(self.write(e, at));
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }

    fn write(&self, e: NewEvent, at: i64) -> Result<StoredEvent, AuditError> {
        let event = StoredEvent {
            id: format!("evt_{:013x}{:016x}", at.max(0), rand::rng().next_u64()),
            kind: e.kind,
            severity: e.severity,
            source_ip: e.source_ip,
            identity: e.identity,
            key_id: e.key_id,
            details: e.details,
            timestamp: clock::rfc3339_ms(at),
            prev_hash: String::new(),
            hash: String::new(),
        };
        self.metrics.security_event(event.kind);
        match sqlite::append(&self.db, event.clone(), at) {
            Ok(stored) => {
                if !self.writable.swap(true, Ordering::Relaxed) {
                    tracing::warn!("audit store writable again");
                }
                self.after(&stored, at);
                Ok(stored)
            }
            Err(err) => {
                self.failed(&err);
                // Not lost: the unchained event still reaches the security log and the alert sink.
                self.after(&event, at);
                Err(AuditError::NotRecorded(err))
            }
        }
    }

    fn failed(&self, err: &StoreError) {
        self.metrics.audit_write_failure();
        let text = err.to_string();
        if self.writable.swap(false, Ordering::Relaxed) {
            tracing::error!(error = %text, "CRITICAL: the audit store cannot write; sensitive admin operations are refused");
        }
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(text.clone());
        }
        if let Some(a) = &self.alerter {
            a.enqueue_store_failure(&text);
        }
    }

    fn after(&self, event: &StoredEvent, at: i64) {
        tracing::info!(
            security.id = %event.id,
            security.type = event.kind.as_str(),
            security.severity = ?event.severity,
            "security event"
        );
        if let Some(log) = &self.log {
            let line = serde_json::to_string(event).expect("a StoredEvent always serialises");
            let res = log.lock().map_err(|_| std::io::Error::other("poisoned")).and_then(|mut l| l.append(&line, clock::from_unix_ms(at).date()));
            match res {
                Ok(()) => self.log_warned.store(false, Ordering::Relaxed),
                Err(e) if !self.log_warned.swap(true, Ordering::Relaxed) => {
                    tracing::error!(error = %e, "cannot write the security log file");
                }
                Err(_) => {}
            }
        }
        if event.severity >= self.min_severity {
            if let Some(a) = &self.alerter {
                a.enqueue(event);
            }
        }
    }
}

/// A detail whose name says it holds a credential is masked whole, whatever its value looks like.
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["secret", "token", "password", "passwd", "signature", "authorization", "cookie", "private_key", "api_key"]
        .iter()
        .any(|w| n.contains(w))
}

fn mask_value(masker: &Masker, v: &mut Value) {
    match v {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(m) = masker.mask(s) {
                *s = m;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| mask_value(masker, i)),
        Value::Object(map) => map.values_mut().for_each(|i| mask_value(masker, i)),
        _ => {}
    }
}
