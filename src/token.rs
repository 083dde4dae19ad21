//! LiveKit access tokens: mint and verify, with LiveKit's exact claim names.
//!
//! Verification order, cheapest and least trusting first: length cap (before
//! any decoding), structure, `alg` (HS256 only: `none`, HS384/512 and every
//! asymmetric algorithm are refused, so no key-confusion attack applies),
//! claim presence and types (`iss` a string, `exp` a number, `nbf` a number
//! when present), key lookup (`iss` must be an active key or a retiring one
//! inside its overlap), the HMAC signature (`token/jws.rs`, constant time), and
//! last `exp`/`nbf` against the caller's clock with the leeway — so a forged
//! token is always "bad signature", never "expired". Errors never contain the
//! token.

mod claims;
pub mod grants;
pub mod jws;
pub mod tickets;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::{Map, Value};

pub use self::claims::{Claims, can_watch_all, can_watch_room, is_admin};
pub use self::grants::{
    AgentGrant, ClaimGrants, Denied, InferenceGrant, ObservabilityGrant, SipGrant, UnknownGrant,
    VIDEO_GRANT_NAMES, VideoGrant, validate_access_rights,
};
pub use self::tickets::Tickets;
use crate::keys::{KeyError, KeyRing};

/// Lifetime of a minted token when none is given (LiveKit's default).
pub const DEFAULT_TTL: Duration = Duration::from_secs(6 * 3600);

/// How tokens are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Longest token accepted, bytes (checked before decoding).
    pub max_len: usize,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            leeway: Duration::from_secs(60),
            max_len: 8192,
        }
    }
}

impl TokenPolicy {
    /// The policy of a configuration (`webhooks.leeway_seconds`, `access_validation.max_token_bytes`).
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        Self {
            leeway: cfg.webhooks.leeway,
            max_len: cfg.access_validation.max_token_bytes,
        }
    }
}

