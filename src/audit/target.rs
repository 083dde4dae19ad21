//! Where alerts may go: the URL rule and the SSRF rule.
//!
//! The URL must be `https` when `wss_enforcement.enabled` (plain `http` only
//! to a loopback host, and only when `access_validation.strict_mode` is
//! false). Its host is resolved at send time and every address must be public
//! — not private, loopback, link-local, unique-local, CGNAT, multicast,
//! broadcast, reserved or unspecified, IPv4-mapped and NAT64 forms included —
//! unless it lies in `alerts.allowed_private_targets`. The sender then
//! connects to the address checked here (pinned), so a second DNS answer
//! cannot redirect it (DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use reqwest::Url;

use super::alert_error::AlertError;
use crate::config::Config;

/// Checks the alert URL against the transport rule; literal IP hosts are
/// checked against the SSRF rule too (names are checked when resolved).
pub fn validate_alert_url(url: &str, cfg: &Config) -> Result<Url, AlertError> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| AlertError::Url(format!("not an absolute URL ({e})")))?;
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| AlertError::Url("no host".into()))?;
    let loopback_host = is_loopback_name(host);
    match parsed.scheme() {
        "https" => {}
        "http" if !cfg.wss_enforcement.enabled => {}
        "http" if loopback_host && !cfg.access_validation.strict_mode => {}
        "http" if loopback_host => {
            return Err(AlertError::Url(
                "http:// to a loopback host needs access_validation.strict_mode: false (use https)"
                    .into(),
            ));
        }
        "http" => {
            return Err(AlertError::Url(
                "must be https:// while wss_enforcement.enabled is true".into(),
            ));
        }
        other => return Err(AlertError::Url(format!("scheme `{other}` is not https"))),
    }
    if let Some(ip) = literal_ip(&parsed) {
        check_addr(ip, &cfg.alerts.allowed_private_targets)?;
    }
    Ok(parsed)
}

fn literal_ip(url: &Url) -> Option<IpAddr> {
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn is_loopback_name(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.to_ascii_lowercase().ends_with(".localhost")
        || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses `ip` when it is not a public unicast address and not listed in `allowed`.
pub fn check_addr(ip: IpAddr, allowed: &[IpNet]) -> Result<(), AlertError> {
    match non_public_reason(ip) {
        Some(reason) if !allowed.iter().any(|n| n.contains(&ip)) => {
            Err(AlertError::Forbidden { addr: ip, reason })
        }
        _ => Ok(()),
    }
}

/// Why `ip` is not a public unicast address, or `None` when it is.
pub fn non_public_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_reason(v4);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
            if seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = seg[6].to_be_bytes();
                let [c, d] = seg[7].to_be_bytes();
                return v4_reason(Ipv4Addr::new(a, b, c, d));
            }
            v6_reason(v6, seg[0])
        }
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        Some("CGNAT (shared address space)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if ip.is_broadcast() || a >= 240 {
        Some("reserved")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("IETF protocol assignment")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else {
        None
    }
}

fn v6_reason(ip: Ipv6Addr, first: u16) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique-local")
    } else if first & 0xffc0 == 0xfe80 || first & 0xffc0 == 0xfec0 {
        Some("link-local")
    } else if first & 0xff00 == 0xff00 {
        Some("multicast")
    } else if ip.segments()[..6] == [0, 0, 0, 0, 0, 0] {
        Some("IPv4-compatible (deprecated)")
    } else {
        None
    }
}

/// Resolves the URL's host and checks every address; returns the one to connect to.
pub async fn resolve_checked(url: &Url, allowed: &[IpNet]) -> Result<SocketAddr, AlertError> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| AlertError::Url("no port".into()))?;
    if let Some(ip) = literal_ip(url) {
        check_addr(ip, allowed)?;
        return Ok(SocketAddr::new(ip, port));
    }
    let host = url
        .host_str()
        .ok_or_else(|| AlertError::Url("no host".into()))?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| AlertError::Resolve {
            host: host.to_owned(),
            reason: e.to_string(),
        })?
        .collect();
    // Every answer must pass: a name that also points inside would let a
    // later lookup (ours or a proxy's) pick the private one.
    for a in &addrs {
        check_addr(a.ip(), allowed)?;
    }
    addrs.first().copied().ok_or_else(|| AlertError::Resolve {
        host: host.to_owned(),
        reason: "no addresses".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(enforce: bool, strict: bool, allowed: &[&str]) -> Config {
        let mut c = Config::defaults();
        c.wss_enforcement.enabled = enforce;
        c.access_validation.strict_mode = strict;
        c.alerts.allowed_private_targets = allowed
            .iter()
            .map(|s| {
                s.parse()
                    .unwrap_or_else(|_| IpNet::from(s.parse::<IpAddr>().expect("ip")))
            })
            .collect();
        c
    }

    #[test]
    fn non_public_addresses_are_named() {
        for (ip, why) in [
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("127.0.0.1", "loopback"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "CGNAT (shared address space)"),
            ("224.0.0.1", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
        ] {
            assert_eq!(
                non_public_reason(ip.parse().expect("ip")),
                Some(why),
                "{ip}"
            );
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "100.128.0.1",
            "172.32.0.1",
        ] {
            assert_eq!(non_public_reason(ip.parse().expect("ip")), None, "{ip}");
        }
    }

    #[test]
    fn the_url_rule_follows_wss_enforcement_and_strict_mode() {
        assert!(
            validate_alert_url("https://alerts.example.com/hook", &cfg(true, true, &[])).is_ok()
        );
        assert!(
            validate_alert_url("http://alerts.example.com/hook", &cfg(true, false, &[])).is_err()
        );
        assert!(
            validate_alert_url("http://alerts.example.com/hook", &cfg(false, true, &[])).is_ok()
        );
        assert!(validate_alert_url("ftp://alerts.example.com/", &cfg(false, false, &[])).is_err());
        // http to loopback: only without strict mode, and only if loopback is listed.
        let e = validate_alert_url("http://127.0.0.1:9/x", &cfg(true, true, &["127.0.0.1"]))
            .expect_err("strict");
        assert!(e.to_string().contains("strict_mode"), "{e}");
        assert!(
            validate_alert_url("http://127.0.0.1:9/x", &cfg(true, false, &["127.0.0.1"])).is_ok()
        );
        let e = validate_alert_url("http://127.0.0.1:9/x", &cfg(true, false, &[]))
            .expect_err("not listed");
        assert!(e.to_string().contains("loopback"), "{e}");
        let e =
            validate_alert_url("https://10.0.0.5/x", &cfg(true, true, &[])).expect_err("private");
        assert!(e.to_string().contains("private"), "{e}");
        assert!(
            validate_alert_url("https://10.0.0.5/x", &cfg(true, true, &["10.0.0.0/8"])).is_ok()
        );
        assert!(validate_alert_url("https://[fd00::5]/x", &cfg(true, true, &[])).is_err());
    }

    #[tokio::test]
    async fn resolved_names_are_checked_too() {
        let url = Url::parse("https://localhost:9/x").expect("url");
        let e = resolve_checked(&url, &[])
            .await
            .expect_err("localhost resolves to loopback");
        assert!(matches!(e, AlertError::Forbidden { .. }), "{e}");
        let ok = resolve_checked(
            &url,
            &[
                "127.0.0.0/8".parse().expect("net"),
                "::1/128".parse().expect("net"),
            ],
        )
        .await;
        assert!(ok.is_ok_and(|a| a.ip().is_loopback()));
    }
}
