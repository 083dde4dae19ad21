//! LiveKit access tokens: mint and verify, with LiveKit's exact claim names.
//!
//! (Foundation stub: the claim types. Minting and verification land with the keys issue.)

use serde::{Deserialize, Serialize};

/// LiveKit's `video` grant (exact upstream names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VideoGrant {
    /// May create rooms.
    #[serde(skip_serializing_if = "is_false")]
    pub room_create: bool,
    /// May list rooms.
    #[serde(skip_serializing_if = "is_false")]
    pub room_list: bool,
    /// May administer `room`.
    #[serde(skip_serializing_if = "is_false")]
    pub room_admin: bool,
    /// May join `room`.
    #[serde(skip_serializing_if = "is_false")]
    pub room_join: bool,
    /// The room this grant is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Verified claims of an access token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Identity.
    #[serde(default)]
    pub sub: String,
    /// API key id.
    #[serde(default)]
    pub iss: String,
    /// Expiry, Unix seconds.
    #[serde(default)]
    pub exp: i64,
    /// Video grant.
    #[serde(default)]
    pub video: VideoGrant,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Anything wrong with the token.
    #[error("invalid token")]
    Invalid,
}

/// Verification policy.
#[derive(Clone, Debug)]
pub struct TokenPolicy {
    /// Clock skew tolerated.
    pub leeway: std::time::Duration,
    /// Longest token.
    pub max_len: usize,
}

/// Verifies an access token.
pub fn verify(
    token: &str,
    keys: &crate::keys::KeyRing,
    now_ms: i64,
    policy: &TokenPolicy,
) -> Result<Claims, TokenError> {
    let _ = (token, keys, now_ms, policy);
    Err(TokenError::Invalid)
}

/// May watch `room`.
pub fn can_watch_room(c: &Claims, room: &str) -> bool {
    c.video.room_list || (c.video.room_admin && c.video.room.as_deref() == Some(room))
}

/// May watch every room.
pub fn can_watch_all(c: &Claims) -> bool {
    c.video.room_list && c.video.room.as_deref().is_none_or(str::is_empty)
}

/// Admin.
pub fn is_admin(c: &Claims) -> bool {
    c.video.room_admin && c.video.room_create && c.video.room.as_deref().is_none_or(str::is_empty)
}
