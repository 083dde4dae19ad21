//! One person's records across every store (SPEC "Personal data"):
//! `warden subject export|erase --identity I` and
//! `POST /api/security/subjects/{export,erase}`.
//!
//! A subject is found by its plain identity, its sanitised form (what the
//! stream carries with `realtime.hash_identities: false`) and its hash (8 hex
//! of HMAC-SHA256 with the pepper, what everything else carries). Erasure
//! runs in this order: the audit first — it records `SUBJECT_ERASED` in the
//! same transaction that erases the chain's personal fields, so on an
//! unwritable audit store nothing at all is erased (fail closed) — then the
//! security log files, then the hub (history rows and room rows on the
//! journal's writer thread, then the ring and the live room state), and last
//! the database file itself is vacuumed and its WAL truncated so no free page
//! or WAL frame keeps a copy.

use serde::Serialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit::{AuditErasure, AuditError, scrub_database};
use crate::hub::erase::HubErasure;
use crate::pepper::Pepper;
use crate::webhook::sanitize;

/// Longest identity accepted (LiveKit has no limit; this bounds the work).
pub const MAX_IDENTITY_BYTES: usize = 1024;

/// Why a subject request failed.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    /// The identity is empty, too long or holds control characters.
    #[error("invalid identity: {0}")]
    Invalid(&'static str),
    /// The audit store cannot record the erasure: nothing was erased.
    #[error("the audit log cannot record this erasure, so nothing was erased (fail closed): {0}")]
    AuditUnavailable(#[source] AuditError),
    /// A store could not be read or changed.
    #[error("{0}")]
    Store(String),
}

/// Checks an identity given by an operator.
pub fn validate(identity: &str) -> Result<(), SubjectError> {
    if identity.is_empty() {
        return Err(SubjectError::Invalid("it is empty"));
    }
    if identity.len() > MAX_IDENTITY_BYTES {
        return Err(SubjectError::Invalid("it is longer than 1024 bytes"));
    }
    if identity.chars().any(char::is_control) {
        return Err(SubjectError::Invalid("it holds control characters"));
    }
    Ok(())
}

/// The forms under which the stores hold `identity`: plain, sanitised, hashed.
pub fn needles(identity: &str, pepper: &Pepper) -> Vec<String> {
    let mut out = vec![
        identity.to_owned(),
        sanitize::text(identity, sanitize::MAX_TEXT_CHARS),
        pepper.hash_identity(identity),
    ];
    out.retain(|n| !n.is_empty());
    out.dedup();
    out
}

/// What an erasure changed, store by store.
#[derive(Clone, Debug, Serialize)]
pub struct Erasure {
    /// The identity's hash (the form most stores held).
    pub identity_hash: String,
    /// The audit chain and the security log files.
    pub audit: AuditErasure,
    /// History and room state.
    pub hub: HubErasure,
    /// Entries of the shared Redis stream rewritten (`storage.backend: redis`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_stream_entries: Option<u64>,
    /// The database was vacuumed and its WAL truncated.
    pub database_scrubbed: bool,
}

fn store_err(e: impl std::fmt::Display) -> SubjectError {
    SubjectError::Store(e.to_string())
}

/// Everything a running server holds about `identity`, as one JSON document.
pub async fn export(state: &AppState, identity: &str) -> Result<Value, SubjectError> {
    validate(identity)?;
    let needles = needles(identity, &state.pepper);
    // Webhooks are acknowledged only once stored, so the hub is current; queued
    // security events are written first.
    state.audit.flush().await;
    let hub = state.hub.export_subject(&needles);
    let audit = state.audit.clone();
    let n = needles.clone();
    let audit = tokio::task::spawn_blocking(move || audit.export_subject(&n))
        .await
        .map_err(store_err)?
        .map_err(store_err)?;
    Ok(document(identity, &state.pepper, hub, audit))
}

fn document(
    identity: &str,
    pepper: &Pepper,
    hub: crate::hub::erase::HubExport,
    audit: crate::audit::AuditExport,
) -> Value {
    json!({
        "identity": identity,
        "identity_hash": pepper.hash_identity(identity),
        "room_state": hub.room_state,
        "history": hub.history,
        "security_events": audit.security_events,
        "security_log": audit.security_log,
    })
}

/// Erases `identity` from every store of a running server; `key_id` and
/// `via` say who asked (recorded in `SUBJECT_ERASED`, which holds no identity).
pub async fn erase(
    state: &AppState,
    identity: &str,
    key_id: Option<String>,
    via: &'static str,
) -> Result<Erasure, SubjectError> {
    validate(identity)?;
    let needles = needles(identity, &state.pepper);
    // Events already queued (and counted repeats of a denial) are written
    // first, so none lands after the erasure.
    state.audit.write_summaries_about(&needles);
    state.audit.flush().await;
    let audit = state.audit.clone();
    let n = needles.clone();
    let audit = tokio::task::spawn_blocking(move || audit.erase_subject(&n, key_id, via))
        .await
        .map_err(store_err)?
        .map_err(|e| match e {
            AuditError::NotRecorded(_) | AuditError::WriterStopped => {
                SubjectError::AuditUnavailable(e)
            }
            other => store_err(other),
        })?;
    let redis_stream_entries = match &state.cluster {
        Some(cluster) => Some(cluster.erase_subject(&needles).await.map_err(store_err)?),
        None => None,
    };
    let hub = state
        .hub
        .erase_subject(needles)
        .await
        .map_err(|e| store_err(&*e))?;
    let db = state.audit.store().clone();
    let database_scrubbed = tokio::task::spawn_blocking(move || scrub_database(&db))
        .await
        .map_err(store_err)?
        .map_err(store_err)?;
    Ok(Erasure {
        identity_hash: state.pepper.hash_identity(identity),
        audit,
        hub,
        redis_stream_entries,
        database_scrubbed,
    })
}

/// Offline forms: the stores of a stopped server, opened from its configuration.
pub mod offline {
    use super::*;
    use crate::audit::Audit;
    use crate::config::{Backend, Config};
    use crate::store::Sqlite;

    fn open(
        cfg: &Config,
        clock: &crate::clock::Clock,
        masker: &crate::redact::Masker,
    ) -> Result<(Pepper, Audit, Sqlite), SubjectError> {
        if cfg.storage.backend == Backend::Redis {
            return Err(SubjectError::Store(
                "with storage.backend: redis, run this against a running server (the pepper and the stream live in Redis)".into(),
            ));
        }
        let pepper = Pepper::load_or_create(&cfg.data_dir()).map_err(store_err)?;
        let db = Sqlite::open(&cfg.storage.path).map_err(store_err)?;
        let mut cfg = cfg.clone();
        cfg.alerts.webhook_url = None;
        let (audit, _worker) = Audit::open(
            &cfg,
            db.clone(),
            clock.clone(),
            masker.clone(),
            crate::metrics::Metrics::new(),
        )
        .map_err(store_err)?;
        Ok((pepper, audit, db))
    }

    /// [`super::export`] on the files of a stopped server.
    pub fn export(
        cfg: &Config,
        clock: &crate::clock::Clock,
        masker: &crate::redact::Masker,
        identity: &str,
    ) -> Result<Value, SubjectError> {
        validate(identity)?;
        let (pepper, audit, db) = open(cfg, clock, masker)?;
        let needles = needles(identity, &pepper);
        let hub = db
            .with(|c| crate::hub::erase::export_offline(c, &needles))
            .map_err(store_err)?;
        let audit = audit.export_subject(&needles).map_err(store_err)?;
        Ok(document(identity, &pepper, hub, audit))
    }

    /// [`super::erase`] on the files of a stopped server.
    pub fn erase(
        cfg: &Config,
        clock: &crate::clock::Clock,
        masker: &crate::redact::Masker,
        identity: &str,
    ) -> Result<Erasure, SubjectError> {
        validate(identity)?;
        let (pepper, audit, db) = open(cfg, clock, masker)?;
        let needles = needles(identity, &pepper);
        let audit = audit
            .erase_subject(&needles, None, "cli")
            .map_err(|e| match e {
                AuditError::NotRecorded(_) => SubjectError::AuditUnavailable(e),
                other => store_err(other),
            })?;
        let hub = db
            .with(|c| crate::hub::erase::erase_offline(c, &needles))
            .map_err(store_err)?;
        let database_scrubbed = scrub_database(&db).map_err(store_err)?;
        Ok(Erasure {
            identity_hash: pepper.hash_identity(identity),
            audit,
            hub,
            redis_stream_entries: None,
            database_scrubbed,
        })
    }
}

/// What one retention sweep removed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Swept {
    /// History frames older than `realtime.history_retention_hours`.
    pub history_frames: u64,
    /// Rotated security log files older than `logging.security_log_retention_days`.
    pub security_log_files: u64,
}

