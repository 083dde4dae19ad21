//! The writer: masks, chains and stores an event, then writes the security
//! log line and queues the alert. Runs on the writer thread (file-backed) or
//! inline (in-memory); safe to call from several threads at once.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tokio::sync::oneshot;

use super::alerts::Alerter;
use super::logfile::SecurityLog;
use super::{AuditError, NewEvent, Severity, StoredEvent, sqlite};
use crate::clock::{self, Clock};
use crate::metrics::Metrics;
use crate::redact::Masker;
use crate::store::{Sqlite, StoreError};

/// Events kept in memory for [`super::Audit::recent`].
const RECENT: usize = 256;

pub(super) enum Job {
    Record(NewEvent, i64),
    Durable(
        NewEvent,
        i64,
        oneshot::Sender<Result<StoredEvent, AuditError>>,
    ),
    Flush(oneshot::Sender<()>),
}

pub(super) struct Writer {
    pub(super) db: Sqlite,
    pub(super) masker: Masker,
    pub(super) clock: Clock,
    pub(super) metrics: Metrics,
    pub(super) retention_ms: i64,
    pub(super) min_severity: Severity,
    pub(super) log: Option<Mutex<SecurityLog>>,
    pub(super) alerter: Option<Alerter>,
    pub(super) writable: AtomicBool,
    pub(super) last_error: Mutex<Option<String>>,
    pub(super) drop_warned: AtomicBool,
    pub(super) log_warned: AtomicBool,
    pub(super) recent: Mutex<VecDeque<NewEvent>>,
    /// Rotated security log files older than this are deleted.
    pub(super) log_retention_days: u32,
    /// Repeated identical denials, counted before they reach the chain.
    pub(super) coalescer: super::coalesce::Coalescer,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
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
            log_retention_days: 90,
            coalescer: super::coalesce::Coalescer::default(),
        }
    }

    /// Masks every string the caller supplied (they should hold no secret; this makes sure).
    pub(super) fn prepare(&self, mut e: NewEvent) -> NewEvent {
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

    pub(super) fn handle(&self, job: Job) {
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

    pub(super) fn write(&self, e: NewEvent, at: i64) -> Result<StoredEvent, AuditError> {
        let event = StoredEvent::unchained(e, at);
        self.metrics.security_event(event.event.kind);
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

    pub(super) fn failed(&self, err: &StoreError) {
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

    pub(super) fn after(&self, event: &StoredEvent, at: i64) {
        // What an operator acts on: type, severity (the API's spelling),
        // source and the details (already masked; the identity is hashed).
        let e = &event.event;
        let source = e.source_ip.map(|ip| ip.to_string());
        let details = serde_json::to_string(&e.details).unwrap_or_default();
        tracing::info!(
            security.id = %event.id,
            security.type = e.kind.as_str(),
            security.severity = e.severity.as_str(),
            security.source = source.as_deref().unwrap_or("-"),
            security.key_id = e.key_id.as_deref().unwrap_or("-"),
            security.details = %details,
            "security event"
        );
        if let Some(log) = &self.log {
            let line = serde_json::to_string(event).expect("a StoredEvent always serialises");
            let res = log
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))
                .and_then(|mut l| l.append(&line, clock::from_unix_ms(at).date()));
            match res {
                Ok(()) => self.log_warned.store(false, Ordering::Relaxed),
                Err(e) if !self.log_warned.swap(true, Ordering::Relaxed) => {
                    tracing::error!(error = %e, "cannot write the security log file");
                }
                Err(_) => {}
            }
        }
        if event.event.severity >= self.min_severity
            && let Some(a) = &self.alerter
        {
            a.enqueue(event);
        }
    }
}

/// A detail whose name says it holds a credential is masked whole, whatever its value looks like.
fn secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "passwd",
        "signature",
        "authorization",
        "cookie",
        "private_key",
        "api_key",
    ]
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