/// Why a token was refused. The `Display` never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Longer than the policy allows.
    #[error("token too long ({len} bytes, at most {max})")]
    TooLong {
        /// Its length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not a well-formed JWT.
    #[error("malformed token: {0}")]
    Malformed(#[from] StructureError),
    /// Signed with another algorithm than HS256.
    #[error("token algorithm {alg} is not accepted (HS256 only)")]
    Algorithm {
        /// The header's `alg` (sanitised).
        alg: String,
    },
    /// A required claim is absent.
    #[error("token has no {claim} claim")]
    MissingClaim {
        /// The claim.
        claim: &'static str,
    },
    /// A claim of the wrong type (e.g. a string `exp`).
    #[error("token claim {claim} must be a {expected}")]
    ClaimType {
        /// The claim.
        claim: &'static str,
        /// The type it must have.
        expected: &'static str,
    },
    /// `iss` is not an active key (or a retiring one inside its overlap).
    #[error("token issuer {key_id} is not a known, unrevoked API key")]
    UnknownKey {
        /// The issuer (sanitised).
        key_id: String,
    },
    /// The signature does not match.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is past (beyond the leeway).
    #[error("token expired at {exp}")]
    Expired {
        /// The `exp` claim, Unix seconds.
        exp: i64,
    },
    /// `nbf` is ahead (beyond the leeway).
    #[error("token not valid before {nbf}")]
    NotYetValid {
        /// The `nbf` claim, Unix seconds.
        nbf: i64,
    },
    /// No key to sign with.
    #[error("no active API key to sign with")]
    NoSigningKey,
    /// The grants cannot be minted as given.
    #[error("cannot mint: {0}")]
    InvalidGrants(&'static str),
    /// The minted token's expiry could not be recorded, so it is not issued.
    #[error("cannot record the token's expiry: {0}")]
    Record(#[source] KeyError),
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

/// What is structurally wrong with a JWT.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StructureError {
    /// Empty input.
    #[error("empty token")]
    Empty,
    /// Not three dot-separated segments.
    #[error("a JWT has 3 dot-separated segments, found {found}")]
    Segments {
        /// Segments found.
        found: usize,
    },
    /// A segment is empty (an empty signature is `alg: none`).
    #[error("the {segment} segment is empty")]
    EmptySegment {
        /// `header`, `payload` or `signature`.
        segment: &'static str,
    },
    /// A segment is not unpadded base64url.
    #[error("the {segment} segment is not base64url")]
    Base64 {
        /// Which.
        segment: &'static str,
    },
    /// The header or payload is not a JSON object.
    #[error("the {segment} is not a JSON object")]
    NotJsonObject {
        /// Which.
        segment: &'static str,
    },
    /// The header has no string `alg`.
    #[error("the header has no alg")]
    MissingAlg,
}

type JsonObject = Map<String, Value>;

const SEGMENTS: [&str; 3] = ["header", "payload", "signature"];

/// Decodes header and payload without checking the signature.
fn parse_unverified(token: &str) -> Result<(JsonObject, JsonObject), StructureError> {
    if token.is_empty() {
        return Err(StructureError::Empty);
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(StructureError::Segments { found: parts.len() });
    }
    let mut decoded = Vec::with_capacity(2);
    for (part, segment) in parts.iter().zip(SEGMENTS) {
        if part.is_empty() {
            return Err(StructureError::EmptySegment { segment });
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| StructureError::Base64 { segment })?;
        if segment != "signature" {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => decoded.push(map),
                _ => return Err(StructureError::NotJsonObject { segment }),
            }
        }
    }
    let payload = decoded.pop().expect("two JSON segments were decoded");
    let header = decoded.pop().expect("two JSON segments were decoded");
    if !header.get("alg").is_some_and(Value::is_string) {
        return Err(StructureError::MissingAlg);
    }
    Ok((header, payload))
}

/// A quick structural check: three base64url segments, JSON header and payload, an `alg`.
pub fn validate_jwt_token_structure(token: &str) -> Result<(), StructureError> {
    parse_unverified(token).map(|_| ())
}

/// Attacker-controlled text safe to put in an error: short and plain, else a placeholder.
fn sanitise(s: &str) -> String {
    let plain = s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
    if plain {
        s.to_owned()
    } else {
        "<invalid>".to_owned()
    }
}

fn numeric_claim(
    payload: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<f64>, TokenError> {
    match payload.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(TokenError::ClaimType {
            claim,
            expected: "number",
        }),
        Some(_) => Err(TokenError::ClaimType {
            claim,
            expected: "number",
        }),
    }
}

fn secs_to_ms(secs: f64) -> i64 {
    // Saturating float-to-int conversion: absurd values clamp instead of wrapping.
    (secs * 1000.0) as i64
}

/// Verifies an access token at `now_ms` against `keys` (see the module doc for the order).
pub fn verify(
    token: &str,
    keys: &KeyRing,
    now_ms: i64,
    policy: &TokenPolicy,
) -> Result<Claims, TokenError> {
    if token.len() > policy.max_len {
        return Err(TokenError::TooLong {
            len: token.len(),
            max: policy.max_len,
        });
    }
    let (header, payload) = parse_unverified(token)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if alg != "HS256" {
        return Err(TokenError::Algorithm { alg: sanitise(alg) });
    }
    let iss = match payload.get("iss") {
        None | Some(Value::Null) => return Err(TokenError::MissingClaim { claim: "iss" }),
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        Some(Value::String(_)) => return Err(TokenError::MissingClaim { claim: "iss" }),
        Some(_) => {
            return Err(TokenError::ClaimType {
                claim: "iss",
                expected: "string",
            });
        }
    };
    let exp = numeric_claim(&payload, "exp")?.ok_or(TokenError::MissingClaim { claim: "exp" })?;
    let nbf = numeric_claim(&payload, "nbf")?;
    let secret = keys
        .verifying_secret(iss, now_ms)
        .ok_or_else(|| TokenError::UnknownKey {
            key_id: sanitise(iss),
        })?;
    // Presence and time are checked here against the caller's clock; the
    // signature over the received `header.payload` bytes first.
    let (signed, signature) = token
        .rsplit_once('.')
        .ok_or(StructureError::Segments { found: 1 })?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| StructureError::Base64 {
            segment: "signature",
        })?;
    if !jws::hs256_verifies(signed.as_bytes(), &signature, secret.expose().as_bytes()) {
        return Err(TokenError::BadSignature);
    }
    let claims: Claims = serde_json::from_value(Value::Object(payload))
        .map_err(|_| StructureError::NotJsonObject { segment: "payload" })?;
    let leeway = i64::try_from(policy.leeway.as_millis()).unwrap_or(i64::MAX);
    if now_ms >= secs_to_ms(exp).saturating_add(leeway) {
        return Err(TokenError::Expired { exp: claims.exp });
    }
    if let Some(nbf) = nbf.filter(|n| now_ms < secs_to_ms(*n).saturating_sub(leeway)) {
        return Err(TokenError::NotYetValid { nbf: nbf as i64 });
    }
    Ok(claims)
}

/// What goes on the wire when minting.
#[derive(Serialize)]
struct MintClaims<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    sub: &'a str,
    nbf: i64,
    exp: i64,
    #[serde(flatten)]
    grants: &'a ClaimGrants,
}

