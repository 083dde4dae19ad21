//! Usage anomalies: an hourly request counter per client, per API key and per
//! webhook source, and the rule that calls a count unusual. Alerts only —
//! nothing here ever refuses a request.
//!
//! The rule (documented in `config/defaults.yaml` terms):
//! - **Hourly estimate**: two fixed one-hour buckets, weighted like a sliding
//!   window: `previous × (1 − elapsed fraction of this hour) + current`.
//!   O(1) memory, exact enough for alerting.
//! - **Threshold**: the estimate exceeds `unusual_usage_threshold` (clients
//!   and keys; webhook sources have no absolute threshold — LiveKit's volume
//!   is the deployment's business, only a change in it is suspicious).
//! - **Baseline jump**: the baseline is an exponentially weighted mean
//!   (α = [`BASELINE_ALPHA`]) of the subject's completed *active* hours (idle
//!   hours are skipped, so an overnight pause does not make the morning look
//!   like an attack). After [`WARMUP_HOURS`] active hours, an estimate of at
//!   least `min_volume` and more than [`JUMP_FACTOR`] × baseline is unusual.
//! - At most one alert per subject per clock hour.
//!
//! Invariant: every function takes `now_ms`; nothing reads the clock itself.

/// Weight of the newest completed hour in the baseline.
pub const BASELINE_ALPHA: f32 = 0.3;
/// How far above its baseline a subject must jump to be unusual.
pub const JUMP_FACTOR: f32 = 10.0;
/// Completed active hours before the baseline is trusted.
pub const WARMUP_HOURS: u16 = 3;
/// Smallest hourly volume a jump needs for webhook sources.
pub const WEBHOOK_MIN_VOLUME: u64 = 100;

const HOUR_MS: i64 = 3_600_000;

/// What a counter judges unusual.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rule {
    /// Absolute hourly limit, if any.
    pub threshold: Option<u64>,
    /// Smallest estimate a baseline jump must reach.
    pub min_volume: u64,
}

/// Why a count is unusual.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Anomaly {
    /// The hourly estimate passed the absolute threshold.
    OverThreshold {
        /// Requests in the last hour (estimate).
        estimate: u64,
        /// The configured threshold.
        threshold: u64,
    },
    /// The hourly estimate jumped far above the subject's own baseline.
    AboveBaseline {
        /// Requests in the last hour (estimate).
        estimate: u64,
        /// The subject's usual requests per active hour.
        baseline: u64,
    },
}

impl Anomaly {
    /// Adds the reason and numbers as event details.
    pub(crate) fn details(&self, event: crate::audit::NewEvent) -> crate::audit::NewEvent {
        match *self {
            Self::OverThreshold {
                estimate,
                threshold,
            } => event
                .detail("reason", "threshold")
                .detail("requests_last_hour", estimate)
                .detail("threshold", threshold),
            Self::AboveBaseline { estimate, baseline } => event
                .detail("reason", "baseline")
                .detail("requests_last_hour", estimate)
                .detail("baseline_per_hour", baseline),
        }
    }
}

/// One subject's hourly counter (32 bytes).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counter {
    hour: i64,
    alerted_hour: i64,
    cur: u32,
    prev: u32,
    baseline: f32,
    active_hours: u16,
}

impl Counter {
    /// Counts one request at `now_ms` and says whether the subject is now unusual
    /// (at most once per clock hour).
    pub(crate) fn hit(&mut self, now_ms: i64, rule: Rule) -> Option<Anomaly> {
        let hour = now_ms.div_euclid(HOUR_MS);
        self.roll(hour);
        self.cur = self.cur.saturating_add(1);
        if self.alerted_hour == hour {
            return None;
        }
        let estimate = self.estimate(now_ms);
        let anomaly = match rule.threshold {
            Some(threshold) if estimate > threshold => Some(Anomaly::OverThreshold {
                estimate,
                threshold,
            }),
            _ if self.active_hours >= WARMUP_HOURS
                && estimate >= rule.min_volume
                && estimate as f32 > JUMP_FACTOR * self.baseline =>
            {
                Some(Anomaly::AboveBaseline {
                    estimate,
                    baseline: self.baseline.round() as u64,
                })
            }
            _ => None,
        };
        if anomaly.is_some() {
            self.alerted_hour = hour;
        }
        anomaly
    }

