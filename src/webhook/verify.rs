//! The LiveKit webhook signature: checked on the raw body bytes, before any parsing.
//!
//! As livekit/protocol `webhook/verifier.go` checks it, with two deliberate
//! differences: the clock skew tolerance is ours (`webhooks.leeway_seconds`,
//! applied to both `exp` and `nbf`, from a [`Clock`](crate::clock::Clock) so it
//! is testable), and a missing `exp` is refused (a token without one would
//! verify forever). The `Authorization` header holds a bare HS256 JWT (a
//! `Bearer ` prefix is tolerated); its `iss` names the key; its `sha256` claim
//! is the standard, padded base64 of SHA-256 over the exact body bytes,
//! compared in constant time. Nothing here ever puts the token or a secret
//! into an error.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::keys::KeyRing;

/// Longest `Authorization` value looked at; LiveKit's are ~250 bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// LiveKit's webhook signature lifetime.
pub const LIVEKIT_TTL_SECS: i64 = 300;

/// Why a signature was refused (for the audit log; clients only see "invalid signature").
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Authorization` header, or an empty one.
    #[error("no signature")]
    Missing,
    /// More than one `Authorization` header: ambiguous, so refused.
    #[error("more than one Authorization header")]
    MultipleHeaders,
    /// The header is longer than [`MAX_TOKEN_BYTES`].
    #[error("signature too long")]
    TooLong,
    /// Not a JWT.
    #[error("malformed token")]
    Malformed,
    /// A JWT with another algorithm than HS256 (`none`, HS384, RS256, …).
    #[error("algorithm not allowed")]
    Algorithm,
    /// `iss` missing, unknown, revoked, past its overlap, or with an empty secret.
    #[error("unknown key")]
    UnknownKey,
    /// The HMAC does not match.
    #[error("bad signature")]
    BadSignature,
    /// No `exp` claim.
    #[error("missing exp")]
    MissingExp,
    /// `exp` is further in the past than the leeway.
    #[error("expired")]
    Expired,
    /// `nbf` is further in the future than the leeway.
    #[error("not yet valid")]
    NotYetValid,
    /// No `sha256` claim.
    #[error("missing sha256 claim")]
    MissingChecksum,
    /// The `sha256` claim is not the body's standard padded base64 SHA-256.
    #[error("body checksum mismatch")]
    ChecksumMismatch,
}

impl SignatureError {
    /// Stable snake_case name for audit details.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::MultipleHeaders => "multiple_headers",
            Self::TooLong => "too_long",
            Self::Malformed => "malformed",
            Self::Algorithm => "algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::MissingExp => "missing_exp",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingChecksum => "missing_sha256",
            Self::ChecksumMismatch => "sha256_mismatch",
        }
    }
}

/// A refusal and the key id the token claimed, when it could be read (unverified; for the audit log).
#[derive(Debug)]
pub struct Refusal {
    /// Why.
    pub error: SignatureError,
    /// The `iss` claim, sanitised, when present.
    pub claimed_key: Option<String>,
}

/// The claims of a LiveKit webhook token that Warden reads.
#[derive(Debug, Serialize, Deserialize)]
pub struct WebhookClaims {
    /// API key id.
    pub iss: String,
    /// Expiry, Unix seconds (required; optional here so its absence gets its own reason).
    #[serde(default)]
    pub exp: Option<i64>,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Standard padded base64 of SHA-256(body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The `sha256` claim value for `body`: standard, padded base64 of its SHA-256.
pub fn body_checksum(body: &[u8]) -> String {
    STANDARD.encode(Sha256::digest(body))
}

/// Signs `body` exactly as livekit-server does (HS256, `iss`, `nbf = iat = now`, `exp = now + 5 min`, `sha256`).
pub fn sign_as_livekit(
    body: &[u8],
    key_id: &str,
    secret: &str,
    now_secs: i64,
) -> Result<String, serde_json::Error> {
    let claims = WebhookClaims {
        iss: key_id.to_owned(),
        exp: Some(now_secs + LIVEKIT_TTL_SECS),
        nbf: Some(now_secs),
        iat: Some(now_secs),
        sha256: Some(body_checksum(body)),
    };
    crate::token::jws::sign_hs256(&claims, secret.as_bytes())
}

/// A delivery whose signature holds.
#[derive(Debug)]
pub struct Verified {
    /// The key that verified it.
    pub key_id: String,
    /// SHA-256 of the body (computed once for the `sha256` claim; reused for replay detection).
    pub body_sha256: [u8; 32],
}

/// Verifies the `Authorization` values against `body`.
///
/// The token is split and each part decoded once: the header's `alg` must be
/// `HS256`; the unverified `iss` picks the secret; the HMAC-SHA256 over
/// `header.payload` is checked in constant time (by `hmac`'s `verify_slice`)
/// before any claim is trusted; then the claims, their times, and the body
/// checksum. Refusal reasons are those jsonwebtoken gave (a test pins each).
pub fn verify<A: AsRef<[u8]>>(
    authorization: &[A],
    body: &[u8],
    keys: &KeyRing,
    now_ms: i64,
    leeway_ms: i64,
) -> Result<Verified, Refusal> {
    let refuse = |error, claimed_key: Option<&str>| Refusal {
        error,
        claimed_key: claimed_key.map(clean_key_id),
    };
    let token = bare_token(authorization).map_err(|e| refuse(e, None))?;
    let jwt = Jwt::parse(token).map_err(|e| refuse(e, None))?;
    let iss = jwt.issuer().map_err(|e| refuse(e, None))?;
    let iss = iss
        .as_deref()
        .ok_or_else(|| refuse(SignatureError::UnknownKey, None))?;
    let secret = keys
        .verifying_secret(iss, now_ms)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| refuse(SignatureError::UnknownKey, Some(iss)))?;
    let claims = jwt
        .verified_claims(secret.expose().as_bytes())
        .map_err(|e| refuse(e, Some(iss)))?;
    check_times(&claims, now_ms, leeway_ms).map_err(|e| refuse(e, Some(iss)))?;
    let claimed = claims
        .sha256
        .as_deref()
        .ok_or_else(|| refuse(SignatureError::MissingChecksum, Some(iss)))?;
    let body_sha256: [u8; 32] = Sha256::digest(body).into();
    let expected = STANDARD.encode(body_sha256);
    if !bool::from(claimed.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(refuse(SignatureError::ChecksumMismatch, Some(iss)));
    }
    Ok(Verified {
        key_id: claims.iss,
        body_sha256,
    })
}

/// The single header's token, `Bearer ` stripped.
fn bare_token<A: AsRef<[u8]>>(authorization: &[A]) -> Result<&str, SignatureError> {
    let raw = match authorization {
        [] => return Err(SignatureError::Missing),
        [one] => one.as_ref(),
        _ => return Err(SignatureError::MultipleHeaders),
    };
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(SignatureError::TooLong);
    }
    let text = std::str::from_utf8(raw)
        .map_err(|_| SignatureError::Malformed)?
        .trim();
    let token = match text.get(..6) {
        Some(p)
            if p.eq_ignore_ascii_case("bearer")
                && text[6..].chars().next().is_none_or(char::is_whitespace) =>
        {
            text[6..].trim_start()
        }
        _ => text,
    };
    if token.is_empty() {
        return Err(SignatureError::Missing);
    }
    Ok(token)
}

#[derive(Deserialize)]
struct JwtHeader<'a> {
    #[serde(borrow, default)]
    alg: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PeekClaims {
    iss: Option<serde_json::Value>,
}

/// A compact JWS with an HS256 header, its payload decoded but not yet trusted.
struct Jwt<'a> {
    /// `header.payload`, the signed bytes.
    signed: &'a str,
    /// The decoded payload (JSON, unverified).
    payload: Vec<u8>,
    /// The payload part ended in `=` (malformed, reported after the HMAC).
    padded: bool,
    /// The base64url signature.
    signature: &'a str,
}

impl<'a> Jwt<'a> {
    /// Three base64url (unpadded) parts; the header must say `"alg":"HS256"`.
    fn parse(token: &'a str) -> Result<Self, SignatureError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SignatureError::Malformed);
        };
        let header_json = b64(h)?;
        let header: JwtHeader<'_> =
            serde_json::from_slice(&header_json).map_err(|_| SignatureError::Malformed)?;
        if header.alg.as_deref() != Some("HS256") {
            return Err(SignatureError::Algorithm);
        }
        // `iss` is read before the signature is checked, from the payload
        // without any padding; the padding (never valid in a JWS) is refused
        // after the HMAC, as jsonwebtoken did: over the received bytes the
        // HMAC usually fails first.
        let unpadded = p.trim_end_matches('=');
        Ok(Self {
            signed: &token[..h.len() + 1 + p.len()],
            payload: b64(unpadded)?,
            padded: unpadded.len() != p.len(),
            signature,
        })
    }

    /// The unverified `iss` (only to pick the key; `None` unless a non-empty string).
    fn issuer(&self) -> Result<Option<String>, SignatureError> {
        let claims: PeekClaims =
            serde_json::from_slice(&self.payload).map_err(|_| SignatureError::Malformed)?;
        Ok(match claims.iss {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        })
    }

    /// Checks the HMAC with `secret`, then reads the claims (`exp` required,
    /// as a non-negative integer; times are checked by [`check_times`]).
    fn verified_claims(&self, secret: &[u8]) -> Result<WebhookClaims, SignatureError> {
        let signature = b64(self.signature)?;
        if !crate::token::jws::hs256_verifies(self.signed.as_bytes(), &signature, secret) {
            return Err(SignatureError::BadSignature);
        }
        if self.padded {
            return Err(SignatureError::Malformed);
        }
        let claims: WebhookClaims =
            serde_json::from_slice(&self.payload).map_err(|_| SignatureError::Malformed)?;
        if claims.exp.is_none_or(|exp| exp < 0) {
            return Err(SignatureError::MissingExp);
        }
        Ok(claims)
    }
}

/// Strict unpadded base64url, as JWS requires.
fn b64(part: &str) -> Result<Vec<u8>, SignatureError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| SignatureError::Malformed)
}

/// `exp` and `nbf` against `now`, each with `leeway` (boundaries inclusive).
fn check_times(claims: &WebhookClaims, now_ms: i64, leeway_ms: i64) -> Result<(), SignatureError> {
    let exp = claims.exp.ok_or(SignatureError::MissingExp)?;
    if now_ms > exp.saturating_mul(1000).saturating_add(leeway_ms) {
        return Err(SignatureError::Expired);
    }
    if let Some(nbf) = claims.nbf
        && now_ms < nbf.saturating_mul(1000).saturating_sub(leeway_ms)
    {
        return Err(SignatureError::NotYetValid);
    }
    Ok(())
}

/// An unverified key id, made safe for the audit log.
fn clean_key_id(s: &str) -> String {
    super::sanitize::text(s, super::sanitize::MAX_ID_CHARS)
}
