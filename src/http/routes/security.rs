//! Admin routes: security status, security events, unblock, the ingestion kill switch.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit::{EventType, NewEvent, Severity};
use crate::clock::rfc3339_ms;
use crate::http::error::ApiError;
use crate::http::extract::{Admin, ClientIp};

/// `GET /api/security/status`.
pub async fn status(State(state): State<AppState>, _admin: Admin) -> Json<Value> {
    Json(crate::http::routes::health::status_json(&state))
}

/// `GET /api/security/events?type=&since=&limit=`.
pub async fn events(State(state): State<AppState>, _admin: Admin) -> Json<Value> {
    let events: Vec<Value> = state
        .audit
        .recent()
        .iter()
        .rev()
        .take(100)
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
    Json(json!({"events": events, "next": null}))
}

/// Unblock body.
#[derive(Deserialize)]
pub struct Unblock {
    ip: String,
}

/// `POST /api/security/unblock {"ip"}`.
pub async fn unblock(
    State(state): State<AppState>,
    admin: Admin,
    ClientIp(by): ClientIp,
    body: Result<Json<Unblock>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body
        .map_err(|_| ApiError::bad_request("invalid_body", "expected {\"ip\": \"<address>\"}"))?;
    let ip: std::net::IpAddr = body
        .ip
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_ip", "`ip` is not an IP address"))?;
    let was_blocked = state.guard.unblock(ip);
    state.audit.record(
        NewEvent::new(EventType::IpBlocked, Severity::Low)
            .ip(by)
            .identity(state.pepper.hash_identity(&admin.claims.sub))
            .detail("action", "unblock")
            .detail("client", ip.to_string())
            .detail("was_blocked", was_blocked),
    );
    Ok(Json(
        json!({"ip": ip.to_string(), "unblocked": was_blocked}),
    ))
}

/// Kill-switch body.
#[derive(Deserialize)]
pub struct Ingestion {
    enabled: bool,
}

/// `POST /api/security/ingestion {"enabled": bool}`: pauses or resumes webhook processing.
pub async fn ingestion(
    State(state): State<AppState>,
    admin: Admin,
    ClientIp(by): ClientIp,
    body: Result<Json<Ingestion>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body
        .map_err(|_| ApiError::bad_request("invalid_body", "expected {\"enabled\": true|false}"))?;
    let before = state.ingestion.swap(body.enabled, Ordering::SeqCst);
    state.audit.record(
        NewEvent::new(
            EventType::IngestionPaused,
            if body.enabled {
                Severity::Medium
            } else {
                Severity::High
            },
        )
        .ip(by)
        .identity(state.pepper.hash_identity(&admin.claims.sub))
        .detail("enabled", body.enabled)
        .detail("was_enabled", before),
    );
    Ok(Json(
        json!({"ingestion": {"enabled": body.enabled}, "changed_at": rfc3339_ms(state.clock.now_ms())}),
    ))
}
