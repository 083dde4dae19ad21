//! HTTP: the router and its whole layer stack, in one function.
//!
//! Layers, outermost first: panic → JSON 500 (no stack trace reaches a
//! client); then one middleware, [`edge`], that does in order: client address
//! (peer, or through `server.trusted_proxies` only — the unknown client when
//! a trusted proxy names none; forwarding mistakes counted, see
//! `guard/forwarding.rs`); request log (method,
//! matched route, status, duration — never the URI, whose query may carry a
//! token, nor `Authorization`/`Cookie`); common security headers;
//! failed-authentication accounting (every 401 counts towards the client's
//! lockout). `/api/*` additionally passes the guard (blocklist, lockout → 403,
//! per-client rate limit → 429 with RateLimit headers) and, but for the SSE
//! stream, a request timeout; so does `/metrics` from a non-loopback client.
//! The webhook route has its own timeout ([`routes::webhook::receive`]) and
//! its guard policy is ingest's ([`crate::ingest`]: a locked-out source
//! passes only with a verified signature, else 429, because LiveKit drops
//! 4xx and retries 429).
//!
//! Why one middleware and not four: axum applies `Router::layer` to every
//! route, and each `from_fn` layer clones the whole stack beneath it and boxes
//! a future per request, so four nested layers cost more allocations per
//! request than the webhook handler itself (BENCH.md, "Webhook ingest").

pub mod cookie;
pub mod error;
pub mod extract;
pub mod routes;
pub mod serve;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use self::error::{ApiError, AuthFailed};
use self::extract::ClientIp;
use crate::app::AppState;
use crate::guard::Refusal;

/// The event stream's route; plain HTTP/1 requests for it are served by
/// `serve`'s direct path, which recognises them by this path.
pub const EVENTS_PATH: &str = "/api/events";

/// The whole HTTP surface of Warden.
pub fn router(state: AppState) -> Router {
    let timed = Router::new()
        .route("/api/rooms", get(routes::events::rooms))
        .route("/api/auth/sse-token", post(routes::auth::ticket))
        .route(
            "/api/auth/session",
            get(routes::auth::session_info)
                .post(routes::auth::session_start)
                .delete(routes::auth::session_end),
        )
        .route("/api/security/status", get(routes::security::status))
        .route("/api/security/events", get(routes::security::events))
        .route("/api/security/timeline", get(routes::dashboard::timeline))
        .route("/api/security/unblock", post(routes::security::unblock))
        .route("/api/security/ingestion", post(routes::security::ingestion))
        .route("/api/security/health", get(routes::health::detailed))
        .route(
            "/api/security/subjects/export",
            post(routes::subjects::export),
        )
        .route(
            "/api/security/subjects/erase",
            post(routes::subjects::erase),
        )
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_timeout,
        ));
    let api = Router::new()
        .route(EVENTS_PATH, get(routes::events::stream))
        .merge(timed)
        .layer(middleware::from_fn_with_state(state.clone(), guard_api));
    Router::new()
        .merge(api)
        .route("/webhooks/livekit", post(routes::webhook::receive))
        .route("/health", get(routes::health::health))
        .route(
            "/metrics",
            get(routes::metrics::metrics)
                .layer(middleware::from_fn_with_state(state.clone(), guard_remote)),
        )
        .route("/", get(routes::dashboard::index))
        .route("/assets/{file}", get(routes::dashboard::asset))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                tracing::error!("a request handler panicked");
                ApiError::internal().into_response()
            },
        ))
        .with_state(state)
}

/// Every request, in order: resolve the client address (stored as
/// [`ClientIp`]); run the route; count a 401 towards the client's lockout;
/// add the common security headers; log one line.
async fn edge(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let ip = resolve_client_ip(&state, &req);
    req.extensions_mut().insert(ClientIp(ip));
    let method = req.method().clone();
    // A clone of the matched path shares its text (no copy per request).
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    count_auth_failure(&state, ip, &resp);
    security_headers(&state, &mut resp);
    let route = matched.as_ref().map(MatchedPath::as_str);
    state
        .metrics
        .http_request(route, resp.status().as_u16(), start.elapsed());
    log_request(&method, matched.as_ref(), ip, &resp, start);
    resp
}

