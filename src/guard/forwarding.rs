//! How client addresses arrive, watched: the two reverse-proxy mistakes made
//! loud instead of silent.
//!
//! - **The proxy is not trusted** (`server.trusted_proxies` empty — the
//!   default — or missing it). Its forwarding headers (`X-Forwarded-For`,
//!   `X-Real-IP`, `Forwarded`) are ignored, as they must be (anyone can write
//!   them), so every client behind it *is* the proxy: one attacker's failed
//!   logins lock out every dashboard and LiveKit's webhooks with it.
//! - **A trusted proxy names no client** (no usable `X-Forwarded-For`): its
//!   requests come from [`UNKNOWN_CLIENT`](super::client::UNKNOWN_CLIENT).
//!
//! Each is logged once per peer at `warn` (naming `server.trusted_proxies`),
//! returned to the HTTP layer to be counted in a metric, and summarised for the
//! `client_identity` health check ([`IdentitySnapshot`]).
//!
//! Invariants: the normal path costs one relaxed atomic add; the set of peers
//! already warned about is locked only when a mistake is seen and holds at most
//! [`MAX_WARNED_PEERS`] addresses, so a flood of spoofed headers from many
//! addresses costs bounded memory and at most that many log lines.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Guard;
use super::client::{UNKNOWN_CLIENT, client_ip, is_in};

/// Most peers named in a warning; later ones are only counted.
pub const MAX_WARNED_PEERS: usize = 256;

/// How a request's client address was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The TCP peer, which sent no forwarding header.
    Peer,
    /// A trusted proxy's `X-Forwarded-For`.
    Forwarded,
    /// A trusted proxy that named no client: [`UNKNOWN_CLIENT`](super::client::UNKNOWN_CLIENT).
    Unknown,
    /// The TCP peer; the forwarding headers it sent were ignored because it
    /// is not in `server.trusted_proxies`.
    IgnoredForwarding,
}

impl Source {
    /// The metric label of an outcome worth counting (`None` for the normal ones).
    pub fn anomaly(self) -> Option<&'static str> {
        match self {
            Self::Peer | Self::Forwarded => None,
            Self::Unknown => Some("unknown_client"),
            Self::IgnoredForwarding => Some("forwarding_ignored"),
        }
    }
}

/// A request's client address and how it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The client (canonical), [`UNKNOWN_CLIENT`](super::client::UNKNOWN_CLIENT) when not named.
    pub ip: IpAddr,
    /// How.
    pub source: Source,
}

/// What the watch has seen since start, for the `client_identity` health check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentitySnapshot {
    /// Entries in `server.trusted_proxies`.
    pub trusted_proxies: usize,
    /// Requests whose client a trusted proxy named.
    pub forwarded: u64,
    /// Requests from a trusted proxy that named no client (probes of `/health` excluded).
    pub unknown: u64,
    /// The last trusted proxy that named no client.
    pub last_unknown_proxy: Option<IpAddr>,
    /// Requests whose forwarding headers were ignored, from loopback or
    /// private addresses — where a reverse proxy usually is.
    pub ignored_local: u64,
    /// The last such peer.
    pub last_ignored_local: Option<IpAddr>,
    /// Requests whose forwarding headers were ignored, from public addresses
    /// (a client writing them itself, or a proxy far away).
    pub ignored_public: u64,
}

/// The watch (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Watch {
    forwarded: AtomicU64,
    unknown: AtomicU64,
    ignored_local: AtomicU64,
    ignored_public: AtomicU64,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Peers warned about, by (kind, address); kind 0 = ignored, 1 = unknown.
    warned: HashSet<(u8, IpAddr)>,
    /// The "no more peers will be named" line was written.
    full: bool,
    last_unknown_proxy: Option<IpAddr>,
    last_ignored_local: Option<IpAddr>,
}

impl Guard {
    /// The client of a request, and how it was found: `peer` is the TCP peer,
    /// `forwarded_for` its `X-Forwarded-For` lines, `other_forwarding` whether
    /// it sent `X-Real-IP` or `Forwarded` (never read, but a sign of a proxy);
    /// `probe` marks `/health`. A peer outside `server.trusted_proxies` that
    /// sent forwarding headers is the client itself, and is warned about once
    /// (see `guard/forwarding.rs`); a trusted one that named no client gives
    /// [`UNKNOWN_CLIENT`].
    pub fn resolve_client(
        &self,
        peer: IpAddr,
        forwarded_for: &[&str],
        other_forwarding: bool,
        probe: bool,
    ) -> Resolved {
        let peer = peer.to_canonical();
        let trusted = &self.inner.settings.trusted_proxies;
        let resolved = if !is_in(peer, trusted) {
            let ignored = other_forwarding || !forwarded_for.is_empty();
            Resolved {
                ip: peer,
                source: if ignored {
                    Source::IgnoredForwarding
                } else {
                    Source::Peer
                },
            }
        } else {
            let ip = client_ip(peer, forwarded_for, trusted);
            let source = if ip == UNKNOWN_CLIENT {
                Source::Unknown
            } else {
                Source::Forwarded
            };
            Resolved { ip, source }
        };
        self.inner.watch.note(peer, resolved.source, probe);
        resolved
    }

    /// How clients have been identified since start (the `client_identity` health check).
    pub fn client_identity(&self) -> IdentitySnapshot {
        self.inner
            .watch
            .snapshot(self.inner.settings.trusted_proxies.len())
    }
}

