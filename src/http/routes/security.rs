//! Admin routes: security status, security events, unblock, the ingestion kill switch.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::audit::{EventType, NewEvent, Severity};
use crate::clock::{parse_rfc3339_ms, rfc3339_ms};
use crate::http::error::ApiError;
use crate::http::extract::{Admin, ClientIp};

/// `GET /api/security/status`.
pub async fn status(State(state): State<AppState>, _admin: Admin) -> Json<Value> {
    Json(crate::http::routes::health::status_json(&state))
}

/// `GET /api/security/events?type=&since=&limit=&cursor=`: newest first, paged.
pub async fn events(
    State(state): State<AppState>,
    _admin: Admin,
    req: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let (parts, _) = req.into_parts();
    let q = crate::http::extract::query_pairs(&parts);
    let get = |name: &str| {
        q.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let kind = get("type")
        .map(|t| {
            t.parse::<EventType>()
                .map_err(|_| ApiError::bad_request("invalid_type", "unknown security event type"))
        })
        .transpose()?;
    let since = get("since")
        .map(|s| {
            parse_rfc3339_ms(s)
                .ok_or_else(|| ApiError::bad_request("invalid_since", "`since` must be RFC 3339"))
        })
        .transpose()?;
    let limit = get("limit")
        .map(|l| {
            l.parse::<usize>()
                .map_err(|_| ApiError::bad_request("invalid_limit", "`limit` must be a number"))
        })
        .transpose()?
        .unwrap_or(100)
        .clamp(1, 1000);
    let cursor = get("cursor")
        .map(|c| {
            c.parse::<u64>().map(|_| c.to_owned()).map_err(|_| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "`cursor` is not a cursor this server returned",
                )
            })
        })
        .transpose()?;
    let page = state.audit.query(kind, since, limit, cursor).map_err(|e| {
        // The store failed, not the request: 503 (retry), never a 400.
        tracing::warn!(error = %e, "security event query failed");
        ApiError::unavailable(
            "storage_unavailable",
            "the audit store could not be read; retry later",
            5,
        )
    })?;
    Ok(Json(json!({"events": page.events, "next": page.next})))
}

/// Records a sensitive admin operation before it happens; refuses it when the audit store cannot.
async fn record_first(state: &AppState, event: NewEvent) -> Result<(), ApiError> {
    state
        .audit
        .record_durable(event)
        .await
        .map(|_| ())
        .map_err(|e| {
            tracing::error!(error = %e, "sensitive operation refused: audit store not writable");
            ApiError::unavailable(
                "audit_unavailable",
                "the audit log cannot record this operation, so it is refused",
                30,
            )
        })
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
    let event = NewEvent::new(EventType::IpBlocked, Severity::Low)
        .ip(by)
        .identity(state.pepper.hash_identity(&admin.claims.sub))
        .detail("action", "unblock")
        .detail("client", ip.to_string());
    record_first(&state, event).await?;
    let was_blocked = state.guard.unblock(ip);
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
    let before = state.ingest.set_enabled(body.enabled);
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
