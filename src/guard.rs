//! Client identity, rate limits, lockouts. (Lead's interface stub; the real guard lands from the guard branch.)

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::audit::Audit;
use crate::clock::Clock;
use crate::config::Config;

/// The client address: the peer, or the rightmost untrusted X-Forwarded-For entry behind trusted proxies.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let _ = (forwarded_for, trusted);
    peer
}

/// Rate-limit state for headers.
#[derive(Clone, Debug)]
pub struct RateInfo;

impl RateInfo {
    /// Header name/value pairs.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// An admitted request.
#[derive(Clone, Debug)]
pub struct Allowed {
    /// Rate state.
    pub rate: Option<RateInfo>,
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// Static blocklist.
    Blocked,
    /// Too many failures.
    LockedOut,
    /// Too many requests.
    RateLimited,
    /// Not in webhooks.allowed_ips.
    NotAllowedSource,
}

/// A refused request.
#[derive(Clone, Debug)]
pub struct Refusal {
    /// Why.
    pub kind: RefusalKind,
    /// HTTP status.
    pub status: u16,
    /// Seconds until retry.
    pub retry_after_secs: Option<u64>,
    /// Rate state.
    pub rate: Option<RateInfo>,
}

/// A blocked client.
#[derive(Clone, Debug)]
pub struct Blocked {
    /// Address or network.
    pub client: String,
    /// Until, Unix ms.
    pub until_ms: i64,
}

/// The guard handle.
#[derive(Clone, Debug)]
pub struct Guard;

impl Guard {
    /// A guard.
    pub fn new(cfg: &Config, clock: Clock, audit: Audit) -> Self {
        let _ = (cfg, clock, audit);
        Self
    }
    /// Admits an API request.
    pub fn check_api(&self, ip: IpAddr) -> Result<Allowed, Refusal> {
        let _ = ip;
        Ok(Allowed { rate: None })
    }
    /// Admits a webhook.
    pub fn check_webhook(&self, ip: IpAddr) -> Result<Allowed, Refusal> {
        let _ = ip;
        Ok(Allowed { rate: None })
    }
    /// Admits an SSE connect.
    pub fn check_sse_connect(&self, ip: IpAddr) -> Result<Allowed, Refusal> {
        let _ = ip;
        Ok(Allowed { rate: None })
    }
    /// A failed authentication.
    pub fn record_auth_failure(&self, ip: IpAddr, key_id: Option<&str>, identity: Option<&str>) {
        let _ = (ip, key_id, identity);
    }
    /// A successful authentication.
    pub fn record_auth_success(&self, ip: IpAddr, key_id: Option<&str>) {
        let _ = (ip, key_id);
    }
    /// API usage.
    pub fn record_api_usage(&self, endpoint: &str, ip: IpAddr, response_time: Duration) {
        let _ = (endpoint, ip, response_time);
    }
    /// Unblocks.
    pub fn unblock(&self, ip: IpAddr) -> bool {
        let _ = ip;
        false
    }
    /// Blocked clients.
    pub fn blocked(&self) -> Vec<Blocked> {
        Vec::new()
    }
}
