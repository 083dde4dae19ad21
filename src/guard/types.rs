//! The guard's answers — kinds and numbers, which `http/error.rs` turns into
//! statuses and headers — and the snapshots it shows on status and metrics pages.

use std::net::IpAddr;

use ipnet::IpNet;

use super::limits::RateInfo;

/// The guard's errors for input it is handed (never for refusals — those are [`Refusal`]).
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Not an IP address or CIDR.
    #[error("`{input}` is not an IP address")]
    BadAddress {
        /// The input, cut to 64 characters.
        input: String,
    },
}

/// Parses the address an admin names (`1.2.3.4`, `2001:db8::1`, or a CIDR
/// such as `2001:db8::/64`, whose network address is taken).
pub fn parse_client(s: &str) -> Result<IpAddr, GuardError> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .or_else(|_| s.parse::<IpNet>().map(|n| n.network()))
        .map(|ip| ip.to_canonical())
        .map_err(|_| GuardError::BadAddress {
            input: s.chars().take(64).collect(),
        })
}

/// A request the guard lets through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// The rate-limit state to advertise, when a limit applies.
    pub rate: Option<RateInfo>,
    /// A webhook source that is locked out until then (Unix ms): admitted
    /// only if its signature verifies (see [`super::Guard::check_webhook`]).
    pub locked_until_ms: Option<i64>,
}

impl Allowed {
    pub(crate) fn rated(info: RateInfo) -> Self {
        Self {
            rate: Some(info),
            locked_until_ms: None,
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefusalKind {
    /// On the static blocklist.
    #[error("client is blocked")]
    Blocked,
    /// Locked out after repeated failed authentication.
    #[error("client is temporarily locked out")]
    LockedOut,
    /// Over a rate limit.
    #[error("rate limit exceeded")]
    RateLimited,
    /// A webhook from outside `webhooks.allowed_ips`.
    #[error("source address not allowed")]
    NotAllowedSource,
}

impl RefusalKind {
    /// The `error` code for the JSON body.
    pub fn code(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::LockedOut => "locked_out",
            Self::RateLimited => "rate_limited",
            Self::NotAllowedSource => "forbidden",
        }
    }
}

/// A refused request: why, and when to come back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct Refusal {
    /// Why.
    pub kind: RefusalKind,
    /// Seconds until a retry can pass (rate limits and lockouts).
    pub retry_after_secs: Option<u64>,
    /// Rate-limit state, for rate-limit refusals.
    pub rate: Option<RateInfo>,
}

impl Refusal {
    pub(crate) fn new(kind: RefusalKind) -> Self {
        Self {
            kind,
            retry_after_secs: None,
            rate: None,
        }
    }
}

/// What one recorded authentication failure led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureOutcome {
    /// Failures of this client in the window, this one included.
    pub failures_in_window: u32,
    /// The client is locked out until then (Unix ms). This request is still
    /// answered 401; the next one is refused.
    pub locked_until_ms: Option<i64>,
    /// This failure started the lockout.
    pub newly_locked: bool,
    /// The client is allowlisted (never locked out).
    pub allowlisted: bool,
}

/// A client locked out now, for the status page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The client: an IPv4 address or an IPv6 network (`2001:db8::/64`).
    pub client: String,
    /// End of the lockout, Unix ms.
    pub until_ms: i64,
}

/// A snapshot of the guard for metrics and status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Clients tracked now.
    pub tracked_clients: usize,
    /// Most clients tracked at once.
    pub max_tracked_clients: usize,
    /// Key ids tracked now.
    pub tracked_keys: usize,
    /// Clients locked out now.
    pub active_lockouts: usize,
    /// Lockouts started since start.
    pub lockouts_total: u64,
    /// Authentication failures recorded since start.
    pub auth_failures_total: u64,
    /// Requests refused by a rate limit since start.
    pub rate_limited_total: u64,
    /// The same by policy: api, webhook, sse.
    pub rate_limited_by_policy: [u64; 3],
    /// Requests refused by the blocklist since start.
    pub blocked_total: u64,
    /// Requests refused by a lockout since start.
    pub locked_out_total: u64,
    /// `UNUSUAL_API_USAGE` events raised since start.
    pub anomalies_total: u64,
    /// Tracked entries evicted under memory pressure since start.
    pub evictions_total: u64,
    /// API requests recorded by [`super::Guard::record_api_usage`].
    pub api_requests_total: u64,
    /// Summed response time of those requests, microseconds.
    pub api_response_micros_total: u64,
    /// Approximate bytes held by the tracking tables.
    pub approx_memory_bytes: usize,
}
