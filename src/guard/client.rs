//! Client identity: which address a request really comes from, and the key
//! every per-client limit is counted under.
//!
//! Invariants:
//! - `X-Forwarded-For` is read only when the TCP peer is a trusted proxy; a
//!   spoofed header from anyone else changes nothing.
//! - Addresses are canonical: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
//!   the IPv4 address, so one client cannot count twice, and IPv4 clients are
//!   never folded into the `::/64` that the mapped form would fall in.
//! - Parsing work is bounded whatever the header holds (see [`MAX_XFF_ENTRIES`]).
//! - A request from a trusted proxy that does not say who its client is (no
//!   usable `X-Forwarded-For` entry) comes from [`UNKNOWN_CLIENT`], never from
//!   the proxy's own address: a proxy on loopback must not lend its clients
//!   loopback's rights (`/metrics`), nor one shared address to lock out.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv6Net};

/// Most non-empty `X-Forwarded-For` entries examined, right to left.
///
/// Proxies append on the right, so the entries that matter come first in the
/// walk; anything a client wrote sits on the left. No real proxy chain is
/// anywhere near this long. Empty entries (`,,,`) are skipped without counting:
/// they cost one byte comparison each, bounded by the server's header-size
/// limit, so 10 kB of commas costs microseconds and cannot hide the client.
pub const MAX_XFF_ENTRIES: usize = 64;

/// Longest entry that is parsed at all (`[v6]:port` fits in 47 bytes).
const MAX_ENTRY_LEN: usize = 64;

/// The address of a client a trusted proxy did not name: `0.0.0.0`.
///
/// No TCP peer can have it and [`parse_entry`] never yields it, so it is one
/// key of its own. What that means for such requests:
/// - they are **one client** for lockouts and rate limits, so they are held
///   strictly: failures from any of them add up, and a lockout stops all of
///   them (as if the proxy were one client — the safe reading of "we do not
///   know who this is"), while every client the proxy does name keeps its own
///   count;
/// - they are **not loopback** (`is_loopback()` is false): no loopback
///   privilege (`/metrics` without a token) passes through a proxy;
/// - `webhooks.allowed_ips`, `suspicious_activity.allowlist` and the
///   blocklist contain it only if an operator lists `0.0.0.0` or a network
///   around it (`0.0.0.0/0`).
///
/// Audit events show it as `source_ip: "0.0.0.0"`.
pub const UNKNOWN_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The real client address of a request.
///
/// `peer` is the TCP peer; `forwarded_for` holds every `X-Forwarded-For` header
/// line in order of arrival. When `peer` is in `trusted`, the entries of all
/// lines are walked from the right and the first one that is not itself a
/// trusted proxy is the client; malformed entries are skipped. If every entry
/// is a trusted proxy, the leftmost of them is the client; with no usable entry
/// at all, the client is [`UNKNOWN_CLIENT`] (the proxy did not say who it is).
/// The result is canonical (IPv4-mapped → IPv4).
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_in(peer, trusted) {
        return peer;
    }
    let mut leftmost_trusted = None;
    let entries = forwarded_for.iter().rev().flat_map(|line| line.rsplit(','));
    let non_empty = entries.filter(|e| !e.trim().is_empty());
    for entry in non_empty.take(MAX_XFF_ENTRIES) {
        let Some(ip) = parse_entry(entry) else {
            continue;
        };
        if !is_in(ip, trusted) {
            return ip;
        }
        leftmost_trusted = Some(ip);
    }
    leftmost_trusted.unwrap_or(UNKNOWN_CLIENT)
}

/// True when `ip` (canonical) is inside one of `nets`.
pub fn is_in(ip: IpAddr, nets: &[IpNet]) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|n| n.contains(&ip))
}

/// Parses one `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `::1`,
/// `[::1]` or `[::1]:80`, with optional surrounding spaces or quotes.
/// Anything else (`unknown`, zone ids, garbage) is `None`, and so is an
/// unspecified address (`0.0.0.0`, `::`): no client connects from one, and
/// `0.0.0.0` is [`UNKNOWN_CLIENT`].
pub fn parse_entry(entry: &str) -> Option<IpAddr> {
    parse_address(entry).filter(|ip| !ip.is_unspecified())
}