    /// Requests in the hour before `now_ms` (sliding estimate).
    pub(crate) fn estimate(&self, now_ms: i64) -> u64 {
        let (prev, cur) = match now_ms.div_euclid(HOUR_MS) - self.hour {
            d if d <= 0 => (self.prev, self.cur),
            1 => (self.cur, 0),
            _ => (0, 0),
        };
        let elapsed = now_ms.rem_euclid(HOUR_MS) as f64 / HOUR_MS as f64;
        (f64::from(prev) * (1.0 - elapsed)).floor() as u64 + u64::from(cur)
    }

    fn roll(&mut self, hour: i64) {
        // A clock that stepped back keeps counting into the current bucket.
        if hour <= self.hour {
            return;
        }
        if self.cur > 0 {
            let done = self.cur as f32;
            self.baseline = if self.active_hours == 0 {
                done
            } else {
                BASELINE_ALPHA * done + (1.0 - BASELINE_ALPHA) * self.baseline
            };
            self.active_hours = self.active_hours.saturating_add(1);
        }
        self.prev = if hour == self.hour + 1 { self.cur } else { 0 };
        self.cur = 0;
        self.hour = hour;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000 / HOUR_MS * HOUR_MS; // start of an hour

    fn rule(threshold: Option<u64>) -> Rule {
        Rule {
            threshold,
            min_volume: 50,
        }
    }

    #[test]
    fn threshold_alerts_once_per_hour() {
        let mut c = Counter::default();
        let alerts: Vec<_> = (0..30)
            .filter_map(|i| c.hit(T0 + i, rule(Some(10))))
            .collect();
        assert_eq!(
            alerts,
            vec![Anomaly::OverThreshold {
                estimate: 11,
                threshold: 10
            }]
        );
        // Next hour: the previous hour still weighs in, so it alerts again at once.
        assert!(matches!(
            c.hit(T0 + HOUR_MS, rule(Some(10))),
            Some(Anomaly::OverThreshold { .. })
        ));
    }

    #[test]
    fn sliding_estimate_weights_the_previous_hour() {
        let mut c = Counter::default();
        for _ in 0..100 {
            c.hit(T0, rule(None));
        }
        assert_eq!(c.estimate(T0 + HOUR_MS / 4), 100);
        c.hit(T0 + HOUR_MS + HOUR_MS / 4, rule(None));
        assert_eq!(c.estimate(T0 + HOUR_MS + HOUR_MS / 4), 75 + 1);
        assert_eq!(c.estimate(T0 + 3 * HOUR_MS), 0);
    }

    #[test]
    fn baseline_jump_alerts_after_warmup_and_idle_hours_are_skipped() {
        let mut c = Counter::default();
        for h in 0..WARMUP_HOURS as i64 {
            // 20 requests an hour, with an idle hour in between each.
            for i in 0..20 {
                assert_eq!(c.hit(T0 + 2 * h * HOUR_MS + i, rule(None)), None);
            }
        }
        let start = T0 + 10 * HOUR_MS;
        let first = (0..1000).find_map(|i| c.hit(start + i, rule(None)).map(|a| (i, a)));
        // Baseline 20 → more than 200 in the hour is unusual.
        assert_eq!(
            first,
            Some((
                200,
                Anomaly::AboveBaseline {
                    estimate: 201,
                    baseline: 20
                }
            ))
        );
    }

    #[test]
    fn no_jump_alert_before_warmup_or_below_min_volume() {
        let mut c = Counter::default();
        for _ in 0..2 {
            c.hit(T0, rule(None));
        }
        assert!((0..1000).all(|i| c.hit(T0 + HOUR_MS + i, rule(None)).is_none()));
        let mut d = Counter {
            active_hours: WARMUP_HOURS,
            baseline: 1.0,
            hour: T0 / HOUR_MS,
            ..Counter::default()
        };
        assert!((0..49).all(|i| d.hit(T0 + i, rule(None)).is_none()));
        assert!(d.hit(T0 + 50, rule(None)).is_some());
    }
}
