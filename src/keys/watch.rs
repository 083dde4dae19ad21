//! The running server's view of the key store: picks up changes made by the
//! CLI (or by hand) within a few seconds, expires retiring keys, rotates on
//! schedule, and reports every step as a `KEY_ROTATION` event.
//!
//! Polling the files' modification stamps every [`POLL`] keeps this portable
//! and well inside the 15 s the contract allows; a failed reload (a broken or
//! unsafe file) keeps the current key set and is logged, never fatal.

use std::future::Future;
use std::time::Duration;

use super::{HistoryEntry, KeyRing};
use crate::audit::{Audit, EventType, NewEvent, Severity};
use crate::clock::{Clock, rfc3339_ms};
use crate::redact::Masker;

/// How often the files are checked.
pub const POLL: Duration = Duration::from_secs(2);

/// Runs until `shutdown` completes: reloads on change, does upkeep
/// ([`KeyRing::maintain`]), records new history entries as `KEY_ROTATION`
/// events (key ids only) and teaches `masker` every new secret.
pub async fn watch(
    ring: KeyRing,
    clock: Clock,
    audit: Audit,
    masker: Masker,
    shutdown: impl Future<Output = ()>,
) {
    let Some(files) = ring.files().cloned() else {
        shutdown.await;
        return;
    };
    tokio::pin!(shutdown);
    // The ring was read at start-up, before this task ran: a change made in
    // between would match the first stamp taken here and never be seen. So
    // stamp first, then read again; later changes move the stamp.
    let mut seen = ring.last_history_seq();
    let mut stamp = files.stamp();
    if let Err(e) = ring.reload(clock.now_ms()) {
        tracing::error!(error = %e, "key store reload failed; keeping the current keys");
    }
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(POLL) => {}
        }
        let now = clock.now_ms();
        if let Err(e) = ring.maintain(now) {
            tracing::error!(error = %e, "key store upkeep failed; keeping the current keys");
        }
        let current = files.stamp();
        if current != stamp {
            match ring.reload(now) {
                Ok(()) => stamp = current,
                Err(e) => {
                    tracing::error!(error = %e, "key store reload failed; keeping the current keys")
                }
            }
        }
        masker.set_known_secrets(ring.all_secrets().iter());
        let fresh: Vec<HistoryEntry> = ring
            .history()
            .into_iter()
            .filter(|e| e.seq > seen)
            .collect();
        for entry in fresh {
            seen = entry.seq;
            audit.record(event_of(&entry));
        }
    }
}

/// The security event of one history entry (key ids and times, never secrets).
pub fn event_of(entry: &HistoryEntry) -> NewEvent {
    let mut ev = NewEvent::new(EventType::KeyRotation, Severity::Medium)
        .key(entry.key_id.clone())
        .detail("action", entry.action.name())
        .detail("by", entry.by.clone())
        .detail("at", rfc3339_ms(entry.at_ms));
    if !entry.retired.is_empty() {
        ev = ev.detail("retired", entry.retired.clone());
    }
    if let Some(until) = entry.until_ms {
        ev = ev.detail("retiring_until", rfc3339_ms(until));
    }
    ev
}