fn parse_address(entry: &str) -> Option<IpAddr> {
    let e = entry.trim().trim_matches('"');
    if e.is_empty() || e.len() > MAX_ENTRY_LEN {
        return None;
    }
    if let Some(rest) = e.strip_prefix('[') {
        let (host, tail) = rest.split_once(']')?;
        if !(tail.is_empty() || is_port(tail.strip_prefix(':')?)) {
            return None;
        }
        return host
            .parse::<Ipv6Addr>()
            .ok()
            .map(|v6| IpAddr::V6(v6).to_canonical());
    }
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    // Only IPv4 may carry a bare `:port`; a bare IPv6 address has many colons.
    let (host, port) = e.split_once(':')?;
    if !is_port(port) {
        return None;
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The unit every per-client limit, lockout and counter is kept under: one
/// IPv4 address, or one IPv6 network of the configured prefix length.
///
/// Stored as bytes so the key is small (18 bytes, alignment 1) — it is held
/// twice per tracked client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// One IPv4 address.
    V4([u8; 4]),
    /// One IPv6 network: its masked address and prefix length.
    V6([u8; 16], u8),
}

impl ClientKey {
    /// The key of `ip`: canonicalised, IPv6 truncated to `ipv6_prefix` bits
    /// (clamped to 1..=128).
    pub fn new(ip: IpAddr, ipv6_prefix: u8) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => {
                let prefix = ipv6_prefix.clamp(1, 128);
                let net = Ipv6Net::new(v6, prefix).map(|n| n.network()).unwrap_or(v6);
                Self::V6(net.octets(), prefix)
            }
        }
    }

    /// The key as a network (an IPv4 key is a /32).
    pub fn net(&self) -> IpNet {
        match *self {
            Self::V4(o) => IpNet::from(IpAddr::V4(Ipv4Addr::from(o))),
            Self::V6(o, p) => Ipv6Net::new(Ipv6Addr::from(o), p)
                .map(IpNet::V6)
                .unwrap_or_else(|_| IpNet::from(IpAddr::V6(Ipv6Addr::from(o)))),
        }
    }
}

