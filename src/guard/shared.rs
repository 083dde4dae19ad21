//! Lockouts shared between nodes (the Redis backend, see [`crate::cluster`]).
//!
//! The guard stays synchronous and node-local: every check is answered from
//! its own table, in microseconds, whether or not the cluster is reachable.
//! Sharing is two one-way paths around it:
//! - out: each counted failure and each admin unblock is handed to a
//!   [`SharedSink`] (a non-blocking callback the cluster installs), which
//!   counts it in Redis;
//! - in: lockouts the cluster decided (the failures of all nodes together
//!   reached the limit) are imposed with [`Guard::apply_shared_lockout`], and
//!   lockouts lifted elsewhere with [`Guard::lift_shared_lockout`].
//!
//! Without a sink (one node, or Redis not configured) nothing changes.

use std::net::IpAddr;
use std::sync::Arc;

use super::Guard;
use super::client::ClientKey;

/// A change to share with the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedUpdate {
    /// A failed authentication (never from an allowlisted client).
    Failure {
        /// The client.
        client: ClientKey,
        /// When, Unix ms.
        at_ms: i64,
    },
    /// An admin lifted the client's lockout.
    Unblock {
        /// The client.
        client: ClientKey,
    },
}

/// Receives [`SharedUpdate`]s; must not block (it runs on the request path).
pub type SharedSink = Arc<dyn Fn(SharedUpdate) + Send + Sync>;

impl Guard {
    /// Installs the sink that shares failures and unblocks; the first one wins.
    pub fn set_shared_sink(&self, sink: SharedSink) -> bool {
        self.inner.shared.set(sink).is_ok()
    }

    pub(super) fn share(&self, update: SharedUpdate) {
        if let Some(sink) = self.inner.shared.get() {
            sink(update);
        }
    }

    /// Imposes a lockout the cluster decided, until `until_ms` (a later local
    /// one is kept). True when the client was not locked out here before:
    /// the caller records the lockout's events once. Allowlisted clients are
    /// never locked out.
    pub fn apply_shared_lockout(&self, client: ClientKey, until_ms: i64) -> bool {
        let net = client.net();
        if super::is_in(net.addr(), &self.inner.settings.allowlist) {
            return false;
        }
        let now = self.inner.clock.now_ms();
        if until_ms <= now {
            return false;
        }
        let newly = self
            .inner
            .clients
            .upsert(&client, now, |c| c.lock.impose(until_ms, now));
        if newly {
            self.inner.counters.bump(&self.inner.counters.lockouts);
        }
        newly
    }

    /// Lifts a lockout that was lifted on another node; true if one was active here.
    pub fn lift_shared_lockout(&self, client: ClientKey) -> bool {
        let now = self.inner.clock.now_ms();
        self.inner
            .clients
            .get_mut(&client, |c| c.lock.unlock(now))
            .unwrap_or(false)
    }
}

/// Parses a [`ClientKey`]'s `Display` form back (`1.2.3.4`, `2001:db8::/64`, `2001:db8::1`).
pub fn parse_client_key(s: &str) -> Option<ClientKey> {
    if s.contains('/') {
        let net: ipnet::IpNet = s.parse().ok()?;
        Some(ClientKey::new(net.addr(), net.prefix_len()))
    } else {
        let ip: IpAddr = s.parse().ok()?;
        Some(ClientKey::new(ip, 128))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_round_trip_through_their_display_form() {
        for (ip, prefix) in [
            ("1.2.3.4", 64),
            ("2001:db8:1:2::9", 64),
            ("2001:db8::1", 128),
        ] {
            let key = ClientKey::new(ip.parse().expect("ip"), prefix);
            assert_eq!(
                parse_client_key(&key.to_string()),
                Some(key),
                "{ip}/{prefix}"
            );
        }
        assert_eq!(parse_client_key("not an address"), None);
    }
}
