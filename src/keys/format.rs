//! Key hygiene: the shape of key ids, fresh ids and secrets, fingerprints and
//! peppered hashes.
//!
//! Keys Warden creates look like `livekit-server generate-keys` output: `API`
//! followed by 12 base57 characters (the shortuuid alphabet, which leaves out
//! `0 1 I O l`), and a secret of 32 random bytes written in base62 (43
//! characters). Key ids of other shapes are still accepted from the key file and
//! the environment (LiveKit allows `key1`); [`validate_api_key_format`] is the
//! check for callers that want the canonical shape.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::pepper::Pepper;
use crate::redact::Secret;

/// The prefix of every key id Warden creates.
pub const API_KEY_PREFIX: &str = "API";

/// Length of the base57 part of a key id.
pub const API_KEY_BODY_LEN: usize = 12;

/// The base57 alphabet of LiveKit key ids (shortuuid's default alphabet).
pub const BASE57: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters of a base62-encoded 32-byte secret (62^43 > 2^256).
pub const SECRET_LEN: usize = 43;

/// Shortest secret accepted in strict mode.
pub const MIN_SECRET_LEN: usize = 32;

/// What is wrong with a key id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// The id is empty.
    #[error("the API key is empty")]
    Empty,
    /// The id does not start with `API`.
    #[error("the API key must start with \"API\"")]
    MissingPrefix,
    /// The part after `API` has the wrong length.
    #[error("the API key must be \"API\" followed by 12 characters, found {found}")]
    WrongLength {
        /// Characters after the prefix.
        found: usize,
    },
    /// A character outside the base57 alphabet.
    #[error(
        "the API key has {found:?} at position {position}, which is not base57 (0, 1, I, O and l are never used)"
    )]
    BadCharacter {
        /// 0-based position in the whole id.
        position: usize,
        /// The offending character.
        found: char,
    },
}

/// Checks that `id` has the shape of a key LiveKit generates: `API` + 12 base57 characters.
pub fn validate_api_key_format(id: &str) -> Result<(), KeyFormatError> {
    if id.is_empty() {
        return Err(KeyFormatError::Empty);
    }
    let Some(body) = id.strip_prefix(API_KEY_PREFIX) else {
        return Err(KeyFormatError::MissingPrefix);
    };
    if let Some((i, c)) = body
        .char_indices()
        .find(|(_, c)| !c.is_ascii() || !BASE57.contains(&(*c as u8)))
    {
        return Err(KeyFormatError::BadCharacter {
            position: API_KEY_PREFIX.len() + i,
            found: c,
        });
    }
    if body.len() != API_KEY_BODY_LEN {
        return Err(KeyFormatError::WrongLength {
            found: body.chars().count(),
        });
    }
    Ok(())
}

/// A fresh key id: `API` + 12 uniformly random base57 characters.
pub fn generate_key_id() -> String {
    let mut rng = rand::rng();
    let mut id = String::with_capacity(API_KEY_PREFIX.len() + API_KEY_BODY_LEN);
    id.push_str(API_KEY_PREFIX);
    while id.len() < API_KEY_PREFIX.len() + API_KEY_BODY_LEN {
        // Rejection sampling keeps the distribution uniform: 57 of 64 six-bit values are kept.
        let v = (rng.next_u32() & 0x3f) as usize;
        if let Some(&c) = BASE57.get(v) {
            id.push(char::from(c));
        }
    }
    id
}

/// A fresh secret: 32 random bytes written in base62, left-padded to 43 characters.
pub fn generate_secret() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = Secret::new(base62_of(&bytes));
    zeroize::Zeroize::zeroize(&mut bytes);
    secret
}