impl fmt::Display for ClientKey {
    /// The address for IPv4 and /128 keys, the network (`2001:db8::/64`) otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::V4(o) => Ipv4Addr::from(o).fmt(f),
            Self::V6(o, 128) => Ipv6Addr::from(o).fmt(f),
            Self::V6(..) => self.net().fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        let net = |s: &str| {
            s.parse()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .expect("test net")
        };
        list.iter().map(|s| net(s)).collect()
    }

    #[test]
    fn untrusted_peer_spoofed_header_is_ignored() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &["1.1.1.1"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(client_ip(ip("203.0.113.9"), &[], &[]), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_proxy_takes_rightmost_untrusted_across_lines() {
        let trusted = nets(&["10.0.0.0/8", "192.168.1.1"]);
        // The client wrote `6.6.6.6`; the proxies appended the rest.
        let lines = ["6.6.6.6, 198.51.100.7", "192.168.1.1,10.1.2.3"];
        assert_eq!(
            client_ip(ip("10.0.0.1"), &lines, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn malformed_entries_are_skipped() {
        let trusted = nets(&["10.0.0.0/8"]);
        let lines = ["198.51.100.7, unknown, 999.1.1.1,  , fe80::1%eth0, _hidden"];
        assert_eq!(
            client_ip(ip("10.0.0.1"), &lines, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn ports_brackets_and_mapped_forms_are_canonicalised() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("::ffff:10.0.0.1"); // a mapped trusted peer is still trusted
        assert_eq!(client_ip(peer, &["1.2.3.4:5"], &trusted), ip("1.2.3.4"));
        assert_eq!(
            client_ip(peer, &["[2001:db8::1]:80"], &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(client_ip(peer, &["[::1]"], &trusted), ip("::1"));
        assert_eq!(
            client_ip(peer, &["\"::ffff:1.2.3.4\""], &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(parse_entry("[::1]x"), None);
        assert_eq!(parse_entry("1.2.3.4:http"), None);
        assert_eq!(parse_entry("2001:db8::1:80"), Some(ip("2001:db8::1:80")));
    }

    #[test]
    fn only_trusted_entries_give_the_leftmost() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &["10.9.9.9, 10.0.0.2"], &trusted),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn a_trusted_proxy_that_names_no_client_gives_the_unknown_client() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        for lines in [
            &[][..],
            &["garbage"],
            &["unknown, ,"],
            &["0.0.0.0"],
            &["[::]:80"],
        ] {
            let got = client_ip(ip("127.0.0.1"), lines, &trusted);
            assert_eq!(got, UNKNOWN_CLIENT, "{lines:?}");
            assert!(!got.is_loopback(), "never loopback's rights");
        }
        // A mapped loopback proxy is the same proxy.
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &[], &trusted),
            UNKNOWN_CLIENT
        );
        // Its own key: not the proxy's, not any real client's.
        let unknown = ClientKey::new(UNKNOWN_CLIENT, 64);
        assert_ne!(unknown, ClientKey::new(ip("127.0.0.1"), 64));
        assert_ne!(unknown, ClientKey::new(ip("::1"), 64));
        assert_ne!(unknown, ClientKey::new(ip("::"), 64));
        // An untrusted peer is still itself, header or not.
        assert_eq!(client_ip(ip("192.0.2.1"), &[], &trusted), ip("192.0.2.1"));
        assert_eq!(client_ip(ip("127.0.0.2"), &[], &trusted), ip("127.0.0.2"));
    }

    #[test]
    fn ten_kilobytes_of_commas_is_bounded_and_harmless() {
        let trusted = nets(&["10.0.0.0/8"]);
        let commas = ",".repeat(10_240);
        // Client junk on the left, the proxy's entry on the right: found at once.
        let junk = format!("6.6.6.6{commas}");
        assert_eq!(
            client_ip(ip("10.0.0.1"), &[&junk, "198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
        // More trusted hops than MAX_XFF_ENTRIES: the walk stops; the client wrote the rest.
        let hops = vec!["10.0.0.9"; MAX_XFF_ENTRIES + 1].join(",");
        assert_eq!(
            client_ip(ip("10.0.0.1"), &["198.51.100.7", &hops], &trusted),
            ip("10.0.0.9")
        );
        // Only commas: nobody named, the unknown client.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &[&commas], &trusted),
            UNKNOWN_CLIENT
        );
        // The worst case — every comma scanned before the client — is linear:
        // 100 walks take well under 2 s even unoptimised on a busy machine
        // (a quadratic walk would take minutes).
        let start = std::time::Instant::now();
        for _ in 0..100 {
            assert_eq!(
                client_ip(ip("10.0.0.1"), &["198.51.100.7", &commas], &trusted),
                ip("198.51.100.7")
            );
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn ipv6_rotation_within_a_prefix_is_one_client() {
        let a = ClientKey::new(ip("2001:db8:1:2::1"), 64);
        let b = ClientKey::new(ip("2001:db8:1:2:ffff:eeee:dddd:cccc"), 64);
        let other = ClientKey::new(ip("2001:db8:1:3::1"), 64);
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            ClientKey::new(ip("2001:db8::1"), 128).to_string(),
            "2001:db8::1"
        );
        assert_ne!(
            ClientKey::new(ip("2001:db8::1"), 128),
            ClientKey::new(ip("2001:db8::2"), 128)
        );
    }

    #[test]
    fn ipv4_mapped_equals_ipv4_without_merging_other_ipv4_clients() {
        let v4 = ClientKey::new(ip("1.2.3.4"), 64);
        let mapped = ClientKey::new(ip("::ffff:1.2.3.4"), 64);
        let neighbour = ClientKey::new(ip("::ffff:1.2.3.5"), 64);
        assert_eq!(v4, mapped);
        assert_ne!(mapped, neighbour);
        assert_eq!(mapped.to_string(), "1.2.3.4");
        assert!(std::mem::size_of::<ClientKey>() <= 18);
    }
}