/// How often the retention sweep runs.
pub const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// One retention sweep at the state's clock: the history past its retention
/// (disk and memory) and the rotated security log files past theirs; then
/// the WAL is checkpointed so the deleted rows leave it too (`secure_delete`
/// zeroes them in the database file). The audit chain has its own purge.
pub async fn sweep_retention(state: &AppState) -> Result<Swept, SubjectError> {
    let now = state.clock.now_ms();
    let hours = i64::from(state.config.realtime.history_retention_hours);
    let history_frames = state
        .hub
        .expire_history(now.saturating_sub(hours * 3_600_000))
        .await
        .map_err(|e| store_err(&*e))?;
    let audit = state.audit.clone();
    let security_log_files = tokio::task::spawn_blocking(move || {
        let n = audit.sweep_logs(now);
        let _ = audit
            .store()
            .with(|c| c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())));
        n
    })
    .await
    .map_err(store_err)?
    .map_err(store_err)?;
    Ok(Swept {
        history_frames,
        security_log_files,
    })
}

/// Runs [`sweep_retention`] at start and every [`SWEEP_EVERY`] until `shutdown` completes.
pub async fn run_retention(state: AppState, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        match sweep_retention(&state).await {
            Ok(s) if s.history_frames + s.security_log_files > 0 => tracing::info!(
                history_frames = s.history_frames,
                security_log_files = s.security_log_files,
                "retention: expired personal data removed"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
        }
    }
}
