//! One person's records in the audit: export and erasure (SPEC "Personal data").
//!
//! The chain is erased without breaking it: a version-2 entry hashes a salted
//! commitment to its personal fields, so clearing them (and the salt) leaves
//! its hash and every link intact ([`super::chain`]). The erasure and its
//! `SUBJECT_ERASED` record (no identity; the ids of the entries erased) are
//! one transaction: on an unwritable store nothing is erased (fail closed).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{Audit, AuditError, EventType, NewEvent, Severity, StoredEvent, logfile, sqlite};
use crate::store::{Sqlite, StoreError};

/// What an erasure changed in the audit.
#[derive(Clone, Debug, Serialize)]
pub struct AuditErasure {
    /// The `SUBJECT_ERASED` entry recorded.
    pub event_id: String,
    /// Audit entries whose personal fields were erased.
    pub audit_entries: u64,
    /// Security log lines rewritten or dropped (all files).
    pub security_log_lines: u64,
}

/// What the audit holds about a subject.
#[derive(Clone, Debug, Serialize)]
pub struct AuditExport {
    /// Stored events about it, oldest first.
    pub security_events: Vec<StoredEvent>,
    /// Security log lines about it (every file).
    pub security_log: Vec<Value>,
}

impl Audit {
    /// Every stored event and log line about the subject (`needles`: its identity and hash).
    pub fn export_subject(&self, needles: &[String]) -> Result<AuditExport, AuditError> {
        let security_events =
            sqlite::subject_events(&self.core.db, needles).map_err(AuditError::Store)?;
        let security_log = match self.log_path() {
            Some(p) => logfile::lines_about(&p, needles).map_err(|e| {
                AuditError::Store(StoreError::Dir {
                    path: p.clone(),
                    source: e,
                })
            })?,
            None => Vec::new(),
        };
        Ok(AuditExport {
            security_events,
            security_log,
        })
    }

    /// Erases the subject from the chain (recording `SUBJECT_ERASED` in the
    /// same transaction), the security log files and the in-memory recent
    /// events. Blocking; refused with [`AuditError::NotRecorded`] when the
    /// store cannot record the erasure. `key_id` names who asked.
    pub fn erase_subject(
        &self,
        needles: &[String],
        key_id: Option<String>,
        via: &str,
    ) -> Result<AuditErasure, AuditError> {
        let core = &self.core;
        let mut e = NewEvent::new(EventType::SubjectErased, Severity::Medium).detail("via", via);
        if let Some(k) = key_id {
            e = e.key(k);
        }
        let e = core.prepare(e);
        let at = core.clock.now_ms();
        let event = StoredEvent::unchained(e, at);
        let (stored, ids) = match sqlite::erase_subject(&core.db, needles, event, at) {
            Ok(r) => r,
            Err(err) => {
                core.failed(&err);
                return Err(AuditError::NotRecorded(err));
            }
        };
        core.metrics.security_event(EventType::SubjectErased);
        if let Ok(mut r) = core.recent.lock() {
            r.retain(|ev| {
                !ev.identity
                    .as_deref()
                    .is_some_and(|i| needles.iter().any(|n| n == i))
            });
        }
        let mut lines = 0;
        if let Some(log) = &core.log {
            let mut log = log
                .lock()
                .map_err(|_| AuditError::Store(StoreError::Poisoned))?;
            lines = log.erase(needles).map_err(|e| {
                AuditError::Store(StoreError::Dir {
                    path: log.path().to_path_buf(),
                    source: e,
                })
            })?;
        }
        core.after(&stored, at);
        Ok(AuditErasure {
            event_id: stored.id,
            audit_entries: ids.len() as u64,
            security_log_lines: lines,
        })
    }

    fn log_path(&self) -> Option<std::path::PathBuf> {
        let log = self.core.log.as_ref()?;
        log.lock().ok().map(|l| l.path().to_path_buf())
    }
}

/// Makes deleted data unrecoverable from the database file: `VACUUM` (no free
/// page keeps old rows, whether or not it was deleted with `secure_delete`),
/// then a `wal_checkpoint(TRUNCATE)` (no WAL frame keeps them), retried while
/// readers hold the WAL. True when both were done; false when the database
/// stayed busy (the erasure itself holds: run it again to scrub the file).
pub fn scrub_database(db: &Sqlite) -> Result<bool, StoreError> {
    if db.path().to_str() == Some(":memory:") {
        return Ok(true);
    }
    // VACUUM needs the write lock: another writer (the journal, the CLI) may
    // hold it for a moment, beyond the busy timeout only under heavy load.
    let mut vacuumed = false;
    for _ in 0..5 {
        match db.with(|c| c.execute_batch("PRAGMA secure_delete=ON; VACUUM;")) {
            Ok(()) => {
                vacuumed = true;
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "VACUUM after an erasure failed; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    if !vacuumed {
        return Ok(false);
    }
    for _ in 0..50 {
        let busy: i64 =
            db.with(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)))?;
        if busy == 0 {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(false)
}
