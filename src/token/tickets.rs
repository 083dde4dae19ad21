//! Single-use SSE tickets (`POST /api/auth/sse-token`).
//!
//! Browsers' `EventSource` cannot send headers, and a full access token in a
//! URL ends up in proxies' logs. A ticket is 32 random bytes, valid for 60 s,
//! redeemable once, only on `/api/events`, and carries the caller's own
//! verified claims — never wider — with the caller's expiry still binding.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use rand::RngCore;

use crate::token::Claims;

/// Ticket lifetime.
pub const TICKET_TTL_MS: i64 = 60_000;

/// Prefix that tells a ticket from a JWT.
pub const TICKET_PREFIX: &str = "wt_";

/// Outstanding tickets, bounded.
#[derive(Debug)]
pub struct Tickets {
    cap: usize,
    map: Mutex<HashMap<String, (Claims, i64)>>,
}

impl Tickets {
    /// At most `cap` outstanding tickets.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a ticket for `claims`; returns it with its expiry (Unix ms), or
    /// `None` when `cap` unexpired tickets are outstanding.
    pub fn issue(&self, claims: Claims, now_ms: i64) -> Option<(String, i64)> {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = format!(
            "{TICKET_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let expires = (now_ms + TICKET_TTL_MS).min(claims.exp.saturating_mul(1000));
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= self.cap {
            map.retain(|_, (_, exp)| *exp > now_ms);
            if map.len() >= self.cap {
                return None;
            }
        }
        map.insert(ticket.clone(), (claims, expires));
        Some((ticket, expires))
    }

    /// Redeems a ticket once.
    pub fn redeem(&self, ticket: &str, now_ms: i64) -> Option<Claims> {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (claims, exp) = map.remove(ticket)?;
        (exp > now_ms).then_some(claims)
    }

    /// Drops every outstanding ticket whose token's key (`iss`) `verifies`
    /// refuses (a revoked key); returns how many went.
    pub fn revoke_unless(&self, verifies: impl Fn(&str) -> bool) -> usize {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = map.len();
        map.retain(|_, (claims, _)| verifies(&claims.iss));
        before - map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            sub: "u".into(),
            iss: "k".into(),
            exp: 10_000,
            ..Claims::default()
        }
    }

    #[test]
    fn single_use_and_expiring() {
        let t = Tickets::new(10);
        let (a, exp) = t.issue(claims(), 1_000).expect("issued");
        assert_eq!(exp, 61_000);
        assert!(a.starts_with(TICKET_PREFIX));
        assert_eq!(t.redeem(&a, 2_000).map(|c| c.sub), Some("u".into()));
        assert!(t.redeem(&a, 2_000).is_none(), "second use refused");
        let (b, _) = t.issue(claims(), 1_000).expect("issued");
        assert!(t.redeem(&b, 61_000).is_none(), "expired");
    }

    #[test]
    fn never_outlives_the_callers_token() {
        let t = Tickets::new(10);
        let (_, exp) = t
            .issue(
                Claims {
                    exp: 30,
                    ..claims()
                },
                1_000,
            )
            .expect("issued");
        assert_eq!(exp, 30_000);
    }

    #[test]
    fn tickets_of_a_revoked_key_are_dropped() {
        let t = Tickets::new(10);
        let (a, _) = t.issue(claims(), 0).expect("issued");
        let other = Claims {
            iss: "k2".into(),
            ..claims()
        };
        let (b, _) = t.issue(other, 0).expect("issued");
        assert_eq!(t.revoke_unless(|k| k != "k"), 1);
        assert!(
            t.redeem(&a, 1).is_none(),
            "the revoked key's ticket is gone"
        );
        assert!(t.redeem(&b, 1).is_some());
    }

    #[test]
    fn bounded() {
        let t = Tickets::new(2);
        t.issue(claims(), 0).expect("1");
        t.issue(claims(), 0).expect("2");
        assert!(t.issue(claims(), 0).is_none());
        assert!(
            t.issue(claims(), 61_000).is_some(),
            "expired ones are purged"
        );
    }
}
