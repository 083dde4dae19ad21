//! HS256 compact JWS: the only JWT algorithm LiveKit uses and Warden accepts.
//!
//! Written here with `hmac` + `sha2` instead of taken from `jsonwebtoken`:
//! that crate's only pure-Rust backend (`rust_crypto`) also pulls in RSA
//! (RUSTSEC-2023-0071, no fixed version), ECDSA and Ed25519 code that Warden
//! never runs, and its other backend needs a C toolchain (aws-lc). What is
//! left is small: base64url segments and one HMAC, compared in constant time
//! by `Mac::verify_slice`. Parsing and claim checks stay with the callers
//! (`token.rs` for access tokens, `webhook/verify.rs` for webhooks), which
//! decode each segment once and refuse every `alg` but `HS256` before this
//! module is asked about the signature.
//!
//! Interoperability is tested against LiveKit's own SDKs (`tests/interop`):
//! their tokens verify here, and these verify there.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

/// The protected header of every token Warden signs (`{"alg":"HS256","typ":"JWT"}`),
/// base64url-encoded once at compile time's cost: it never changes.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Signs `claims` as a compact HS256 JWS with `secret`.
///
/// Fails only if `claims` cannot be serialised as JSON (e.g. a map with
/// non-string keys), never because of the secret: HMAC takes keys of any length.
pub fn sign_hs256<T: Serialize + ?Sized>(
    claims: &T,
    secret: &[u8],
) -> Result<String, serde_json::Error> {
    let payload = serde_json::to_vec(claims)?;
    let mut token = String::with_capacity(HEADER_B64.len() + 1 + payload.len() * 4 / 3 + 48);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let tag = mac(secret, token.as_bytes()).finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    Ok(token)
}

/// True when `signature` (decoded bytes) is the HMAC-SHA256 of `signed`
/// (`header.payload`, as received) under `secret`; constant time.
pub fn hs256_verifies(signed: &[u8], signature: &[u8], secret: &[u8]) -> bool {
    mac(secret, signed).verify_slice(signature).is_ok()
}

fn mac(secret: &[u8], data: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of every length");
    mac.update(data);
    mac
}

/// A token signed with the HMAC that `alg` names (`HS256`, `HS384`, `HS512`),
/// for tests that must show the other HMAC algorithms are refused.
#[cfg(test)]
pub(crate) fn hmac_token(alg: &str, claims: &serde_json::Value, secret: &[u8]) -> String {
    fn tag<M: Mac + hmac::digest::KeyInit>(secret: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = <M as Mac>::new_from_slice(secret).expect("any key length");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
    let header = serde_json::json!({"alg": alg, "typ": "JWT"});
    let enc = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"));
    let signed = format!("{}.{}", enc(&header), enc(claims));
    let sig = match alg {
        "HS256" => tag::<Hmac<Sha256>>(secret, signed.as_bytes()),
        "HS384" => tag::<Hmac<sha2::Sha384>>(secret, signed.as_bytes()),
        "HS512" => tag::<Hmac<sha2::Sha512>>(secret, signed.as_bytes()),
        other => panic!("no HMAC for {other}"),
    };
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_header_constant_is_what_it_says() {
        let decoded = URL_SAFE_NO_PAD.decode(HEADER_B64).expect("base64url");
        assert_eq!(decoded, br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    /// RFC 7515 appendix A.1 gives an HS256 example; its key and signing
    /// input reproduce its signature here (our header differs, so the
    /// check is on the raw primitive with the RFC's exact input).
    #[test]
    fn rfc7515_a1_example_verifies_and_a_flipped_bit_does_not() {
        let key = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .expect("key");
        let signed = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let mut sig = URL_SAFE_NO_PAD
            .decode("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
            .expect("sig");
        assert!(hs256_verifies(signed.as_bytes(), &sig, &key));
        sig[0] ^= 1;
        assert!(!hs256_verifies(signed.as_bytes(), &sig, &key));
        assert!(!hs256_verifies(signed.as_bytes(), &sig[..31], &key));
    }

    #[test]
    fn a_signed_token_verifies_under_its_secret_only() {
        let t = sign_hs256(&json!({"iss": "APIk", "exp": 1}), b"s3cret").expect("signs");
        let (signed, sig) = t.rsplit_once('.').expect("three parts");
        let sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url");
        assert!(hs256_verifies(signed.as_bytes(), &sig, b"s3cret"));
        assert!(!hs256_verifies(signed.as_bytes(), &sig, b"s3cret!"));
        let payload = signed.split('.').nth(1).expect("payload");
        let payload = URL_SAFE_NO_PAD.decode(payload).expect("payload");
        let payload: serde_json::Value = serde_json::from_slice(&payload).expect("json");
        assert_eq!(payload, json!({"iss": "APIk", "exp": 1}));
        // The same claims through the test signer (a separate code path) give the same token.
        assert_eq!(hmac_token("HS256", &payload, b"s3cret").len(), t.len());
    }
}
