//! Verifying the chain: every row's hash, link and index copies, from the
//! retention anchor (or genesis) to the head, or only the last few rows.

use std::collections::HashSet;

use serde_json::Value;

use super::{ROW_COLUMNS, Row, anchor, event_of, is_v2, read_row};
use crate::audit::chain::{self, GENESIS, Personal};
use crate::audit::{ChainBreak, EventType, StoredEvent};
use crate::store::Sqlite;

/// The outcome of a successful [`verify_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Hash of the last entry (the anchor's, or [`GENESIS`], when empty).
    pub head: String,
    /// Entries purged by retention before the first one kept.
    pub purged: u64,
}

/// A row that verified: its event and whether its personal fields were erased.
struct Checked {
    event: StoredEvent,
    erased: bool,
}

fn check_row(row: &Row, expected_prev: &str) -> Result<Checked, ChainBreak> {
    let altered = || ChainBreak::Altered {
        seq: row.seq,
        id: row.id.clone(),
    };
    let body: Value = serde_json::from_str(&row.body).map_err(|_| altered())?;
    // The hash covers the stored text itself: no re-serialisation, so no
    // float-formatting round trip can make an intact entry look altered.
    let sealed = chain::sha256_hex(&row.body) == row.hash;
    if is_v2(&body) {
        if !sealed {
            return Err(altered());
        }
        let commitment = body.get("personal").and_then(Value::as_str);
        let ok = match (row.personal.as_deref(), commitment) {
            (Some(p), Some(c)) => {
                !row.erased
                    && serde_json::from_str::<Personal>(p).is_ok_and(|p| p.commitment() == c)
            }
            // Erased: the commitment stays and proves only that something was there.
            (None, Some(_)) => row.erased,
            (Some(_), None) => false,
            (None, None) => !row.erased,
        };
        if !ok {
            return Err(altered());
        }
    } else if !sealed && !row.erased {
        // A version-1 entry whose personal fields were erased no longer matches
        // its own hash; its link and the erasure's record vouch for it instead.
        return Err(altered());
    }
    let event = event_of(&row.body, &row.hash, row.personal.as_deref()).ok_or_else(altered)?;
    let consistent = event.id == row.id
        && event.event.kind.as_str() == row.kind
        && crate::clock::parse_rfc3339_ms(&event.timestamp) == Some(row.ts_ms);
    if !consistent {
        return Err(altered());
    }
    if event.prev_hash != expected_prev {
        return Err(ChainBreak::Unlinked {
            seq: row.seq,
            id: row.id.clone(),
        });
    }
    Ok(Checked {
        event,
        erased: row.erased,
    })
}

/// Walks the whole chain from the anchor (or genesis); stops at the first
/// altered, inserted or deleted entry and names it.
pub fn verify_chain(db: &Sqlite) -> Result<VerifyReport, ChainBreak> {
    db.with(|conn| {
        let tx = conn.transaction()?;
        let (mut expected, purged) = match anchor(&tx)? {
            Some((_, hash, purged)) => (hash, purged),
            None => (GENESIS.to_owned(), 0),
        };
        let mut stmt = tx.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM audit_events ORDER BY seq"
        ))?;
        let mut rows = stmt.query([])?;
        let mut entries = 0u64;
        let mut erased: Vec<(i64, String)> = Vec::new();
        let mut recorded: HashSet<String> = HashSet::new();
        while let Some(r) = rows.next()? {
            let row = read_row(r)?;
            match check_row(&row, &expected) {
                Ok(c) => {
                    if c.erased {
                        erased.push((row.seq, row.id.clone()));
                    }
                    if c.event.event.kind == EventType::SubjectErased
                        && let Some(Value::Array(ids)) = c.event.event.details.get("entries")
                    {
                        recorded.extend(ids.iter().filter_map(Value::as_str).map(str::to_owned));
                    }
                    expected = c.event.hash;
                }
                Err(brk) => return Ok(Err(brk)),
            }
            entries += 1;
        }
        // An entry whose personal fields are gone must be named by a later,
        // chained SUBJECT_ERASED: otherwise someone removed them by hand.
        if let Some((seq, id)) = erased.into_iter().find(|(_, id)| !recorded.contains(id)) {
            return Ok(Err(ChainBreak::ErasedUnrecorded { seq, id }));
        }
        Ok(Ok(VerifyReport {
            entries,
            head: expected,
            purged: u64::try_from(purged).unwrap_or(0),
        }))
    })
    .map_err(ChainBreak::Store)?
}

/// Verifies the newest `n` entries (their seals and links): the cheap check of the health endpoint.
pub fn verify_head(db: &Sqlite, n: u32) -> Result<u64, ChainBreak> {
    db.with(|conn| {
        let mut stmt = conn.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT ?1"
        ))?;
        let mut rows: Vec<Row> = stmt
            .query_map([i64::from(n) + 1], read_row)?
            .collect::<Result<_, _>>()?;
        rows.reverse();
        let mut expected = if rows.len() > n as usize {
            rows.remove(0).hash
        } else {
            anchor(conn)?.map_or_else(|| GENESIS.to_owned(), |a| a.1)
        };
        for row in &rows {
            match check_row(row, &expected) {
                Ok(c) => expected = c.event.hash,
                Err(brk) => return Ok(Err(brk)),
            }
        }
        Ok(Ok(rows.len() as u64))
    })
    .map_err(ChainBreak::Store)?
}
