//! The last hour, minute by minute: security events by type (from the audit
//! store) and accepted webhooks (an in-memory ring), for the dashboard's
//! timeline (`GET /api/security/timeline`).
//!
//! Buckets are whole UTC minutes; the last one is the current, partial
//! minute. The webhook ring is this process's own count: it starts empty
//! after a restart and, on a cluster, counts what this node accepted.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use super::{Audit, AuditError, EventType};
use crate::clock::rfc3339_ms;

/// Buckets in a timeline (one hour).
pub const MINUTES: usize = 60;
const MINUTE_MS: i64 = 60_000;

/// Counts per minute over the last [`MINUTES`] minutes, in a fixed ring.
#[derive(Debug)]
pub struct MinuteCounter {
    /// Slot `m % MINUTES` holds minute `m` (minutes since the epoch) and its count.
    slots: Mutex<[(i64, u64); MINUTES]>,
}

impl Default for MinuteCounter {
    fn default() -> Self {
        Self {
            slots: Mutex::new([(i64::MIN, 0); MINUTES]),
        }
    }
}

impl MinuteCounter {
    /// Counts one at `now_ms`.
    pub fn record(&self, now_ms: i64) {
        let minute = now_ms.div_euclid(MINUTE_MS);
        if let Ok(mut slots) = self.slots.lock() {
            let slot = &mut slots[slot_of(minute)];
            if slot.0 == minute {
                slot.1 += 1;
            } else {
                *slot = (minute, 1);
            }
        }
    }

    /// The counts of the last [`MINUTES`] minutes up to `now_ms`, oldest first.
    pub fn series(&self, now_ms: i64) -> Vec<u64> {
        let last = now_ms.div_euclid(MINUTE_MS);
        let Ok(slots) = self.slots.lock() else {
            return vec![0; MINUTES];
        };
        (last - MINUTES as i64 + 1..=last)
            .map(|m| {
                let (at, n) = slots[slot_of(m)];
                if at == m { n } else { 0 }
            })
            .collect()
    }
}

fn slot_of(minute: i64) -> usize {
    usize::try_from(minute.rem_euclid(MINUTES as i64)).unwrap_or(0)
}

/// Open event-stream connections and their cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Connections {
    /// Open now.
    pub open: usize,
    /// `realtime.max_connections`.
    pub max: usize,
}

/// The body of `GET /api/security/timeline`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// Start of the oldest bucket (RFC 3339, UTC).
    pub start: String,
    /// Width of a bucket.
    pub bucket_seconds: u32,
    /// Security events per minute, every type present (zeros included); a
    /// summary of repeated denials counts as its repeats.
    pub security_events: BTreeMap<&'static str, Vec<u64>>,
    /// Webhooks accepted per minute by this process.
    pub webhooks_accepted: Vec<u64>,
    /// Open event-stream connections now.
    pub connections: Connections,
}

impl Timeline {
    /// The hour before `now_ms`, from the audit store and the webhook ring.
    pub fn build(
        audit: &Audit,
        webhooks: &MinuteCounter,
        now_ms: i64,
        connections: Connections,
    ) -> Result<Self, AuditError> {
        let first = now_ms.div_euclid(MINUTE_MS) - MINUTES as i64 + 1;
        Ok(Self {
            start: rfc3339_ms(first * MINUTE_MS),
            bucket_seconds: 60,
            security_events: audit.minutes_by_type(first)?,
            webhooks_accepted: webhooks.series(now_ms),
            connections,
        })
    }
}