/// Big-endian bytes as a base62 number, padded with `0` to [`SECRET_LEN`].
fn base62_of(bytes: &[u8; 32]) -> String {
    let mut num = *bytes;
    let mut digits = Vec::with_capacity(SECRET_LEN);
    for _ in 0..SECRET_LEN {
        // One long division of the 256-bit number by 62; the remainder is the next digit.
        let mut rem: u32 = 0;
        for b in num.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = u8::try_from(cur / 62).expect("quotient of a 14-bit value by 62 fits a byte");
            rem = cur % 62;
        }
        digits.push(BASE62[rem as usize]);
    }
    zeroize::Zeroize::zeroize(&mut num);
    digits.reverse();
    String::from_utf8(digits).expect("base62 digits are ASCII")
}

/// HMAC-SHA256 of the key with the deployment pepper (hex): how to store a key
/// that Warden only needs to recognise, never to use.
pub fn hash_api_key_for_storage(pepper: &Pepper, key: &str) -> String {
    pepper.hmac_hex(key.as_bytes())
}

/// A short, non-reversible fingerprint of a secret for logs and status: the
/// first 8 hex characters of its SHA-256 (32 bits: enough to tell keys apart,
/// far too few to help guess a 256-bit secret).
pub fn fingerprint(secret: &Secret) -> String {
    let digest = Sha256::digest(secret.expose().as_bytes());
    let mut hex = hex::encode(&digest[..4]);
    hex.truncate(8);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_pass_the_format_check_and_differ() {
        let a = generate_key_id();
        let b = generate_key_id();
        assert_eq!(validate_api_key_format(&a), Ok(()));
        assert_eq!(a.len(), 15);
        assert_ne!(a, b);
    }

    #[test]
    fn format_errors_say_what_is_wrong() {
        assert_eq!(validate_api_key_format(""), Err(KeyFormatError::Empty));
        assert_eq!(
            validate_api_key_format("key1"),
            Err(KeyFormatError::MissingPrefix)
        );
        assert_eq!(
            validate_api_key_format("APIabc"),
            Err(KeyFormatError::WrongLength { found: 3 })
        );
        assert_eq!(
            validate_api_key_format("APIabcdefghijk0"),
            Err(KeyFormatError::BadCharacter {
                position: 14,
                found: '0'
            })
        );
        assert_eq!(
            validate_api_key_format("APIabcdefghlijk"),
            Err(KeyFormatError::BadCharacter {
                position: 11,
                found: 'l'
            })
        );
        let msg = KeyFormatError::WrongLength { found: 3 }.to_string();
        assert!(msg.contains("12") && msg.contains('3'), "{msg}");
    }

    #[test]
    fn secrets_are_43_base62_chars_and_random() {
        let a = generate_secret();
        let b = generate_secret();
        assert_eq!(a.len(), SECRET_LEN);
        assert!(a.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn base62_conversion_is_exact() {
        let mut one = [0u8; 32];
        one[31] = 61;
        assert_eq!(base62_of(&one), format!("{}z", "0".repeat(42)));
        one[31] = 62;
        assert_eq!(base62_of(&one), format!("{}10", "0".repeat(41)));
        // 2^256 - 1 needs all 43 digits and does not start with 0.
        let max = base62_of(&[0xff; 32]);
        assert!(!max.starts_with('0'), "{max}");
    }

    #[test]
    fn fingerprint_and_storage_hash_are_stable_and_hide_the_secret() {
        let s = Secret::new("a-secret-that-is-long-enough-for-strict-mode");
        let fp = fingerprint(&s);
        assert_eq!(fp.len(), 8);
        assert_eq!(fp, fingerprint(&s.clone()));
        assert_ne!(
            fp,
            fingerprint(&Secret::new("another-secret-that-is-long-enough-xx"))
        );
        let p = Pepper::new("p".repeat(32));
        let h = hash_api_key_for_storage(&p, "APIabcdefghijkm");
        assert_eq!(h.len(), 64);
        assert_eq!(h, p.hmac_hex(b"APIabcdefghijkm"));
        assert_ne!(
            h,
            hash_api_key_for_storage(&Pepper::new("q".repeat(32)), "APIabcdefghijkm")
        );
    }
}
