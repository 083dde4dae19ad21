//! The dashboard's session cookie (`warden_token`): HttpOnly,
//! SameSite=Strict, `Path=/`, and `Secure` whenever the client reached
//! Warden over TLS, which Warden knows when it terminates TLS itself, when
//! `server.public_url` is https (the public address is TLS, whatever hop
//! Warden sees), or when a trusted proxy says so with `X-Forwarded-Proto:
//! https` (from anyone else the header is ignored, like `X-Forwarded-For`).

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderValue;
use axum::http::request::Parts;

use super::error::ApiError;
use super::extract::TOKEN_COOKIE;
use crate::app::AppState;

/// Whether the request came over TLS (as far as Warden can tell; see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverTls(pub bool);

impl FromRequestParts<AppState> for OverTls {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(over_tls(state, parts)))
    }
}

/// See [`OverTls`].
pub fn over_tls(state: &AppState, parts: &Parts) -> bool {
    let server = &state.config.server;
    if server.tls.is_some()
        || server.public_url.as_deref().is_some_and(|u| {
            u.get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        })
    {
        return true;
    }
    let from_proxy = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .is_some_and(|c| crate::guard::client::is_in(c.0.ip(), &server.trusted_proxies));
    from_proxy
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            // The proxy facing the client writes the leftmost value.
            .and_then(|v| v.split(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The cookie holding `token` for `max_age_secs`.
pub fn session(token: &str, max_age_secs: i64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let cookie = format!(
        "{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        max_age_secs.max(0)
    );
    HeaderValue::try_from(cookie).ok()
}

/// The cookie that clears the session.
pub fn cleared(secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::try_from(format!(
        "{TOKEN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"
    ))
    .expect("a fixed ASCII cookie is a valid header value")
}
