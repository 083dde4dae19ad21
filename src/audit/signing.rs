//! The Standard Webhooks signing key (`whsec_<base64>`) and signature.
//!
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
//! the key being the base64-decoded part after `whsec_`. The key bytes are
//! zeroised on drop and never printed.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::alerts::AlertError;
use crate::redact::Secret;

/// The HMAC key behind a `whsec_…` secret.
pub struct SigningKey {
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>` (at least 24 key bytes).
    pub fn from_whsec(secret: &Secret) -> Result<Self, AlertError> {
        let b64 = secret
            .expose()
            .trim()
            .strip_prefix("whsec_")
            .ok_or(AlertError::Secret)?;
        let key = Zeroizing::new(B64.decode(b64).map_err(|_| AlertError::Secret)?);
        if key.len() < 24 {
            return Err(AlertError::Secret);
        }
        Ok(Self { key })
    }

    /// A fresh random key and its `whsec_…` form.
    pub fn generate() -> (Self, Secret) {
        let mut key = Zeroizing::new(vec![0u8; 32]);
        rand::rng().fill_bytes(&mut key);
        let whsec = Secret::new(format!("whsec_{}", B64.encode(&*key)));
        (Self { key }, whsec)
    }

    /// The `webhook-signature` value for `id`, `timestamp` and `body`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_standard_webhooks_and_round_trips_its_secret() {
        // The Standard Webhooks reference vector.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let key = SigningKey::from_whsec(&secret).expect("valid");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let (fresh, whsec) = SigningKey::generate();
        let again = SigningKey::from_whsec(&whsec).expect("generated secrets parse");
        assert_eq!(fresh.sign("a", 1, b"x"), again.sign("a", 1, b"x"));
        assert!(SigningKey::from_whsec(&Secret::new("nope")).is_err());
        assert!(
            SigningKey::from_whsec(&Secret::new("whsec_AAAA")).is_err(),
            "too short"
        );
        assert_eq!(format!("{fresh:?}"), "SigningKey([redacted])");
    }
}
