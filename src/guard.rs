//! The guard: who a client is, whether its request may proceed, and what its
//! behaviour says about it — client identity, the static blocklist, lockouts
//! after failed authentication, GCRA rate limits, credential-stuffing and usage
//! anomalies, each reported once as a security event through [`Audit`].
//!
//! Invariants:
//! - The checks cost microseconds: a CIDR scan, one or two hash lookups under
//!   a sharded std mutex and GCRA arithmetic; no I/O, JSON or JWT work, so the
//!   HTTP layer runs them before anything expensive.
//! - Time comes only from the [`Clock`] given to [`Guard::new`].
//! - Memory is bounded under attack: all per-client state lives in one table
//!   capped at `suspicious_activity.max_tracked_clients` entries, per-key state
//!   in one capped at a tenth of that (at least 100); see `guard/table.rs` for
//!   the eviction order (idle one-shot sources first, active lockouts last).
//! - Refusals never depend on key ids: failures against a key only alert.
//! - Events are deduplicated: `RATE_LIMIT_EXCEEDED` once per client, policy and
//!   window; `IP_BLOCKED` once per lockout (per `lockout_duration` for the
//!   static blocklist); `SUSPICIOUS_LOGIN` once per failure window;
//!   `MULTIPLE_FAILED_AUTH` once per lockout (or per window for key ids and
//!   allowlisted clients); `UNUSUAL_API_USAGE` once per subject per hour.
//!
//! State is per node, in memory; with the Redis backend, failures and
//! lockouts (`guard/shared.rs`) and the `api` and `webhook` rate limits
//! (`guard/shared_rates.rs`) are also shared with the other nodes, without
//! ever waiting on Redis in a check.

pub mod admission;
mod anomaly;
mod auth;
pub mod client;
pub mod forwarding;
mod limits;
mod lockout;
mod policy;
mod refuse;
mod shared;
mod shared_rates;
mod state;
mod table;
mod types;
mod usage;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

pub use self::admission::{Admission, AdmissionError, ConnPermit};
pub use self::anomaly::{BASELINE_ALPHA, JUMP_FACTOR, WARMUP_HOURS, WEBHOOK_MIN_VOLUME};
pub use self::client::{ClientKey, UNKNOWN_CLIENT, client_ip};
pub use self::forwarding::{IdentitySnapshot, Resolved, Source};
pub use self::limits::RateInfo;
pub use self::lockout::MAX_KEY_FAILURE_CLIENTS;
pub use self::policy::Policy;
pub use self::shared::{SharedSink, SharedUpdate, parse_client_key};
pub use self::shared_rates::{RateDelta, SharedQuota};
pub use self::types::{
    Allowed, Blocked, FailureOutcome, GuardError, GuardStats, Refusal, RefusalKind, parse_client,
};

use self::client::is_in;
use self::limits::Limiter;
use self::lockout::Rules;
use self::shared_rates::SharedRates;
use self::state::{ClientState, KeyState};
use self::table::Table;
use self::usage::Counters;
use crate::audit::{Audit, EventType, NewEvent, Severity};
use crate::clock::Clock;
use crate::config::Config;

/// The guard handle: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    audit: Audit,
    settings: Settings,
    clients: Arc<Table<ClientKey, ClientState>>,
    keys: Table<String, KeyState>,
    api: Limiter,
    webhook: Limiter,
    sse: Limiter,
    counters: Counters,
    /// Where lockout changes go to be shared with other nodes (`guard/shared.rs`).
    shared: std::sync::OnceLock<SharedSink>,
    /// Rate limits counted across nodes (`guard/shared_rates.rs`).
    rates: SharedRates,
    /// How client addresses arrive (`guard/forwarding.rs`).
    watch: forwarding::Watch,
}

struct Settings {
    ipv6_prefix: u8,
    trusted_proxies: Vec<IpNet>,
    allowlist: Vec<IpNet>,
    blocklist: Vec<IpNet>,
    webhook_sources: Vec<IpNet>,
    rules: Rules,
    key_failure_clients: u32,
    usage_threshold: u64,
}

