//! Reading the audit store: recent events, counts by type, paged queries.
//!
//! These are short read statements on the audit's own connection; the HTTP
//! layer may call them directly or through `spawn_blocking`. Pages go from
//! newest to oldest; the cursor is the opaque position of the last entry
//! returned, so entries appended meanwhile never shift a page.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Audit, AuditError, EventType, StoredEvent, sqlite};

/// Events per type over recent windows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Last hour, every type present (0 when none).
    #[serde(rename = "1h")]
    pub last_hour: BTreeMap<&'static str, u64>,
    /// Last 24 hours, every type present.
    #[serde(rename = "24h")]
    pub last_day: BTreeMap<&'static str, u64>,
}

/// One page of a query.
#[derive(Clone, Debug, Serialize)]
pub struct Page {
    /// The events, newest first.
    pub events: Vec<StoredEvent>,
    /// Cursor for the next (older) page; `None` at the end.
    pub next: Option<String>,
}

/// Largest page.
pub const MAX_LIMIT: usize = 1000;

impl Audit {
    /// The newest `n` stored events, newest first.
    pub fn recent_events(&self, n: usize) -> Result<Vec<StoredEvent>, AuditError> {
        Ok(self.query(None, None, n, None)?.events)
    }

    /// Counts by type over the last hour and the last 24 hours before `now_ms`.
    pub fn counts(&self, now_ms: i64) -> Result<Counts, AuditError> {
        let window = |since: i64| -> Result<BTreeMap<&'static str, u64>, AuditError> {
            let rows: Vec<(String, i64)> = self
                .store()
                .with(|c| {
                    let mut st = c.prepare(
                        "SELECT type, count(*) FROM audit_events WHERE ts_ms >= ?1 GROUP BY type",
                    )?;
                    st.query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(AuditError::Store)?;
            let mut out: BTreeMap<&'static str, u64> =
                EventType::ALL.iter().map(|t| (t.as_str(), 0)).collect();
            for (kind, n) in rows {
                if let Ok(t) = kind.parse::<EventType>() {
                    out.insert(t.as_str(), u64::try_from(n).unwrap_or(0));
                }
            }
            Ok(out)
        };
        Ok(Counts {
            last_hour: window(now_ms - 3_600_000)?,
            last_day: window(now_ms - 86_400_000)?,
        })
    }

    /// Events of `kind` (any when `None`) recorded at or after `since_ms`, newest
    /// first, at most `limit` (1..=1000), continuing after `cursor`.
    /// An unreadable cursor starts from the newest.
    pub fn query(
        &self,
        kind: Option<EventType>,
        since_ms: Option<i64>,
        limit: usize,
        cursor: Option<String>,
    ) -> Result<Page, AuditError> {
        let limit = limit.clamp(1, MAX_LIMIT);
        let before = cursor
            .and_then(|c| c.parse::<i64>().ok())
            .unwrap_or(i64::MAX);
        let kind = kind.map(EventType::as_str);
        let rows: Vec<(i64, String, String, Option<String>)> = self
            .store()
            .with(|c| {
                let mut st = c.prepare(
                    "SELECT seq, body, hash, personal FROM audit_events
                     WHERE seq < ?1 AND ts_ms >= ?2 AND (?3 IS NULL OR type = ?3)
                     ORDER BY seq DESC LIMIT ?4",
                )?;
                let params = rusqlite::params![
                    before,
                    since_ms.unwrap_or(i64::MIN),
                    kind,
                    (limit + 1) as i64
                ];
                st.query_map(params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .map_err(AuditError::Store)?;
        let more = rows.len() > limit;
        let mut parsed = sqlite::parse_bodies(rows);
        parsed.truncate(limit);
        let next = if more {
            parsed.last().map(|(seq, _)| seq.to_string())
        } else {
            None
        };
        Ok(Page {
            events: parsed.into_iter().map(|(_, e)| e).collect(),
            next,
        })
    }

    /// For following the log (`warden audit tail -f`): with `after` unset,
    /// the newest `limit` events recorded at or after `since_ms`; with
    /// `after` set, the events recorded after that position. Oldest first,
    /// each with its position.
    pub fn tail(
        &self,
        after: Option<i64>,
        since_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<(i64, StoredEvent)>, AuditError> {
        let limit = limit.clamp(1, MAX_LIMIT) as i64;
        let since = since_ms.unwrap_or(i64::MIN);
        let rows: Vec<(i64, String, String, Option<String>)> = self
            .store()
            .with(|c| {
                let sql = if after.is_some() {
                    "SELECT seq, body, hash, personal FROM audit_events
                     WHERE seq > ?1 AND ts_ms >= ?2 ORDER BY seq ASC LIMIT ?3"
                } else {
                    "SELECT seq, body, hash, personal FROM audit_events
                     WHERE seq > ?1 AND ts_ms >= ?2 ORDER BY seq DESC LIMIT ?3"
                };
                let mut st = c.prepare(sql)?;
                let params = rusqlite::params![after.unwrap_or(i64::MIN), since, limit];
                st.query_map(params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .map_err(AuditError::Store)?;
        let mut events = sqlite::parse_bodies(rows);
        if after.is_none() {
            events.reverse();
        }
        Ok(events)
    }
}