impl Audit {
    /// Stored events per type per minute, for the [`MINUTES`] minutes
    /// starting at minute `first` (minutes since the epoch); a summary of
    /// counted denials counts as the repeats it stands for.
    fn minutes_by_type(&self, first: i64) -> Result<BTreeMap<&'static str, Vec<u64>>, AuditError> {
        let rows: Vec<(String, i64, i64)> = self
            .store()
            .with(|c| {
                // A summary of counted denials (see `coalesce`) weighs its count.
                let mut st = c.prepare(
                    "SELECT type, ts_ms / 60000, sum(
                         CASE WHEN json_valid(body) THEN
                             CASE WHEN json_extract(body, '$.details.first_seen') IS NOT NULL
                                   AND json_type(body, '$.details.count') = 'integer'
                                 THEN max(1, json_extract(body, '$.details.count')) ELSE 1 END
                         ELSE 1 END)
                     FROM audit_events WHERE ts_ms >= ?1 GROUP BY type, ts_ms / 60000",
                )?;
                st.query_map([first * MINUTE_MS], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect()
            })
            .map_err(AuditError::Store)?;
        let mut out: BTreeMap<&'static str, Vec<u64>> = EventType::ALL
            .iter()
            .map(|t| (t.as_str(), vec![0; MINUTES]))
            .collect();
        for (kind, minute, n) in rows {
            let (Ok(t), Ok(i)) = (kind.parse::<EventType>(), usize::try_from(minute - first))
            else {
                continue;
            };
            if let Some(slot) = out.get_mut(t.as_str()).and_then(|v| v.get_mut(i)) {
                *slot = u64::try_from(n).unwrap_or(0);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audit::{NewEvent, Severity};
    use crate::clock::Clock;

    const T0: i64 = 1_700_000_000_000 / MINUTE_MS * MINUTE_MS;

    #[test]
    fn the_ring_counts_per_minute_and_forgets_after_an_hour() {
        let clock = Clock::manual(T0);
        let ring = MinuteCounter::default();
        ring.record(clock.now_ms());
        ring.record(clock.now_ms());
        clock.advance(Duration::from_secs(59));
        ring.record(clock.now_ms());
        clock.advance(Duration::from_secs(1));
        ring.record(clock.now_ms());
        let s = ring.series(clock.now_ms());
        assert_eq!(s.len(), MINUTES);
        assert_eq!(&s[MINUTES - 2..], &[3, 1]);
        assert_eq!(s.iter().sum::<u64>(), 4);
        // 59 minutes later the first minute is the oldest bucket; one more and it is gone.
        clock.advance(Duration::from_secs(58 * 60));
        assert_eq!(ring.series(clock.now_ms())[0], 3);
        clock.advance(Duration::from_secs(60));
        let s = ring.series(clock.now_ms());
        assert_eq!((s[0], s.iter().sum::<u64>()), (1, 1));
        // A slot reused an hour later starts again from one.
        ring.record(clock.now_ms());
        assert_eq!(ring.series(clock.now_ms())[MINUTES - 1], 1);
    }

    #[test]
    fn security_events_are_bucketed_by_type_and_minute() {
        let audit = Audit::in_memory();
        for _ in 0..3 {
            audit.record(NewEvent::new(
                EventType::RateLimitExceeded,
                Severity::Medium,
            ));
        }
        audit.record(NewEvent::new(EventType::KeyRotation, Severity::Low));
        // The in-memory audit stamps events with the system clock: the hour up to now holds them.
        let now = Clock::system().now_ms();
        let t = Timeline::build(
            &audit,
            &MinuteCounter::default(),
            now,
            Connections { open: 2, max: 10 },
        )
        .expect("timeline");
        assert_eq!(t.security_events.len(), EventType::ALL.len());
        let total = |k: &str| t.security_events[k].iter().sum::<u64>();
        assert_eq!(total("RATE_LIMIT_EXCEEDED"), 3);
        assert_eq!(total("KEY_ROTATION"), 1);
        assert_eq!(total("WEBHOOK_REPLAY"), 0);
        let newest = |k: &str| t.security_events[k][MINUTES - 2..].iter().sum::<u64>();
        assert_eq!(
            newest("RATE_LIMIT_EXCEEDED"),
            3,
            "in the newest minute (or the one before)"
        );
        assert!(t.security_events.values().all(|v| v.len() == MINUTES));
        assert_eq!(t.webhooks_accepted, vec![0; MINUTES]);
        assert_eq!(t.bucket_seconds, 60);
        assert_eq!(
            t.start,
            rfc3339_ms((now / MINUTE_MS - MINUTES as i64 + 1) * MINUTE_MS)
        );
    }
}
