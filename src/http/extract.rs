//! Extractors: the client's address, and who is calling with what rights.
//!
//! [`Subscriber`] and [`Admin`] are the Rust form of the original
//! `@security_required([...])` decorator: a handler that takes one cannot run
//! unless the caller presented a valid LiveKit access token with the grants
//! the role needs. A credential is looked for in `Authorization: Bearer`,
//! the `warden_token` cookie, then `?token=` / `?access_token=` (a `wt_…`
//! single-use ticket is accepted there, on `/api/events` only). Every failure
//! is the same 401 to the client; a denial (valid token, missing grant) is a
//! 403 recorded as `UNAUTHORIZED_ACCESS`.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::error::ApiError;
use crate::app::AppState;
use crate::audit::{EventType, NewEvent, Severity};
use crate::hub::Access;
use crate::token::tickets::TICKET_PREFIX;
use crate::token::{self, Claims, TokenPolicy};

/// The cookie the dashboard keeps the access token in (HttpOnly, SameSite=Strict).
pub const TOKEN_COOKIE: &str = "warden_token";

/// The client's address (after trusted proxies), set by the client-IP layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .ok_or_else(ApiError::internal)
    }
}

/// Where a credential was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `Authorization: Bearer`.
    Header,
    /// The `warden_token` cookie.
    Cookie,
    /// `?token=` or `?access_token=`.
    Query,
}

/// A credential as presented (not yet verified).
pub struct Credential {
    /// The token or ticket.
    pub value: String,
    /// Where it came from.
    pub via: Via,
}

/// Decoded query pairs.
pub fn query_pairs(parts: &Parts) -> Vec<(String, String)> {
    parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Finds the caller's credential (see module docs for the order).
pub fn credential(headers: &HeaderMap, query: &[(String, String)]) -> Option<Credential> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let token = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim();
        if !token.is_empty() {
            return Some(Credential {
                value: token.to_owned(),
                via: Via::Header,
            });
        }
    }
    for cookie in headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
    {
        for pair in cookie.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == TOKEN_COOKIE
                && !v.is_empty()
            {
                return Some(Credential {
                    value: v.to_owned(),
                    via: Via::Cookie,
                });
            }
        }
    }
    query
        .iter()
        .find(|(k, v)| (k == "token" || k == "access_token") && !v.is_empty())
        .map(|(_, v)| Credential {
            value: v.clone(),
            via: Via::Query,
        })
}

pub use crate::token::claimed_key_id;

/// Verifies the caller's credential. Tickets are accepted only when `allow_ticket`.
pub fn authenticate(
    state: &AppState,
    parts: &Parts,
    allow_ticket: bool,
) -> Result<Claims, ApiError> {
    let query = query_pairs(parts);
    let cred = credential(&parts.headers, &query).ok_or_else(ApiError::unauthenticated)?;
    let now = state.clock.now_ms();
    if cred.value.starts_with(TICKET_PREFIX) {
        if !(allow_ticket && cred.via == Via::Query) {
            return Err(ApiError::unauthorized(None));
        }
        let claims = state
            .tickets
            .redeem(&cred.value, now)
            .ok_or_else(|| ApiError::unauthorized(None))?;
        // The ticket carries its token's claims: its key must still verify.
        if claims.exp.saturating_mul(1000) <= now
            || state.keys.verifying_secret(&claims.iss, now).is_none()
        {
            return Err(ApiError::unauthorized(Some(claims.iss)));
        }
        return Ok(claims);
    }
    let policy = TokenPolicy {
        leeway: state.config.webhooks.leeway,
        max_len: state.config.access_validation.max_token_bytes,
    };
    let claims = token::verify(&cred.value, &state.keys, now, &policy).map_err(|e| {
        let key = claimed_key_id(&cred.value);
        tracing::info!(reason = %e, key.id = key.as_deref().unwrap_or("-"), "access token refused");
        ApiError::unauthorized(key)
    })?;
    if let Some(ip) = parts.extensions.get::<ClientIp>() {
        state.guard.record_auth_success(ip.0, Some(&claims.iss));
    }
    Ok(claims)
}

/// Whether `Authorization: Bearer` holds an access token that verifies now
/// with the admin grants (nothing is recorded: see `Guard::check_api_past_lockout`).
pub fn bears_admin_token(state: &AppState, headers: &axum::http::HeaderMap) -> bool {
    let Some(token) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let policy = TokenPolicy {
        leeway: state.config.webhooks.leeway,
        max_len: state.config.access_validation.max_token_bytes,
    };
    token::verify(token.trim(), &state.keys, state.clock.now_ms(), &policy)
        .is_ok_and(|claims| token::is_admin(&claims))
}

/// Records a 403 as `UNAUTHORIZED_ACCESS` (when configured) and returns it.
pub fn deny(state: &AppState, parts: &Parts, claims: &Claims, why: &str) -> ApiError {
    if state.config.access_validation.log_access_attempts {
        let mut ev = NewEvent::new(EventType::UnauthorizedAccess, Severity::Medium)
            .key(claims.iss.clone())
            .identity(state.pepper.hash_identity(&claims.sub))
            .detail("route", route_of(parts))
            .detail("reason", why);
        if let Some(ip) = parts.extensions.get::<ClientIp>() {
            ev = ev.ip(ip.0);
        }
        state.audit.record(ev);
    }
    ApiError::forbidden(why.to_owned())
}

fn route_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "-".to_owned(), |m| m.as_str().to_owned())
}

/// A caller who may watch rooms: which ones is in `access`.
pub struct Subscriber {
    /// Verified claims.
    pub claims: Claims,
    /// What the token may watch.
    pub access: Access,
}

/// What a verified token may watch, or `None`.
pub fn access_of(claims: &Claims) -> Option<Access> {
    if token::can_watch_all(claims) {
        return Some(Access::All);
    }
    let room = claims
        .grants
        .video
        .room
        .as_deref()
        .filter(|r| !r.is_empty())?;
    token::can_watch_room(claims, room).then(|| Access::Rooms(vec![room.to_owned()]))
}

impl FromRequestParts<AppState> for Subscriber {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let allow_ticket = parts.uri.path() == "/api/events";
        let claims = authenticate(state, parts, allow_ticket)?;
        match access_of(&claims) {
            Some(access) => Ok(Self { claims, access }),
            None => Err(deny(
                state,
                parts,
                &claims,
                "the token grants no room to watch (roomList, roomAdmin with room, or roomAdmin and roomCreate)",
            )),
        }
    }
}

/// An administrator: `roomAdmin` and `roomCreate` with no room.
pub struct Admin {
    /// Verified claims.
    pub claims: Claims,
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let claims = authenticate(state, parts, false)?;
        if token::is_admin(&claims) {
            Ok(Self { claims })
        } else {
            Err(deny(
                state,
                parts,
                &claims,
                "admin routes need roomAdmin and roomCreate without a room",
            ))
        }
    }
}
