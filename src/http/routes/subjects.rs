//! `POST /api/security/subjects/export` and `/erase` (admin): one person's
//! records, as `warden subject export|erase` (see [`crate::subject`]).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::Admin;
use crate::subject::{self, SubjectError};

/// The body of both routes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectBody {
    identity: String,
}

fn body(
    body: Result<Json<SubjectBody>, axum::extract::rejection::JsonRejection>,
) -> Result<String, ApiError> {
    let Json(b) = body.map_err(|_| {
        ApiError::bad_request(
            "invalid_body",
            "expected {\"identity\": \"<participant identity>\"}",
        )
    })?;
    subject::validate(&b.identity)
        .map_err(|e| ApiError::bad_request("invalid_identity", e.to_string()))?;
    Ok(b.identity)
}

fn refusal(e: &SubjectError) -> ApiError {
    match e {
        SubjectError::Invalid(_) => ApiError::bad_request("invalid_identity", e.to_string()),
        SubjectError::AuditUnavailable(_) => {
            tracing::error!(error = %e, "subject erasure refused: audit store not writable");
            ApiError::unavailable(
                "audit_unavailable",
                "the audit log cannot record this erasure, so nothing was erased",
                30,
            )
        }
        SubjectError::Store(_) => {
            tracing::error!(error = %e, "subject request failed");
            ApiError::internal()
        }
    }
}

/// `POST /api/security/subjects/export {"identity"}`: every record held about it.
pub async fn export(
    State(state): State<AppState>,
    _admin: Admin,
    b: Result<Json<SubjectBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let identity = body(b)?;
    subject::export(&state, &identity)
        .await
        .map(Json)
        .map_err(|e| refusal(&e))
}

/// `POST /api/security/subjects/erase {"identity"}`: erases it from every store.
pub async fn erase(
    State(state): State<AppState>,
    admin: Admin,
    b: Result<Json<SubjectBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let identity = body(b)?;
    let erasure = subject::erase(&state, &identity, Some(admin.claims.iss.clone()), "api")
        .await
        .map_err(|e| refusal(&e))?;
    Ok(Json(json!({"erased": erasure})))
}
