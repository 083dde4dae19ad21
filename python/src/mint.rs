//! Minting access tokens for `warden.AccessToken`: `warden::token::mint`,
//! with grants given as LiveKit's JSON claim names (`video`, `name`,
//! `metadata`, `attributes`, `kind`, `sha256`, …).

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use warden::clock::Clock;
use warden::keys::KeyRing;
use warden::redact::{Masker, Secret};
use warden::token::{self, ClaimGrants};

use crate::{TokenError, guarded};

/// A token for `identity` with `grants_json` (LiveKit claim names), signed by
/// the ring's signing key, valid for `ttl_secs` (LiveKit's 6 h by default).
pub(crate) fn mint(
    keys: &KeyRing,
    masker: &Masker,
    identity: &str,
    grants_json: &str,
    ttl_secs: Option<u64>,
) -> PyResult<String> {
    let mut grants: ClaimGrants = serde_json::from_str(grants_json)
        .map_err(|e| PyValueError::new_err(format!("grants are not LiveKit claim grants: {e}")))?;
    grants.identity = identity.to_owned();
    let ttl = ttl_secs.map(Duration::from_secs);
    token::mint(keys, &grants, ttl, Clock::system().now_ms())
        .map_err(|e| TokenError::new_err(masker.mask(&e.to_string()).into_owned()))
}

/// Mints with an explicit API key and secret (as `livekit.api.AccessToken` does).
#[pyfunction]
#[pyo3(signature = (api_key, api_secret, identity, grants_json, ttl_secs=None))]
pub(crate) fn mint_with_key(
    api_key: &str,
    api_secret: &str,
    identity: &str,
    grants_json: &str,
    ttl_secs: Option<u64>,
) -> PyResult<String> {
    guarded(|| {
        if api_key.is_empty() || api_secret.is_empty() {
            return Err(PyValueError::new_err(
                "api_key and api_secret must not be empty",
            ));
        }
        let secret = Secret::new(api_secret);
        let masker = Masker::new();
        masker.set_known_secrets([&secret]);
        let keys = KeyRing::from_keys([(api_key.to_owned(), secret)]);
        mint(&keys, &masker, identity, grants_json, ttl_secs)
    })
}
