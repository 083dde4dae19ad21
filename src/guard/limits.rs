//! Rate limits: GCRA from `governor`, keyed by [`ClientKey`], kept in the
//! guard's bounded client table and driven by Warden's [`Clock`].
//!
//! `governor` does the arithmetic; two small adapters make it fit:
//! - [`GovClock`] implements `governor::clock::Clock` over our [`Clock`], so a
//!   manual clock moves the limiters in tests (instants are `Duration` since
//!   the Unix epoch, which governor supports as a `Reference`);
//! - [`SlotStore`] implements `governor::state::StateStore` over the client
//!   table: each tracked client holds one GCRA "theoretical arrival time" per
//!   [`Policy`], so the limiter state is capped and evicted with everything
//!   else about the client (governor's own keyed stores are unbounded).
//!
//! Policies: `api` = `suspicious_activity.rate_limit_per_minute` per minute
//! (burst = the whole minute); `webhook` = `webhooks.rate_limit_per_minute`
//! per minute; `sse` = a connection-rate limit derived from
//! `realtime.max_connections_per_ip`: that many connects at once, then one
//! more per second (a reconnect storm after a restart passes, a connect loop
//! does not).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use super::client::ClientKey;
use super::policy::Policy;
use super::state::ClientState;
use super::table::Table;
use crate::clock::Clock;

/// A client's standing under one rate limit: what the IETF `RateLimit` /
/// `RateLimit-Policy` headers advertise (draft-ietf-httpapi-ratelimit-headers;
/// written by `http/error.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateInfo {
    /// Policy name (`api`, `webhook`, `sse`).
    pub policy_name: &'static str,
    /// Quota `q`: requests allowed per window.
    pub limit: u32,
    /// Window `w`, seconds.
    pub window_secs: u64,
    /// Available quota `r` after this request.
    pub remaining: u32,
    /// Effective window `t`, seconds: until the quota is whole again when
    /// some remains; until the next request is admitted when none does (so it
    /// never ends after `Retry-After`, as the draft requires).
    pub reset_secs: u64,
}

/// Governor's clock, read from Warden's [`Clock`].
#[derive(Clone, Debug)]
pub(crate) struct GovClock(pub Clock);

impl governor::clock::Clock for GovClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.now_ms()).unwrap_or(0))
    }
}

/// One GCRA slot of every client in the shared table.
pub(crate) struct SlotStore {
    table: Arc<Table<ClientKey, ClientState>>,
    policy: Policy,
    clock: Clock,
}

impl StateStore for SlotStore {
    type Key = ClientKey;

    fn measure_and_replace<T, F, E>(&self, key: &ClientKey, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.table.upsert(key, self.clock.now_ms(), |client| {
            let slot = &mut client.tat[self.policy as usize];
            // A stored arrival time is always > 0 (it is "last + one period"),
            // so 0 can stand for "never seen".
            let (out, next) = f((*slot != 0).then(|| Nanos::from(*slot)))?;
            *slot = next.into();
            Ok(out)
        })
    }
}

/// A refused request: how long until the next one is admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Limited {
    /// Headers for the refusal (`r=0`).
    pub info: RateInfo,
    /// Whole seconds to wait (at least 1).
    pub retry_after_secs: u64,
}

/// One keyed GCRA limiter.
pub(crate) struct Limiter {
    policy: Policy,
    limit: u32,
    period: Duration,
    clock: GovClock,
    inner: RateLimiter<ClientKey, SlotStore, GovClock, StateInformationMiddleware>,
}

impl Limiter {
    /// `limit` requests per `window` (burst = `limit`), one slot of `table`.
    pub(crate) fn new(
        policy: Policy,
        limit: u32,
        window: Duration,
        table: Arc<Table<ClientKey, ClientState>>,
        clock: Clock,
    ) -> Self {
        let burst = NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN);
        let period = (window / burst.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("period is at least 1 ns")
            .allow_burst(burst);
        let store = SlotStore {
            table,
            policy,
            clock: clock.clone(),
        };
        let clock = GovClock(clock);
        let inner =
            RateLimiter::<_, _, _, StateInformationMiddleware>::new(quota, store, clock.clone());
        Self {
            policy,
            limit: burst.get(),
            period,
            clock,
            inner,
        }
    }

    /// The policy this limiter enforces.
    pub(crate) fn policy(&self) -> Policy {
        self.policy
    }

    fn info(&self, remaining: u32, reset: Duration) -> RateInfo {
        let window = self.period * self.limit;
        RateInfo {
            policy_name: self.policy.name(),
            limit: self.limit,
            window_secs: ceil_secs(window).max(1),
            remaining,
            reset_secs: ceil_secs(reset),
        }
    }

    /// Admits one request of `key`, or says how long to wait.
    pub(crate) fn check(&self, key: &ClientKey) -> Result<RateInfo, Limited> {
        use governor::clock::Clock as _;
        match self.inner.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // The bucket is whole again after (limit − remaining) periods at most.
                Ok(self.info(
                    remaining,
                    self.period * (self.limit - remaining.min(self.limit)),
                ))
            }
            Err(not_until) => Err(self.refusal(not_until.wait_time_from(self.clock.now()))),
        }
    }

    /// The refusal of a request that may come again after `wait` (also for
    /// refusals decided across nodes, so their headers are the same).
    pub(crate) fn refusal(&self, wait: Duration) -> Limited {
        let retry_after_secs = ceil_secs(wait).max(1);
        Limited {
            info: self.info(0, Duration::from_secs(retry_after_secs)),
            retry_after_secs,
        }
    }
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
