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
    let body = format!(
        "# HELP warden_sse_connections Open SSE connections.\n# TYPE warden_sse_connections gauge\nwarden_sse_connections {}\n",
        state.admission.open()
    );
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}
