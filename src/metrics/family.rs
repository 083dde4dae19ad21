//! The metric primitives: plain atomics with their label values fixed at
//! compile time.
//!
//! A labelled family is an array of counters, one per known label value,
//! so every series exists (at zero) from the first scrape and no request can
//! add one. Counting is one relaxed `fetch_add` (a histogram: three), with no
//! lock, no hashing and no allocation: these are called on the request path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic counter.
#[derive(Debug, Default)]
pub(super) struct Counter(AtomicU64);

impl Counter {
    pub(super) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub(super) struct Gauge(AtomicI64);

impl Gauge {
    pub(super) fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counters under one label, one per value in `values`.
#[derive(Debug)]
pub(super) struct Labelled {
    pub(super) label: &'static str,
    pub(super) values: &'static [&'static str],
    counts: Box<[Counter]>,
}

impl Labelled {
    pub(super) fn new(label: &'static str, values: &'static [&'static str]) -> Self {
        debug_assert!(!values.is_empty());
        Self {
            label,
            values,
            counts: values.iter().map(|_| Counter::default()).collect(),
        }
    }

    /// Index of `value`; an unlisted value goes to the last one, which is
    /// `other` in a family whose values come from elsewhere (error codes)
    /// and a bug to be caught by the tests in a closed one.
    pub(super) fn index(&self, value: &str) -> usize {
        self.values
            .iter()
            .position(|v| *v == value)
            .unwrap_or_else(|| {
                debug_assert!(
                    self.values.last() == Some(&"other"),
                    "{value:?} is not a known {} value",
                    self.label
                );
                self.values.len() - 1
            })
    }

    pub(super) fn inc(&self, value: &str) {
        self.counts[self.index(value)].add(1);
    }

    /// `(value, count)` for every value, in declaration order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.values
            .iter()
            .zip(self.counts.iter())
            .map(|(v, c)| (*v, c.get()))
    }
}

/// Upper bounds of a histogram's buckets: nanoseconds for comparing, the
/// `le` label as written (seconds, canonical `1.0` form).
pub(super) type Buckets = &'static [(u64, &'static str)];

/// A histogram of durations. Bucket counts are kept per bucket (not
/// cumulative) so an observation touches one bucket; the render adds them
/// up. The sum is kept in whole nanoseconds: one integer `fetch_add`, exact,
/// and good for 584 years of summed time.
#[derive(Debug)]
pub(super) struct Histogram {
    pub(super) buckets: Buckets,
    /// One per bucket, then `+Inf`.
    counts: Box<[Counter]>,
    sum_nanos: Counter,
}

/// A histogram read at one moment: cumulative counts per `le`, then `+Inf`.
pub(super) struct HistogramReading {
    pub(super) cumulative: Vec<(&'static str, u64)>,
    pub(super) count: u64,
    pub(super) sum_seconds: f64,
}

impl Histogram {
    pub(super) fn new(buckets: Buckets) -> Self {
        debug_assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0));
        Self {
            buckets,
            counts: (0..=buckets.len()).map(|_| Counter::default()).collect(),
            sum_nanos: Counter::default(),
        }
    }

    pub(super) fn observe(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = self
            .buckets
            .iter()
            .position(|&(bound, _)| nanos <= bound)
            .unwrap_or(self.buckets.len());
        self.counts[i].add(1);
        self.sum_nanos.add(nanos);
    }

    pub(super) fn read(&self) -> HistogramReading {
        let mut total = 0;
        let mut cumulative = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            total += c.get();
            let le = self.buckets.get(i).map_or("+Inf", |&(_, le)| le);
            cumulative.push((le, total));
        }
        #[allow(clippy::cast_precision_loss)] // exact below 2^53 ns (104 days); then a rounding
        let sum_seconds = self.sum_nanos.get() as f64 / 1e9;
        HistogramReading {
            cumulative,
            count: total,
            sum_seconds,
        }
    }
}

/// Bucket bounds in seconds, written as `(nanoseconds, "le")`.
macro_rules! buckets {
    ($($secs:literal),+ $(,)?) => {
        &[$((($secs as f64 * 1e9 + 0.5) as u64, stringify!($secs))),+]
    };
}
pub(super) use buckets;

#[cfg(test)]
mod tests {
    use super::*;

    const B: Buckets = buckets![0.001, 0.5, 1.0];

    #[test]
    fn buckets_hold_their_upper_bound_and_the_render_is_cumulative() {
        assert_eq!(
            B,
            &[
                (1_000_000, "0.001"),
                (500_000_000, "0.5"),
                (1_000_000_000, "1.0")
            ]
        );
        let h = Histogram::new(B);
        h.observe(Duration::from_millis(1)); // on the bound: le="0.001"
        h.observe(Duration::from_millis(2));
        h.observe(Duration::from_secs(1));
        h.observe(Duration::from_secs(7)); // above all: +Inf only
        let r = h.read();
        assert_eq!(
            r.cumulative,
            vec![("0.001", 1), ("0.5", 2), ("1.0", 3), ("+Inf", 4)]
        );
        assert_eq!(r.count, 4);
        assert!((r.sum_seconds - 8.003).abs() < 1e-9, "{}", r.sum_seconds);
    }

    #[test]
    fn an_unknown_label_value_lands_in_the_catch_all() {
        let l = Labelled::new("reason", &["a", "b", "other"]);
        l.inc("b");
        l.inc("not-listed");
        let got: Vec<_> = l.iter().collect();
        assert_eq!(got, vec![("a", 0), ("b", 1), ("other", 1)]);
    }
}
