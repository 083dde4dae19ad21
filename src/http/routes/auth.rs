//! `POST /api/auth/sse-token` (single-use tickets) and the dashboard's
//! session cookie (`/api/auth/session`: sign in, who am I, sign out).

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::clock::rfc3339_ms;
use crate::http::cookie::{self, OverTls};
use crate::http::error::ApiError;
use crate::http::extract::{ClientIp, Subscriber, access_of, claimed_key_id};
use crate::hub::Access;
use crate::token::{self, Claims, TokenPolicy};

/// Issues a 60 s single-use ticket carrying the caller's own rights.
pub async fn ticket(
    State(state): State<AppState>,
    sub: Subscriber,
) -> Result<Json<Value>, ApiError> {
    let (ticket, expires) = state
        .tickets
        .issue(sub.claims, state.clock.now_ms())
        .ok_or_else(|| {
            ApiError::unavailable("too_many_tickets", "too many outstanding tickets", 5)
        })?;
    Ok(Json(
        json!({"token": ticket, "expires_at": rfc3339_ms(expires)}),
    ))
}

/// Sign-in body.
#[derive(Deserialize)]
pub struct SignIn {
    token: String,
}

/// Verifies the pasted token and keeps it in an HttpOnly, SameSite=Strict cookie.
pub async fn session_start(
    State(state): State<AppState>,
    ClientIp(_ip): ClientIp,
    OverTls(secure): OverTls,
    body: Result<Json<SignIn>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|_| {
        ApiError::bad_request("invalid_body", "expected {\"token\": \"<access token>\"}")
    })?;
    let policy = TokenPolicy {
        leeway: state.config.webhooks.leeway,
        max_len: state.config.access_validation.max_token_bytes,
    };
    let now = state.clock.now_ms();
    let claims = token::verify(body.token.trim(), &state.keys, now, &policy)
        .map_err(|_| ApiError::unauthorized(claimed_key_id(&body.token)))?;
    let max_age = claims.exp - now / 1000;
    let mut resp = Json(describe(&claims)).into_response();
    if let Some(v) = cookie::session(body.token.trim(), max_age, secure) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

/// Who the cookie (or bearer token) belongs to and what it may do.
pub async fn session_info(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, _) = req.into_parts();
    let claims = crate::http::extract::authenticate(&state, &parts, false)?;
    Ok(Json(describe(&claims)))
}

/// Clears the cookie.
pub async fn session_end(OverTls(secure): OverTls) -> Response {
    let mut resp = (StatusCode::OK, Json(json!({"status": "signed_out"}))).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, cookie::cleared(secure));
    resp
}

fn describe(claims: &Claims) -> Value {
    let rooms = match access_of(claims) {
        Some(Access::Rooms(r)) => json!(r),
        _ => Value::Null,
    };
    json!({
        "identity": claims.sub,
        "admin": token::is_admin(claims),
        "room_list": claims.grants.video.room_list,
        "rooms": rooms,
        "expires_at": rfc3339_ms(claims.exp.saturating_mul(1000)),
    })
}
