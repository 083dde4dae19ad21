//! The [`Audit`] handle: the record path.
//!
//! File-backed audits write on a dedicated thread fed by a bounded channel:
//! an append may wait up to SQLite's busy timeout while another process (the
//! CLI) holds the write lock, and that wait must never sit on a request or
//! on a tokio worker. The audit opens its own connection to the database for
//! the same reason: a slow append never holds the lock other components use.
//! In-memory audits (unit tests of other modules) write inline, so an event
//! is visible as soon as `record` returns.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::alerts::{Alerter, SigningKey};
use super::logfile::SecurityLog;
use super::worker::{AuditWorker, alert_signing_secret};
use super::writer::{Job, Writer};
use super::{AuditError, NewEvent, Severity, StoredEvent, sqlite, target};
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::redact::Masker;
use crate::store::Sqlite;

/// Events waiting for the writer before `record` starts dropping.
const QUEUE: usize = 4096;

/// The audit handle: cheap to clone; `record` never blocks the caller.
#[derive(Clone)]
pub struct Audit {
    pub(super) core: Arc<Writer>,
    tx: Option<mpsc::Sender<Job>>,
}

impl fmt::Debug for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Audit")
            .field("db", &self.core.db)
            .finish_non_exhaustive()
    }
}

impl Default for Audit {
    /// Same as [`Audit::in_memory`].
    fn default() -> Self {
        Self::in_memory()
    }
}

impl Audit {
    /// Opens the audit on `db`'s file (its own connection), the security log and
    /// the alert sender, and starts the writer thread. Spawn the returned
    /// worker for alerts and retention. Fails on an invalid alert URL or secret.
    pub fn open(
        cfg: &Config,
        db: Sqlite,
        clock: Clock,
        masker: Masker,
        metrics: Metrics,
    ) -> Result<(Self, AuditWorker), AuditError> {
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
        let log = Some(Mutex::new(SecurityLog::new(
            cfg.logging.security_log_file.clone(),
            cfg.logging.security_log_max_bytes,
        )));
        let retention_ms = i64::from(cfg.logging.audit_log_retention_days) * 86_400_000;
        let mut core = Writer::new(
            db,
            masker,
            clock,
            metrics,
            retention_ms,
            cfg.alerts.min_severity,
            log,
            alerter.clone(),
        );
        core.log_retention_days = cfg.logging.security_log_retention_days;
        let core = Arc::new(core);
        let tx = spawn_writer(Arc::clone(&core))?;
        let audit = Self { core, tx: Some(tx) };
        Ok((audit.clone(), AuditWorker { audit, alerter }))
    }

    /// An audit whose chain lives in an in-memory database, written inline
    /// (no thread, no runtime, no log file, no alerts): for tests.
    pub fn in_memory() -> Self {
        let db = Sqlite::in_memory().expect("an in-memory SQLite database opens");
        sqlite::migrate(&db).expect("the audit schema applies to an empty database");
        let core = Writer::new(
            db,
            Masker::new(),
            Clock::system(),
            Metrics::new(),
            90 * 86_400_000,
            Severity::Critical,
            None,
            None,
        );
        Self {
            core: Arc::new(core),
            tx: None,
        }
    }

    /// Records a security event. Never blocks: when the writer is behind the
    /// event is dropped and counted; a store failure is logged and alerted.
    /// An identical repeat of a recent denial is counted instead, and written
    /// as one summary once its window is over (see [`super::coalesce`]).
    pub fn record(&self, event: NewEvent) {
        let verdict = self.core.coalescer.offer(&event, self.core.clock.now_ms());
        for summary in verdict.summaries {
            self.append(summary);
        }
        if verdict.write {
            self.append(event);
        } else {
            // Counted where rates are watched, even though not appended one by one.
            self.core.metrics.security_event(event.kind);
        }
    }

    /// Writes the summaries of the denial runs whose window is over (the
    /// audit worker calls this every few seconds, so a run ends on time
    /// even when no other event follows it).
    pub fn write_due_summaries(&self) {
        for summary in self.core.coalescer.due(self.core.clock.now_ms()) {
            self.append(summary);
        }
    }

    /// Shutdown: writes the summaries of every open denial run, then waits
    /// until everything recorded is written.
    pub async fn close(&self) {
        for summary in self.core.coalescer.drain() {
            self.append(summary);
        }
        self.flush().await;
    }

    /// Writes the summaries of the open denial runs about `identities`
    /// (hashed), so an erasure that follows finds them (see [`super::coalesce`]).
    pub fn write_summaries_about(&self, identities: &[String]) {
        for summary in self.core.coalescer.drain_about(identities) {
            self.append(summary);
        }
    }

    fn append(&self, event: NewEvent) {
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
                        tracing::error!(
                            "audit queue full: security events are being dropped (counted in warden_audit_dropped_total)"
                        );
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
        tx.send(Job::Durable(event, at, done))
            .await
            .map_err(|_| AuditError::WriterStopped)?;
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
        self.core
            .recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Starts the writer thread; it ends when the last [`Audit`] clone is dropped, after writing what is queued.
fn spawn_writer(core: Arc<Writer>) -> Result<mpsc::Sender<Job>, AuditError> {
    let (tx, mut rx) = mpsc::channel(QUEUE);
    std::thread::Builder::new()
        .name("audit-writer".into())
        .spawn(move || {
            while let Some(job) = rx.blocking_recv() {
                core.handle(job);
            }
        })
        .map_err(AuditError::Thread)?;
    Ok(tx)
}
