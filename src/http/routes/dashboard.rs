//! `GET /` (the dashboard, embedded), `GET /assets/{file}` and the data of
//! its pictures, `GET /api/security/timeline` (admins).
//!
//! The page carries a strict Content-Security-Policy with a fresh nonce per
//! response: scripts and styles load only with that nonce, nothing inline
//! runs, no framing. `?token=` is accepted once: a token that verifies is
//! moved into the HttpOnly `warden_token` cookie (see [`cookie`]) and the
//! browser is sent back to `/`, so the token never stays in the address bar
//! or the history; one that does not is dropped the same way, without
//! touching the session, and the page says it was refused.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::RngCore;

use axum::http::request::Parts;

use crate::app::AppState;
use crate::audit::Timeline;
use crate::audit::timeline::Connections;
use crate::http::cookie;
use crate::http::error::{ApiError, AuthFailed};
use crate::http::extract::{Admin, claimed_key_id, query_pairs};
use crate::token::{self, TokenPolicy};

const INDEX: &str = include_str!("../../../assets/index.html");

/// Embedded static files: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../../assets/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../../assets/app.css"),
    ),
];

/// The dashboard page.
pub async fn index(State(state): State<AppState>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let query = query_pairs(&parts);
    if let Some((_, token)) = query
        .iter()
        .find(|(k, _)| k == "token" || k == "access_token")
    {
        return move_token_to_cookie(&state, &parts, token);
    }
    let mut nonce = [0u8; 18];
    rand::rng().fill_bytes(&mut nonce);
    let nonce = base64::engine::general_purpose::STANDARD.encode(nonce);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    let mut resp = INDEX.replace("__CSP_NONCE__", &nonce).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::try_from(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// `/?token=`: a token that verifies becomes the session cookie; anything
/// else (garbage, a ticket, an expired or foreign token) leaves the session
/// as it was, counts as a failed authentication, and sends the browser to
/// `/?signin=refused`, where the page says so. Either way the token leaves
/// the address bar.
fn move_token_to_cookie(state: &AppState, parts: &Parts, token: &str) -> Response {
    let policy = TokenPolicy {
        leeway: state.config.webhooks.leeway,
        max_len: state.config.access_validation.max_token_bytes,
    };
    let now = state.clock.now_ms();
    let token = token.trim();
    match token::verify(token, &state.keys, now, &policy) {
        Ok(claims) => {
            let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
            let max_age = claims.exp - now / 1000;
            if let Some(v) = cookie::session(token, max_age, cookie::over_tls(state, parts)) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => {
            let key_id = claimed_key_id(token);
            tracing::info!(reason = %e, key.id = key_id.as_deref().unwrap_or("-"), "dashboard link token refused");
            let mut resp = (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/?signin=refused")],
            )
                .into_response();
            resp.extensions_mut().insert(AuthFailed { key_id });
            resp
        }
    }
}

/// A static asset.
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, ctype, bytes) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(ApiError::not_found)?;
    let mut resp = bytes.to_vec().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// `GET /api/security/timeline`: the last hour per minute (security events
/// by type, accepted webhooks) and the open event-stream connections.
pub async fn timeline(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Timeline>, ApiError> {
    let connections = Connections {
        open: state.admission.open(),
        max: state.admission.max_total(),
    };
    Timeline::build(
        &state.audit,
        state.ingest.minutes(),
        state.clock.now_ms(),
        connections,
    )
    .map(Json)
    .map_err(|e| {
        tracing::warn!(error = %e, "security timeline query failed");
        ApiError::unavailable(
            "storage_unavailable",
            "the audit store could not be read; retry later",
            5,
        )
    })
}