/// The peer, or the forwarded client when the peer is a trusted proxy (the
/// unknown client when it names none); a forwarding mistake is counted.
fn resolve_client_ip(state: &AppState, req: &Request) -> std::net::IpAddr {
    // Every real connection carries its peer; without one, nobody is vouched for.
    let peer = serve::peer_of(req).map_or(crate::guard::UNKNOWN_CLIENT, |p| p.ip());
    let headers = req.headers();
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    // Only a sign of a proxy: looked up when X-Forwarded-For did not already say so.
    let other = xff.is_empty()
        && (headers.contains_key("x-real-ip") || headers.contains_key(header::FORWARDED));
    let probe = req.uri().path() == "/health";
    let resolved = state.guard.resolve_client(peer, &xff, other, probe);
    if let Some(outcome) = resolved.source.anomaly() {
        state.metrics.client_identity(outcome);
    }
    resolved.ip
}

/// One log line per request: method, matched route, status, duration. Never the URI.
fn log_request(
    method: &axum::http::Method,
    matched: Option<&MatchedPath>,
    ip: std::net::IpAddr,
    resp: &Response,
    start: Instant,
) {
    let route = matched.map_or("-", MatchedPath::as_str);
    let status = resp.status().as_u16();
    let ms = crate::telemetry::rounded_ms(start.elapsed());
    // The webhook route writes its own line (accepted, duplicate, refused
    // and why); dashboard polls, probes, scrapes and assets are DEBUG unless
    // they fail.
    let quiet = route == "/webhooks/livekit"
        || (status < 400
            && matches!(
                route,
                "/health"
                    | "/metrics"
                    | "/assets/{file}"
                    | "/"
                    | "/api/rooms"
                    | "/api/security/status"
                    | "/api/security/health"
                    | "/api/security/events"
                    | "/api/security/timeline"
                    | "/api/auth/sse-token"
            ));
    if quiet {
        tracing::debug!(http.method = %method, http.route = %route, http.status = status, duration_ms = ms, "request");
    } else {
        tracing::info!(http.method = %method, http.route = %route, http.status = status, duration_ms = ms, client.ip = %ip, "request");
    }
}

/// Headers every response carries (HSTS when Warden terminates TLS and enforces it).
fn security_headers(state: &AppState, resp: &mut Response) {
    let h = resp.headers_mut();
    if state.config.server.tls.is_some() && state.config.wss_enforcement.redirect_http_to_https {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// Every 401 counts towards the client's lockout (key id recorded when the credential named one).
fn count_auth_failure(state: &AppState, ip: std::net::IpAddr, resp: &Response) {
    if let Some(failed) = resp.extensions().get::<AuthFailed>() {
        state
            .guard
            .record_auth_failure(ip, failed.key_id.as_deref(), None);
    }
}

/// The guard in front of `/api/*`: blocklist, lockout, per-client rate limit.
async fn guard_api(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(ClientIp(ip)) = req.extensions().get::<ClientIp>().copied() else {
        return ApiError::internal().into_response();
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", |m| m.as_str())
        .to_owned();
    let allowed = match state.guard.check_api(ip) {
        Ok(a) => a,
        Err(r)
            if r.kind == crate::guard::RefusalKind::LockedOut
                && extract::bears_admin_token(&state, req.headers()) =>
        {
            match state.guard.check_api_past_lockout(ip) {
                Ok(a) => a,
                Err(r) => return refused(&state, &route, r),
            }
        }
        Err(r) => return refused(&state, &route, r),
    };
    let start = Instant::now();
    let mut resp = next.run(req).await;
    state.guard.record_api_usage(&route, ip, start.elapsed());
    if let Some(rate) = &allowed.rate {
        for (name, value) in error::rate_limit_headers(rate) {
            if let Ok(v) = HeaderValue::try_from(value) {
                resp.headers_mut().insert(name, v);
            }
        }
    }
    resp
}

/// A refusal by the guard in front of `/api/*`; one of the SSE stream also
/// counts as an SSE refusal.
fn refused(state: &AppState, route: &str, r: Refusal) -> Response {
    if route == "/api/events" {
        state.metrics.sse_refusal(r.kind.code());
    }
    ApiError::from(r).into_response()
}

/// `/metrics`: the local scraper (a loopback client) passes; any other
/// client goes through the same guard as `/api/*` before its token is checked.
async fn guard_remote(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match req.extensions().get::<ClientIp>() {
        Some(ClientIp(ip)) if ip.is_loopback() => next.run(req).await,
        _ => guard_api(State(state), req, next).await,
    }
}

/// Bounds a non-streaming request (slow bodies included).
async fn request_timeout(State(state): State<AppState>, req: Request, next: Next) -> Response {
    within_request_timeout(&state, next.run(req)).await
}

/// `response`, or 408 once `server.request_timeout` has passed.
pub async fn within_request_timeout(
    state: &AppState,
    response: impl std::future::Future<Output = Response>,
) -> Response {
    match tokio::time::timeout(state.config.server.request_timeout, response).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request took too long",
        )
        .into_response(),
    }
}
