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
