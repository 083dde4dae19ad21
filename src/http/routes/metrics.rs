//! `GET /metrics`: Prometheus text for an admin, or a client whose real
//! address (after trusted proxies) is loopback.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Admin, ClientIp};

/// Renders the metrics.
pub async fn metrics(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Result<Response, ApiError> {
    if !ip.is_loopback() {
        let (mut parts, _) = req.into_parts();
        Admin::from_request_parts(&mut parts, &state).await?;
    }
    let (hub, guard) = (state.hub.stats(), state.guard.stats());
    state.metrics.sync_totals([
        hub.delivered_frames,
        hub.slow_consumer_cuts,
        hub.resets,
        guard.lockouts_total,
        guard.rate_limited_total,
        hub.history_commits,
        hub.history_stored,
    ]);
    let mut resp = state.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(resp)
}
