//! `GET /` (the dashboard, embedded) and `GET /assets/{file}`.
//!
//! The page carries a strict Content-Security-Policy with a fresh nonce per
//! response: scripts and styles load only with that nonce, nothing inline
//! runs, no framing. `?token=` is accepted once: it is moved into the
//! HttpOnly `warden_token` cookie and the browser is sent back to `/`, so the
//! token never stays in the address bar or the history.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::RngCore;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{TOKEN_COOKIE, query_pairs};

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
        return move_token_to_cookie(&state, token);
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

fn move_token_to_cookie(state: &AppState, token: &str) -> Response {
    let secure = if state.config.server.tls.is_some() {
        "; Secure"
    } else {
        ""
    };
    let valid_chars = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if valid_chars && token.len() <= state.config.access_validation.max_token_bytes {
        let cookie = format!("{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}");
        if let Ok(v) = HeaderValue::try_from(cookie) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp
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
