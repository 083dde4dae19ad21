//! The verified claims of an access token: registered claims plus LiveKit's
//! grants under their upstream names, and the role checks the HTTP layer uses.
//! Numeric dates accept integers and floats (as LiveKit's Go parser does),
//! never strings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::grants::{
    AgentGrant, ClaimGrants, InferenceGrant, ObservabilityGrant, SipGrant, VideoGrant,
};

/// Verified claims of an access token (registered claims plus LiveKit's grants).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Claims {
    /// Identity.
    pub sub: String,
    /// API key id.
    pub iss: String,
    /// Expiry, Unix seconds.
    #[serde(deserialize_with = "numeric::required")]
    pub exp: i64,
    /// Not before, Unix seconds.
    #[serde(
        deserialize_with = "numeric::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// Issued at, Unix seconds.
    #[serde(
        deserialize_with = "numeric::optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<i64>,
    /// Token id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Display name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Participant kind.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Kind details.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kind_details: Vec<String>,
    /// Video grant.
    pub video: VideoGrant,
    /// SIP grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip: Option<SipGrant>,
    /// Agent grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentGrant>,
    /// Inference grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceGrant>,
    /// Observability grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observability: Option<ObservabilityGrant>,
    /// Room configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_config: Option<Value>,
    /// Room preset.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub room_preset: String,
    /// Body hash (webhooks).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Participant metadata.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// Participant attributes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

impl Claims {
    /// The grants of these claims (identity = `sub`).
    pub fn grants(&self) -> ClaimGrants {
        ClaimGrants {
            identity: self.sub.clone(),
            name: self.name.clone(),
            kind: self.kind.clone(),
            kind_details: self.kind_details.clone(),
            video: self.video.clone(),
            sip: self.sip.clone(),
            agent: self.agent.clone(),
            inference: self.inference.clone(),
            observability: self.observability.clone(),
            room_config: self.room_config.clone(),
            room_preset: self.room_preset.clone(),
            sha256: self.sha256.clone(),
            metadata: self.metadata.clone(),
            attributes: self.attributes.clone(),
        }
    }
}

/// May watch room `room`: `video.roomList`, or `video.roomAdmin` with `video.room == room`.
pub fn can_watch_room(claims: &Claims, room: &str) -> bool {
    claims.video.can_watch_room(room)
}

/// May watch every room: `video.roomList` without `video.room`.
pub fn can_watch_all(claims: &Claims) -> bool {
    claims.video.can_watch_all()
}

/// Admin routes: `video.roomAdmin` and `video.roomCreate` with no `video.room`.
pub fn is_admin(claims: &Claims) -> bool {
    claims.video.is_admin()
}

/// Numeric dates: integers or floats (LiveKit's Go parser accepts both), never strings.
mod numeric {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        I(i64),
        F(f64),
    }

    fn secs(n: Num) -> i64 {
        match n {
            Num::I(i) => i,
            Num::F(f) => f.floor() as i64,
        }
    }

    pub(super) fn required<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Num::deserialize(d).map(secs)
    }

    pub(super) fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Option::<Num>::deserialize(d).map(|n| n.map(secs))
    }
}
