//! `POST /webhooks/livekit`: the only way events enter Warden. The route
//! hands the client, the `Authorization` values and the body (read lazily,
//! capped) to [`crate::ingest::Ingest::accept`], and answers; 408 past
//! `server.request_timeout` (a slow body).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::ClientIp;
use crate::ingest::{BodyError, IngestError};

/// The route (see the module docs).
pub async fn receive(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Response {
    // The request's own headers, taken apart (a `HeaderMap` extractor would clone them).
    let (parts, body) = req.into_parts();
    let work = async {
        let auth: Vec<&str> = (parts.headers.get_all(header::AUTHORIZATION).iter())
            .filter_map(|v| v.to_str().ok())
            .collect();
        let body = read(&parts.headers, body, state.ingest.max_body_bytes());
        match state.ingest.accept(ip, &auth, body).await {
            Ok(accepted) => ok(accepted.as_str()),
            Err(e) => refused(ip, e).into_response(),
        }
    };
    crate::http::within_request_timeout(&state, work).await
}

/// The body, at most `limit` bytes (a larger declared length is refused unread).
async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let declared = (headers.get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let source = std::error::Error::source(&e);
        if source.is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            BodyError::TooLarge
        } else {
            BodyError::Unreadable
        }
    })
}

/// The refusal's one log line (a signature failure with its cause), then its answer.
fn refused(ip: std::net::IpAddr, e: IngestError) -> ApiError {
    let cause = matches!(e, IngestError::Unauthorized { .. }).then(|| e.to_string());
    let api = ApiError::from(e);
    let reason = cause.as_deref().unwrap_or(api.message());
    let (status, code) = (api.status().as_u16(), api.code());
    tracing::warn!(http.status = status, error.code = code, reason = reason, client.ip = %ip, "webhook refused");
    api
}

/// `200 {"status": result}`; the body is written directly (`result` is one of
/// Warden's own fixed, plain-ASCII names), not built as a JSON value first.
fn ok(result: &'static str) -> Response {
    let body = format!(r#"{{"status":"{result}"}}"#);
    let json = HeaderValue::from_static("application/json");
    (StatusCode::OK, [(header::CONTENT_TYPE, json)], body).into_response()
}
