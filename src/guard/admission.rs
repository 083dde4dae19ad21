//! SSE admission: the global and per-client connection caps, O(1) and before
//! any expensive work. A [`ConnPermit`] is held by the stream and released on
//! drop, so a connection that ends for any reason frees its slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::guard::ClientKey;

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    /// `realtime.max_connections` reached (the server is full).
    #[error("the server is at its connection limit")]
    Global,
    /// `realtime.max_connections_per_ip` reached for this client.
    #[error("too many connections from this client")]
    PerClient,
}

struct Shared {
    max_total: usize,
    max_per_client: usize,
    v6_prefix: u8,
    total: AtomicUsize,
    per_client: Mutex<HashMap<ClientKey, usize>>,
}

/// The connection counters (cheap `Clone`).
#[derive(Clone)]
pub struct Admission(Arc<Shared>);

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("open", &self.open())
            .finish()
    }
}

impl Admission {
    /// Caps: total, per client; IPv6 clients counted per `v6_prefix`.
    pub fn new(max_total: usize, max_per_client: usize, v6_prefix: u8) -> Self {
        Self(Arc::new(Shared {
            max_total,
            max_per_client,
            v6_prefix,
            total: AtomicUsize::new(0),
            per_client: Mutex::new(HashMap::new()),
        }))
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        self.0.total.load(Ordering::Relaxed)
    }

    /// The global cap.
    pub fn max_total(&self) -> usize {
        self.0.max_total
    }

    /// Admits one connection from `ip`, or says which cap refused it.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnPermit, AdmissionError> {
        let s = &self.0;
        if s.total.fetch_add(1, Ordering::AcqRel) >= s.max_total {
            s.total.fetch_sub(1, Ordering::AcqRel);
            return Err(AdmissionError::Global);
        }
        // The same client identity as every other limit (IPv4-mapped = IPv4, IPv6 per prefix).
        let client = ClientKey::new(ip, s.v6_prefix);
        let mut map = s
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(client).or_insert(0);
        if *n >= s.max_per_client {
            drop(map);
            s.total.fetch_sub(1, Ordering::AcqRel);
            return Err(AdmissionError::PerClient);
        }
        *n += 1;
        Ok(ConnPermit {
            admission: self.clone(),
            client,
        })
    }
}

/// One admitted connection; releases its slots when dropped.
pub struct ConnPermit {
    admission: Admission,
    client: ClientKey,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let s = &self.admission.0;
        let mut map = s
            .per_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.client);
            }
        }
        drop(map);
        s.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn caps_hold_and_release() {
        let a = Admission::new(3, 2, 64);
        let p1 = a.admit(ip("10.0.0.1")).expect("1");
        let _p2 = a.admit(ip("10.0.0.1")).expect("2");
        assert_eq!(
            a.admit(ip("10.0.0.1")).err(),
            Some(AdmissionError::PerClient)
        );
        let _p3 = a.admit(ip("10.0.0.2")).expect("3");
        assert_eq!(a.admit(ip("10.0.0.3")).err(), Some(AdmissionError::Global));
        drop(p1);
        assert_eq!(a.open(), 2);
        a.admit(ip("10.0.0.1")).expect("slot freed");
    }

    #[test]
    fn ipv6_counts_per_prefix_and_mapped_v4_is_v4() {
        let a = Admission::new(100, 1, 64);
        let _p = a.admit(ip("2001:db8:1:2::1")).expect("first");
        assert_eq!(
            a.admit(ip("2001:db8:1:2:ffff::9")).err(),
            Some(AdmissionError::PerClient)
        );
        a.admit(ip("2001:db8:1:3::1")).expect("another /64");
        let _q = a.admit(ip("192.0.2.1")).expect("v4");
        assert_eq!(
            a.admit(ip("::ffff:192.0.2.1")).err(),
            Some(AdmissionError::PerClient)
        );
        a.admit(ip("192.0.2.2")).expect("another v4");
    }
}