/// Mints an access token with the ring's signing key, valid from `now_ms` for
/// `ttl` (default [`DEFAULT_TTL`]). The token's `exp` is recorded against the
/// key first, so a rotation keeps the key verifying until the token expires.
pub fn mint(
    keys: &KeyRing,
    grants: &ClaimGrants,
    ttl: Option<Duration>,
    now_ms: i64,
) -> Result<String, TokenError> {
    let (key_id, secret) = keys.signing_key().ok_or(TokenError::NoSigningKey)?;
    if grants.video.room_join && grants.identity.is_empty() {
        return Err(TokenError::InvalidGrants("roomJoin needs an identity"));
    }
    let ttl = i64::try_from(ttl.unwrap_or(DEFAULT_TTL).as_secs()).unwrap_or(i64::MAX);
    if ttl <= 0 {
        return Err(TokenError::InvalidGrants(
            "the lifetime must be at least one second",
        ));
    }
    let nbf = now_ms.div_euclid(1000);
    let exp = nbf.saturating_add(ttl);
    keys.record_minted_exp(&key_id, exp.saturating_mul(1000), now_ms)
        .map_err(TokenError::Record)?;
    let claims = MintClaims {
        iss: &key_id,
        sub: &grants.identity,
        nbf,
        exp,
        grants,
    };
    jws::sign_hs256(&claims, secret.expose().as_bytes()).map_err(|_| TokenError::Sign)
}

/// Longest lifetime of [`mint_service`] tokens: no longer than the shortest
/// allowed rotation overlap (1 minute), so they never need recording.
pub const SERVICE_TOKEN_TTL_SECS: i64 = 60;

/// A short-lived token for Warden's own outgoing calls (the LiveKit API, the
/// `warden status` CLI) with exactly the `video` grants given. Unlike
/// [`mint`] it writes nothing: it cannot outlive a retiring key's overlap.
pub fn mint_service(
    keys: &KeyRing,
    identity: &str,
    video: serde_json::Value,
    now_ms: i64,
) -> Result<String, TokenError> {
    let (key_id, secret) = keys.signing_key().ok_or(TokenError::NoSigningKey)?;
    let now = now_ms.div_euclid(1000);
    let claims = serde_json::json!({
        "iss": key_id, "sub": identity, "nbf": now, "exp": now + SERVICE_TOKEN_TTL_SECS, "video": video,
    });
    jws::sign_hs256(&claims, secret.expose().as_bytes()).map_err(|_| TokenError::Sign)
}

/// The `iss` a token claims, read without verifying (for accounting only).
pub fn claimed_key_id(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    if payload.len() > 8192 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let iss = v.get("iss")?.as_str()?;
    (iss.len() <= 64).then(|| iss.to_owned())
}

#[cfg(test)]
mod tests;
