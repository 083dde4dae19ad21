//! The hash chain, as pure functions: canonical JSON and event hashes.
//!
//! An event's hash is the hex SHA-256 of its canonical JSON — object keys
//! sorted (by code point), no whitespace, strings escaped by `serde_json` —
//! taken with `prev_hash` and without `hash`. The first event's `prev_hash` is
//! [`GENESIS`]; after a retention purge it is the anchor's hash. The canonical
//! form is written here rather than relying on `serde_json::Map` ordering, so a
//! dependency enabling `preserve_order` cannot silently change every hash.
//!
//! Two entry versions. Version 1 (chains written before personal-data
//! erasure existed) hashes the fields themselves. Version 2 (every new entry)
//! hashes a body without `identity` and `source_ip` that carries
//! `"v": 2` and `"personal": SHA-256(canonical {identity, salt, source_ip})`;
//! the fields and the salt are stored beside the body. Erasing them leaves the
//! commitment, so the entry's hash and every link still verify and prove only
//! that something was erased.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::StoredEvent;

/// The `prev_hash` of the first event ever recorded: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Appends the canonical JSON of `v` to `out`: sorted keys, no whitespace.
pub fn canonical_into(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_into(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_into(item, out);
            }
            out.push(']');
        }
        // Scalars: serde_json's own compact form (strings escaped, control characters as \u00XX).
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The canonical JSON of `v`.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    canonical_into(v, &mut out);
    out
}

/// Hex SHA-256 of `text`.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The canonical JSON that `event.hash` covers: every field but `hash`.
pub fn hashed_body(event: &StoredEvent) -> String {
    let mut v = serde_json::to_value(event)
        .expect("a StoredEvent always serialises (string keys, finite values)");
    if let Value::Object(map) = &mut v {
        map.remove("hash");
    }
    canonical(&v)
}

/// Sets `event.hash` from its other fields (including `prev_hash`).
pub fn seal(event: &mut StoredEvent) {
    event.hash = sha256_hex(&hashed_body(event));
}

/// True when `event.hash` matches its other fields.
pub fn seal_holds(event: &StoredEvent) -> bool {
    sha256_hex(&hashed_body(event)) == event.hash
}

/// The fields of an event that are personal data: kept out of the hashed body
/// of a version-2 entry, which carries a salted commitment to them instead.
pub const PERSONAL_FIELDS: [&str; 2] = ["identity", "source_ip"];

/// The marker of a version-2 body (`"v": 2`).
pub const V2: u64 = 2;

/// An event's personal fields and the salt of their commitment: what a
/// version-2 entry stores beside its hashed body, and what erasure removes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Personal {
    /// The hashed identity, when the event had one.
    pub identity: Option<String>,
    /// The client address, when the event had one.
    pub source_ip: Option<std::net::IpAddr>,
    /// 16 random bytes, hex: without it the commitment cannot be brute-forced
    /// back to an 8-hex identity hash or an IPv4 address.
    pub salt: String,
}

impl Personal {
    /// The personal fields of `event` with a fresh salt; `None` when it has none.
    pub fn of(event: &StoredEvent) -> Option<Self> {
        if event.event.identity.is_none() && event.event.source_ip.is_none() {
            return None;
        }
        let mut salt = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
        Some(Self {
            identity: event.event.identity.clone(),
            source_ip: event.event.source_ip,
            salt: hex::encode(salt),
        })
    }

    /// Hex SHA-256 of the canonical JSON of the fields and the salt.
    pub fn commitment(&self) -> String {
        let v = serde_json::to_value(self).expect("plain fields serialise");
        sha256_hex(&canonical(&v))
    }
}

/// The canonical JSON a version-2 entry's hash covers: every field but `hash`
/// and the personal ones, plus `"v": 2` and, when the event has personal
/// fields, `"personal": <commitment>`.
pub fn v2_body(event: &StoredEvent, commitment: Option<&str>) -> String {
    let mut v = serde_json::to_value(event)
        .expect("a StoredEvent always serialises (string keys, finite values)");
    if let Value::Object(map) = &mut v {
        map.remove("hash");
        for f in PERSONAL_FIELDS {
            map.remove(f);
        }
        map.insert("v".into(), Value::from(V2));
        if let Some(c) = commitment {
            map.insert("personal".into(), Value::String(c.to_owned()));
        }
    }
    canonical(&v)
}

/// Seals `event` as a version-2 entry: sets its hash; returns the body to store
/// and its personal fields (stored beside it, erasable).
pub fn seal_v2(event: &mut StoredEvent) -> (String, Option<Personal>) {
    let personal = Personal::of(event);
    let body = v2_body(
        event,
        personal.as_ref().map(Personal::commitment).as_deref(),
    );
    event.hash = sha256_hex(&body);
    (body, personal)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_sorts_keys_at_every_level_and_has_no_whitespace() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": null, "x": "s"}], "c": true}});
        assert_eq!(
            canonical(&v),
            r#"{"a":{"c":true,"z":[1,{"x":"s","y":null}]},"b":1}"#
        );
    }

    #[test]
    fn control_characters_stay_escaped_in_the_canonical_form() {
        let v = json!({"room": "a\r\nforged\u{1b}[2J"});
        let c = canonical(&v);
        assert!(
            !c.contains('\n') && !c.contains('\r') && !c.contains('\u{1b}'),
            "{c}"
        );
        assert_eq!(serde_json::from_str::<Value>(&c).expect("parses"), v);
    }

    #[test]
    fn the_seal_covers_prev_hash_and_every_field() {
        let mut e = super::super::tests::sample_event();
        e.prev_hash = GENESIS.to_owned();
        seal(&mut e);
        assert_eq!(e.hash.len(), 64);
        assert!(seal_holds(&e));
        let expected = sha256_hex(&hashed_body(&e));
        assert_eq!(e.hash, expected);
        assert!(!hashed_body(&e).contains("\"hash\""));
        let mut other = e.clone();
        other.prev_hash = "1".repeat(64);
        assert!(!seal_holds(&other));
        let mut other = e.clone();
        other.event.details.insert("n".into(), json!(2));
        assert!(!seal_holds(&other));
    }
}
