//! Sender lag: how old events are when they arrive (LiveKit's `createdAt` to
//! receipt). LiveKit drops a webhook it could not deliver within about 30 s,
//! so a lag that nears that is a warning that Warden is about to miss events.

use std::sync::Mutex;

/// The lag at which the health check warns (LiveKit gives up at about 30 s).
pub const WARN_MS: i64 = 20_000;

/// Minutes of history kept for [`SenderLag::recent_max_ms`].
const WINDOW_MINUTES: usize = 5;

/// The largest lag per minute over the last few minutes, and the last one.
#[derive(Debug, Default)]
pub struct SenderLag {
    inner: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// `(minute, largest lag in that minute)`, newest last.
    minutes: Vec<(i64, i64)>,
    last_ms: Option<i64>,
}

impl SenderLag {
    /// Records an event created at `created_ms` (0: LiveKit sent no time) received at `now_ms`;
    /// returns its lag (clamped at 0 for clock skew).
    pub fn record(&self, created_ms: i64, now_ms: i64) -> Option<i64> {
        if created_ms <= 0 {
            return None;
        }
        let lag = now_ms.saturating_sub(created_ms).max(0);
        let minute = now_ms.div_euclid(60_000);
        let mut w = self.lock();
        w.last_ms = Some(lag);
        match w.minutes.last_mut() {
            Some((m, max)) if *m == minute => *max = (*max).max(lag),
            _ => w.minutes.push((minute, lag)),
        }
        let oldest = minute - WINDOW_MINUTES as i64 + 1;
        w.minutes.retain(|(m, _)| *m >= oldest);
        Some(lag)
    }

    /// The largest lag of the last five minutes, if any event came.
    pub fn recent_max_ms(&self, now_ms: i64) -> Option<i64> {
        let oldest = now_ms.div_euclid(60_000) - WINDOW_MINUTES as i64 + 1;
        self.lock()
            .minutes
            .iter()
            .filter(|(m, _)| *m >= oldest)
            .map(|(_, lag)| *lag)
            .max()
    }

    /// The lag of the last event.
    pub fn last_ms(&self) -> Option<i64> {
        self.lock().last_ms
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // Every update leaves the window valid.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_largest_lag_of_the_last_five_minutes() {
        let lag = SenderLag::default();
        let t = 1_700_000_000_000;
        assert_eq!(lag.recent_max_ms(t), None);
        assert_eq!(lag.record(0, t), None, "no createdAt: no lag");
        assert_eq!(lag.record(t - 25_000, t), Some(25_000));
        assert_eq!(lag.record(t + 1_000, t + 500), Some(0), "skew clamps to 0");
        assert_eq!(lag.recent_max_ms(t + 60_000), Some(25_000));
        assert_eq!(lag.last_ms(), Some(0));
        // Five minutes later the 25 s spike has left the window.
        assert_eq!(lag.record(t + 300_000 - 800, t + 300_000), Some(800));
        assert_eq!(lag.recent_max_ms(t + 300_000), Some(800));
    }
}
