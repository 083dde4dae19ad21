//! Admission at accept: caps on open TCP connections, and the accept loop's
//! way through file-descriptor exhaustion.
//!
//! - Per client address (IPv6 per `suspicious_activity.ipv6_prefix_length`,
//!   IPv4-mapped = IPv4, as every other per-client limit):
//!   `server.max_tcp_connections_per_ip`, so one address cannot hold the
//!   sockets everyone else needs. `server.trusted_proxies` are exempt: a
//!   proxy carries many clients, which the per-client limits count after
//!   `X-Forwarded-For`.
//! - In all: `server.max_tcp_connections`, by default the open-file limit
//!   minus [`FD_HEADROOM`], so connections never take the descriptors the
//!   store, the logs, the key files and outgoing connections need.
//! - A refused connection is closed at once (its client sees a reset or EOF
//!   instead of a hang) and counted in `warden_tcp_refusals_total`.
//! - If `accept` still fails with `EMFILE`/`ENFILE`, the [`Reserve`]
//!   descriptor is freed to accept the waiting connection and close it, then
//!   taken again: the loop never spins or dies, it logs once per burst and
//!   counts each one (`reason="fd_exhausted"`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;

use crate::guard::ClientKey;
use crate::metrics::Metrics;

/// Descriptors kept out of the default connection budget.
pub const FD_HEADROOM: u64 = 64;

/// The open-file limit minus [`FD_HEADROOM`] (half of a tiny limit); `usize::MAX` when unlimited.
pub fn fd_budget() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    match limit {
        None => usize::MAX,
        Some(n) if n > 2 * FD_HEADROOM => usize::try_from(n - FD_HEADROOM).unwrap_or(usize::MAX),
        Some(n) => usize::try_from(n / 2).unwrap_or(usize::MAX),
    }
}

/// The connection caps of one listener.
pub(super) struct Gate {
    per_ip: usize,
    v6_prefix: u8,
    exempt: Vec<IpNet>,
    max_total: usize,
    total: AtomicUsize,
    /// Each address with open connections: its shared entry and their count.
    per_client: Mutex<HashMap<ClientKey, (Arc<Client>, usize)>>,
    metrics: Option<Metrics>,
}

/// One client address (or one exempt connection), shared by its passes.
struct Client {
    gate: Arc<Gate>,
    key: Option<ClientKey>,
}

/// One admitted connection (a pointer: it lives as long as the connection's
/// task, tens of thousands at once); frees its place when dropped.
pub(super) struct Pass(Arc<Client>);

impl Gate {
    pub(super) fn new(
        per_ip: usize,
        v6_prefix: u8,
        exempt: Vec<IpNet>,
        max_total: usize,
        metrics: Option<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            per_ip,
            v6_prefix,
            exempt,
            max_total,
            total: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
            metrics,
        })
    }

    /// Admits a connection from `ip`, or names the cap that refused it.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Pass, &'static str> {
        let refused = |reason| {
            if let Some(m) = &self.metrics {
                m.tcp_refusal(reason);
            }
            Err(reason)
        };
        if self.total.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return refused("total_limit");
        }
        let ip = ip.to_canonical();
        let client = if self.exempt.iter().any(|n| n.contains(&ip)) {
            Arc::new(Client {
                gate: self.clone(),
                key: None,
            })
        } else {
            let key = ClientKey::new(ip, self.v6_prefix);
            let mut map = self
                .per_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (client, n) = map.entry(key).or_insert_with(|| {
                let client = Arc::new(Client {
                    gate: self.clone(),
                    key: Some(key),
                });
                (client, 0)
            });
            if *n >= self.per_ip {
                drop(map);
                self.total.fetch_sub(1, Ordering::AcqRel);
                return refused("per_ip_limit");
            }
            *n += 1;
            client.clone()
        };
        if let Some(m) = &self.metrics {
            m.tcp_connection(1);
        }
        Ok(Pass(client))
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let g = &self.0.gate;
        if let Some(key) = &self.0.key {
            let mut map = g.per_client.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, n)) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    // Breaks the entry's cycle (gate → entry → gate).
                    map.remove(key);
                }
            }
        }
        g.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(m) = &g.metrics {
            m.tcp_connection(-1);
        }
    }
}

/// True for the accept errors that mean "out of descriptors (or memory)".
pub(super) fn is_exhaustion(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let errno = Errno::from_io_error(e);
    [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM]
        .into_iter()
        .any(|x| errno == Some(x))
}

/// One descriptor held back for the moment the process runs out: freed, it
/// lets the accept loop take a waiting connection and close it.
pub(super) struct Reserve(Option<std::fs::File>);

impl Reserve {
    pub(super) fn new() -> Self {
        Self(std::fs::File::open("/dev/null").ok())
    }

    /// Frees the descriptor; true if there was one.
    pub(super) fn release(&mut self) -> bool {
        self.0.take().is_some()
    }

    /// Takes a descriptor again (if one is free now).
    pub(super) fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = std::fs::File::open("/dev/null").ok();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn per_address_and_total_caps_with_proxies_exempt() {
        let proxy: IpNet = "10.0.0.1/32".parse().expect("net");
        let gate = Gate::new(2, 64, vec![proxy], 7, None);
        let a1 = gate.admit(ip("192.0.2.1")).expect("1");
        let _a2 = gate.admit(ip("::ffff:192.0.2.1")).expect("2: mapped = v4");
        assert_eq!(gate.admit(ip("192.0.2.1")).err(), Some("per_ip_limit"));
        let _v1 = gate.admit(ip("2001:db8::1")).expect("v6");
        let _v2 = gate.admit(ip("2001:db8::2")).expect("same /64");
        assert_eq!(gate.admit(ip("2001:db8::3")).err(), Some("per_ip_limit"));
        let _v3 = gate.admit(ip("2001:db8:0:1::1")).expect("another /64");
        let _p1 = gate.admit(ip("10.0.0.1")).expect("proxy");
        let _p2 = gate.admit(ip("10.0.0.1")).expect("proxy again: exempt");
        assert_eq!(gate.open(), 7);
        assert_eq!(gate.admit(ip("10.0.0.1")).err(), Some("total_limit"));
        assert_eq!(gate.admit(ip("198.51.100.1")).err(), Some("total_limit"));
        drop(a1);
        assert_eq!(gate.open(), 6);
        gate.admit(ip("192.0.2.1"))
            .expect("a freed place is reusable");
    }

    #[test]
    fn a_pass_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Pass>(), std::mem::size_of::<usize>());
        let gate = Gate::new(2, 64, Vec::new(), 10, None);
        let a = gate.admit(ip("192.0.2.1")).expect("a");
        let b = gate.admit(ip("192.0.2.1")).expect("b");
        assert!(Arc::ptr_eq(&a.0, &b.0), "one entry per address");
        drop((a, b));
        assert!(gate.per_client.lock().expect("map").is_empty());
    }

    #[test]
    fn the_budget_leaves_headroom() {
        let budget = fd_budget();
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        if let Some(n) = limit {
            assert!((budget as u64) < n, "{budget} >= the limit {n}");
        }
        assert!(budget > 0);
    }
}
