//! `POST /webhooks/livekit`: the only way events enter Warden.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ClientIp, claimed_key_id};
use crate::webhook::Outcome;

/// Guard (blocklist → 403, rate limit → 429), kill switch (503), size cap
/// (413), then verify on the raw bytes, decode, hand to the hub and answer at
/// once; 408 past `server.request_timeout` (a slow body). A locked-out source
/// gets through only with a signature that verifies; whatever it sends that
/// does not is answered 429 (LiveKit retries 429) — see [`unless_locked`].
pub async fn receive(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Response {
    // The request's own headers, taken apart (a `HeaderMap` extractor would clone them).
    let (parts, body) = req.into_parts();
    let work = async {
        match handle(&state, ip, &parts.headers, body).await {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        }
    };
    crate::http::within_request_timeout(&state, work).await
}

async fn handle(
    state: &AppState,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let result = process(state, ip, headers, body, started).await;
    let label = match &result {
        Ok((label, _)) => *label,
        Err(e) => {
            // A 401's own line (with the verifier's reason) is written where
            // the reason is known; every other refusal is logged here.
            if e.status() != StatusCode::UNAUTHORIZED {
                tracing::warn!(
                    http.status = e.status().as_u16(),
                    error.code = e.code(),
                    reason = e.message(),
                    client.ip = %ip,
                    "webhook refused"
                );
            }
            e.code()
        }
    };
    state.metrics.webhook(label);
    if label == "accepted" {
        state.webhook_minutes.record(state.clock.now_ms());
    }
    result.map(|(_, r)| r)
}

/// The INFO line of an accepted webhook: what LiveKit sent, never an
/// identity. Taken from the event before it is handed over, written once it
/// is stored (nothing is copied when INFO is off).
struct AcceptedLine {
    event: String,
    room: String,
    lag_ms: Option<i64>,
}

impl AcceptedLine {
    fn of(event: &crate::event::Event, lag_ms: Option<i64>) -> Option<Self> {
        tracing::enabled!(tracing::Level::INFO).then(|| Self {
            event: event.event.clone(),
            room: event
                .data
                .room
                .as_ref()
                .map_or_else(|| "-".to_owned(), |r| r.name.clone()),
            lag_ms,
        })
    }

    fn write(self, id: &str, started: std::time::Instant) {
        tracing::info!(
            event = %self.event,
            room = %self.room,
            webhook.id = %id,
            lag_ms = self.lag_ms.unwrap_or(-1),
            duration_ms = crate::http::rounded_ms(started.elapsed()),
            "webhook accepted"
        );
    }
}

async fn process(
    state: &AppState,
    ip: std::net::IpAddr,
    headers: &HeaderMap,
    body: Body,
    started: std::time::Instant,
) -> Result<(&'static str, Response), ApiError> {
    let allowed = state
        .guard
        .check_webhook(ip)
        .map_err(crate::http::refusal)?;
    let locked = allowed.locked_until_ms;
    if !state.ingestion_enabled() {
        return Err(ApiError::unavailable(
            "ingestion_paused",
            "webhook ingestion is paused; retry later",
            30,
        ));
    }
    let limit = state.receiver.max_body_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(unless_locked(state, ip, locked, too_large(limit)));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        let err = if std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            too_large(limit)
        } else {
            ApiError::bad_request("body_unreadable", "the request body could not be read")
        };
        unless_locked(state, ip, locked, err)
    })?;
    let auth: Vec<&str> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if let Some(until) = locked
        && !state.receiver.signature_verifies(&auth, &bytes)
    {
        return Err(crate::http::refusal(state.guard.webhook_lockout(ip, until)));
    }
    match state.receiver.receive(ip, &auth, &bytes) {
        Ok(Outcome::Broadcast(event)) => {
            let lag = state
                .sender_lag
                .record(event.created_at_ms, state.clock.now_ms());
            if let Some(lag) = lag {
                state.metrics.webhook_lag(lag);
            }
            if let Some(cluster) = &state.cluster {
                // Boxed: the Redis round trip's future is large, and every
                // single-node request would otherwise carry (and move) its size.
                let result = Box::pin(publish_to_cluster(
                    state, cluster, &event, ip, &bytes, started,
                ))
                .await;
                if let (Ok(_), Some(line)) = (&result, AcceptedLine::of(&event, lag)) {
                    line.write(&event.id, started);
                }
                return result;
            }
            let line = AcceptedLine::of(&event, lag);
            let id = event.id.clone();
            // Durable before acknowledged: LiveKit never resends what got a 200.
            if let Err(e) = state
                .hub
                .publish(event, state.clock.now_ms())
                .durable()
                .await
            {
                state.receiver.replay_store().forget(&id);
                tracing::error!(error = %e, "webhook not stored; LiveKit will retry it");
                return Err(ApiError::unavailable(
                    "storage_unavailable",
                    "the event could not be stored; retry later",
                    1,
                ));
            }
            state.metrics.webhook_to_enqueue(started.elapsed());
            if let Some(line) = line {
                line.write(&id, started);
            }
            Ok(("accepted", accepted("accepted")))
        }
        Ok(Outcome::Duplicate) => {
            tracing::info!(
                reason = "event id already accepted (LiveKit retried it); answered 200, not broadcast again",
                "webhook duplicate"
            );
            Ok(("duplicate", accepted("duplicate")))
        }
        Ok(Outcome::Ignored { event }) => {
            tracing::info!(event = %event, reason = "not an event Warden broadcasts; answered 200", "webhook ignored");
            Ok(("ignored", accepted("ignored")))
        }
        Err(e) => {
            if matches!(e, crate::webhook::WebhookError::Signature(_)) {
                tracing::warn!(http.status = 401, reason = %e, client.ip = %ip, "webhook refused");
                if auth.is_empty() {
                    return Err(ApiError::unauthenticated());
                }
                let key = auth
                    .first()
                    .and_then(|a| claimed_key_id(a.trim_start_matches("Bearer ").trim()));
                return Err(ApiError::unauthorized(key));
            }
            Err(e.into())
        }
    }
}

/// `err`, or — from a locked-out source, before its signature was verified —
/// the lockout's 429.
fn unless_locked(
    state: &AppState,
    ip: std::net::IpAddr,
    locked_until_ms: Option<i64>,
    err: ApiError,
) -> ApiError {
    match locked_until_ms {
        Some(until) => crate::http::refusal(state.guard.webhook_lockout(ip, until)),
        None => err,
    }
}

/// Several nodes: queued in the shared stream (dedupe included), or 503 so LiveKit retries.
async fn publish_to_cluster(
    state: &AppState,
    cluster: &crate::cluster::Cluster,
    event: &crate::event::Event,
    ip: std::net::IpAddr,
    body: &[u8],
    started: std::time::Instant,
) -> Result<(&'static str, Response), ApiError> {
    let digest = crate::webhook::replay::digest(body);
    match cluster.publish(event, ip, digest).await {
        Ok(published) => {
            state.metrics.webhook_to_enqueue(started.elapsed());
            Ok((published.as_str(), accepted(published.as_str())))
        }
        Err(e) => {
            tracing::warn!(error = %e, "webhook not queued: the shared stream is unreachable");
            Err(ApiError::unavailable(
                "cluster_unavailable",
                "the event could not be queued; retry later",
                1,
            ))
        }
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body exceeds {limit} bytes"),
    )
}

/// `200 {"status": result}`; the body is written directly (`result` is one of
/// Warden's own fixed, plain-ASCII names), not built as a JSON value first.
fn accepted(result: &'static str) -> Response {
    let body = format!(r#"{{"status":"{result}"}}"#);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
