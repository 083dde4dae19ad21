//! The verified claims of an access token: registered claims plus LiveKit's
//! grants under their upstream names, and the role checks the HTTP layer uses.
//! Numeric dates accept integers and floats (as LiveKit's Go parser does),
//! never strings.

use serde::{Deserialize, Serialize};

use super::grants::ClaimGrants;

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
    /// Everything else the token grants, under LiveKit's names (the
    /// identity travels as `sub`; see [`Claims::grants`]).
    #[serde(flatten)]
    pub grants: ClaimGrants,
}

impl Claims {
    /// The grants of these claims, with the identity (`sub`) filled in.
    pub fn grants(&self) -> ClaimGrants {
        ClaimGrants {
            identity: self.sub.clone(),
            ..self.grants.clone()
        }
    }
}

/// May watch room `room`: `video.roomList`, or `video.roomAdmin` with `video.room == room`.
pub fn can_watch_room(claims: &Claims, room: &str) -> bool {
    claims.grants.video.can_watch_room(room)
}

/// May watch every room: `video.roomList` without `video.room`.
pub fn can_watch_all(claims: &Claims) -> bool {
    claims.grants.video.can_watch_all()
}

/// Admin routes: `video.roomAdmin` and `video.roomCreate` with no `video.room`.
pub fn is_admin(claims: &Claims) -> bool {
    claims.grants.video.is_admin()
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