/// Loopback, private (RFC 1918, IPv6 ULA) or link-local: where a proxy that
/// Warden should trust usually sits.
pub fn is_local(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local() || v6.is_unicast_link_local(),
    }
}

impl Watch {
    /// Notes how one request's client was found. `probe` marks a `/health`
    /// request (monitors on the proxy's host call it directly, without
    /// `X-Forwarded-For`; they do not make a proxy look broken).
    pub(crate) fn note(&self, peer: IpAddr, source: Source, probe: bool) {
        match source {
            Source::Peer => {}
            Source::Forwarded => {
                self.forwarded.fetch_add(1, Ordering::Relaxed);
            }
            Source::Unknown if probe => {}
            Source::Unknown => {
                self.unknown.fetch_add(1, Ordering::Relaxed);
                self.first_time(1, peer, |s| s.last_unknown_proxy = Some(peer));
            }
            Source::IgnoredForwarding => {
                let local = is_local(peer);
                let counter = if local {
                    &self.ignored_local
                } else {
                    &self.ignored_public
                };
                counter.fetch_add(1, Ordering::Relaxed);
                self.first_time(0, peer, |s| {
                    if local {
                        s.last_ignored_local = Some(peer);
                    }
                });
            }
        }
    }

    /// Records `peer` and warns the first time it shows this mistake.
    fn first_time(&self, kind: u8, peer: IpAddr, remember: impl FnOnce(&mut Seen)) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        remember(&mut seen);
        if seen.warned.contains(&(kind, peer)) {
            return;
        }
        if seen.warned.len() >= MAX_WARNED_PEERS {
            if !seen.full {
                seen.full = true;
                tracing::warn!(
                    "{MAX_WARNED_PEERS} peers have sent misrouted forwarding headers; further ones are only counted (metric warden_client_identity)"
                );
            }
            return;
        }
        seen.warned.insert((kind, peer));
        drop(seen);
        if kind == 0 {
            tracing::warn!(
                peer = %peer,
                "forwarding headers (X-Forwarded-For, X-Real-IP or Forwarded) from {peer} are ignored: it is not in server.trusted_proxies. If {peer} is your reverse proxy, add it to server.trusted_proxies; until then every client behind it is {peer} to lockouts and rate limits"
            );
        } else {
            tracing::warn!(
                peer = %peer,
                "trusted proxy {peer} sent a request without a usable X-Forwarded-For: its client is unknown and counted as 0.0.0.0 (one client for lockouts and rate limits). Make the proxy set X-Forwarded-For"
            );
        }
    }

    /// What has been seen since start.
    pub(crate) fn snapshot(&self, trusted_proxies: usize) -> IdentitySnapshot {
        let (last_unknown_proxy, last_ignored_local) = self
            .seen
            .lock()
            .map(|s| (s.last_unknown_proxy, s.last_ignored_local))
            .unwrap_or_default();
        IdentitySnapshot {
            trusted_proxies,
            forwarded: self.forwarded.load(Ordering::Relaxed),
            unknown: self.unknown.load(Ordering::Relaxed),
            last_unknown_proxy,
            ignored_local: self.ignored_local.load(Ordering::Relaxed),
            last_ignored_local,
            ignored_public: self.ignored_public.load(Ordering::Relaxed),
        }
    }

    /// Peers named in a warning so far.
    #[cfg(test)]
    pub(crate) fn warned(&self) -> usize {
        self.seen.lock().map(|s| s.warned.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn local_means_where_a_proxy_would_be() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_local(ip(a)), "{a}");
        }
        for a in ["203.0.113.9", "8.8.8.8", "2001:db8::1", "172.32.0.1"] {
            assert!(!is_local(ip(a)), "{a}");
        }
    }

    #[test]
    fn mistakes_are_counted_and_split_by_where_the_peer_is() {
        let w = Watch::default();
        w.note(ip("127.0.0.1"), Source::IgnoredForwarding, false);
        w.note(ip("127.0.0.1"), Source::IgnoredForwarding, false);
        w.note(ip("203.0.113.9"), Source::IgnoredForwarding, false);
        w.note(ip("10.0.0.5"), Source::Unknown, false);
        w.note(ip("10.0.0.5"), Source::Unknown, true); // a probe: not counted
        w.note(ip("10.0.0.5"), Source::Forwarded, false);
        w.note(ip("192.0.2.1"), Source::Peer, false);
        let s = w.snapshot(1);
        assert_eq!(
            s,
            IdentitySnapshot {
                trusted_proxies: 1,
                forwarded: 1,
                unknown: 1,
                last_unknown_proxy: Some(ip("10.0.0.5")),
                ignored_local: 2,
                last_ignored_local: Some(ip("127.0.0.1")),
                ignored_public: 1,
            }
        );
        // One warning per peer and kind.
        assert_eq!(w.warned(), 3);
    }

    #[test]
    fn the_warned_set_is_bounded() {
        let w = Watch::default();
        for i in 0..(MAX_WARNED_PEERS as u32 + 100) {
            let peer = IpAddr::from((0xC633_6400u32 + i).to_be_bytes()); // 198.51.100.0 +
            w.note(peer, Source::IgnoredForwarding, false);
        }
        assert_eq!(w.warned(), MAX_WARNED_PEERS);
        assert_eq!(w.snapshot(0).ignored_public, MAX_WARNED_PEERS as u64 + 100);
    }
}