const MINUTE: Duration = Duration::from_secs(60);

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Guard {
    /// A guard for `cfg`, reading time from `clock` and reporting to `audit`.
    pub fn new(cfg: &Config, clock: Clock, audit: Audit) -> Self {
        let sa = &cfg.suspicious_activity;
        let clients = Arc::new(Table::new(sa.max_tracked_clients));
        let limiter = |policy, limit, window| {
            Limiter::new(policy, limit, window, clients.clone(), clock.clone())
        };
        let sse_burst = u32::try_from(cfg.realtime.max_connections_per_ip)
            .unwrap_or(u32::MAX)
            .max(1);
        let api = limiter(Policy::Api, sa.rate_limit_per_minute, MINUTE);
        let webhook = limiter(Policy::Webhook, cfg.webhooks.rate_limit_per_minute, MINUTE);
        let sse = limiter(
            Policy::Sse,
            sse_burst,
            Duration::from_secs(u64::from(sse_burst)),
        );
        let settings = Settings {
            ipv6_prefix: sa.ipv6_prefix_length,
            trusted_proxies: cfg.server.trusted_proxies.clone(),
            allowlist: sa.allowlist.clone(),
            blocklist: sa.blocklist.clone(),
            webhook_sources: cfg.webhooks.allowed_ips.clone(),
            rules: Rules {
                max_failures: sa.max_failed_attempts,
                window_ms: millis(sa.failure_window),
                lockout_ms: millis(sa.lockout_duration),
            },
            key_failure_clients: sa.key_failure_clients,
            usage_threshold: sa.unusual_usage_threshold,
        };
        let keys = Table::new((sa.max_tracked_clients / 10).max(100));
        let counters = Counters::default();
        let per_minute = |limit: u32| SharedQuota {
            limit: limit.max(1),
            window_ms: millis(MINUTE),
        };
        let rates = SharedRates::new(
            sa.max_tracked_clients,
            per_minute(sa.rate_limit_per_minute),
            per_minute(cfg.webhooks.rate_limit_per_minute),
        );
        Self {
            inner: Arc::new(Inner {
                clock,
                audit,
                settings,
                clients,
                keys,
                api,
                webhook,
                sse,
                counters,
                shared: std::sync::OnceLock::new(),
                rates,
                watch: forwarding::Watch::default(),
            }),
        }
    }

    /// The real client address of a request (see [`client_ip`]), with the
    /// configured `server.trusted_proxies`.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        client_ip(peer, forwarded_for, &self.inner.settings.trusted_proxies)
    }

    /// The key `ip` is counted under (IPv6 per configured prefix).
    pub fn client_key(&self, ip: IpAddr) -> ClientKey {
        ClientKey::new(ip, self.inner.settings.ipv6_prefix)
    }

    fn subject(&self, ip: IpAddr) -> (IpAddr, ClientKey, i64) {
        let ip = ip.to_canonical();
        (ip, self.client_key(ip), self.inner.clock.now_ms())
    }

    /// Admits an `/api/*` request (SSE connects included): blocklist
    /// ([`RefusalKind::Blocked`]), active lockout ([`RefusalKind::LockedOut`],
    /// with the time left), then the per-client `rate_limit_per_minute`
    /// ([`RefusalKind::RateLimited`]).
    pub fn check_api(&self, ip: IpAddr) -> Result<Allowed, Refusal> {
        let (ip, key, now) = self.subject(ip);
        self.refuse_blocked(ip, key, now)?;
        self.limit(&self.inner.api, ip, key, now)
            .map(Allowed::rated)
    }

    /// [`Guard::check_api`] for a request whose access token verifies with
    /// the admin grants: a lockout does not stop it — the administrator's
    /// way out (`warden unblock` from a locked-out host, often the proxy's
    /// loopback), as a verified signature is LiveKit's. A locked-out guesser
    /// has no such token; the blocklist and the rate limit still apply.
    pub fn check_api_past_lockout(&self, ip: IpAddr) -> Result<Allowed, Refusal> {
        let (ip, key, now) = self.subject(ip);
        self.refuse_blocklisted(ip, key, now)?;
        self.limit(&self.inner.api, ip, key, now)
            .map(Allowed::rated)
    }

    /// Admits a webhook delivery: a source outside a non-empty
    /// `webhooks.allowed_ips` ([`RefusalKind::NotAllowedSource`]), blocklist,
    /// then the per-source `webhooks.rate_limit_per_minute`. Counts the
    /// delivery for the per-source rate anomaly.
    ///
    /// A source that is locked out is admitted on one condition, carried in
    /// [`Allowed::locked_until_ms`]: its delivery must carry a LiveKit
    /// signature that verifies (SPEC, lockouts: refusing LiveKit's own
    /// deliveries loses events once its retries run out). Anything else from
    /// it is answered with [`Guard::webhook_lockout`] (which the HTTP layer
    /// answers so that LiveKit retries; see `ingest`). The rate limit applies
    /// first either way, so a locked-out sender cannot buy unlimited HMAC work.
    pub fn check_webhook(&self, ip: IpAddr) -> Result<Allowed, Refusal> {
        let (ip, key, now) = self.subject(ip);
        let sources = &self.inner.settings.webhook_sources;
        if !sources.is_empty() && !is_in(ip, sources) {
            return Err(Refusal::new(RefusalKind::NotAllowedSource));
        }
        self.refuse_blocklisted(ip, key, now)?;
        let locked_until_ms = self.locked_until(key, now);
        let info = self.limit(&self.inner.webhook, ip, key, now)?;
        self.count_webhook(ip, key, now);
        Ok(Allowed {
            locked_until_ms,
            ..Allowed::rated(info)
        })
    }

    /// The answer to a webhook from a locked-out source whose signature did
    /// not verify: a lockout with the time left (and `IP_BLOCKED`, once per lockout).
    pub fn webhook_lockout(&self, ip: IpAddr, locked_until_ms: i64) -> Refusal {
        let (ip, key, now) = self.subject(ip);
        self.locked_out(ip, key, now, locked_until_ms)
    }

    /// Admits an SSE connect under the connection-rate limit (burst
    /// `realtime.max_connections_per_ip`, one more per second). Call it
    /// after [`Guard::check_api`], which does blocklist and lockout.
    pub fn check_sse_connect(&self, ip: IpAddr) -> Result<Allowed, Refusal> {
        let (ip, key, now) = self.subject(ip);
        self.limit(&self.inner.sse, ip, key, now)
            .map(Allowed::rated)
    }

    /// True when `ip` is on the blocklist or locked out now.
    pub fn is_blocked(&self, ip: IpAddr) -> bool {
        let (ip, key, now) = self.subject(ip);
        is_in(ip, &self.inner.settings.blocklist)
            || self
                .inner
                .clients
                .get_mut(&key, |c| c.lock.locked_until(now).is_some())
                .unwrap_or(false)
    }

    fn event(&self, kind: EventType, severity: Severity, ip: IpAddr, key: ClientKey) -> NewEvent {
        NewEvent::new(kind, severity)
            .ip(ip)
            .detail("client", key.to_string())
    }

    fn emit(&self, event: NewEvent) {
        self.inner.audit.record(event);
    }
}
