//! `GET /metrics`: Prometheus text for an admin, or a client whose real
//! address (after trusted proxies) is loopback. `Accept` picks the format
//! (text 0.0.4 by default, OpenMetrics 1.0.0 when preferred), hence `Vary: Accept`.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{Admin, ClientIp};
use crate::keys::{KeySource, KeyState};
use crate::metrics::{Format, KeyReadings, Readings};

/// Renders the metrics.
pub async fn metrics(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Result<Response, ApiError> {
    let format = Format::negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    if !ip.is_loopback() {
        let (mut parts, _) = req.into_parts();
        Admin::from_request_parts(&mut parts, &state).await?;
    }
    let mut resp = state
        .metrics
        .render(format, &readings(&state))
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(resp)
}

/// What the hub, the guard, the key ring, the alerter and the cluster know now.
fn readings(state: &AppState) -> Readings {
    Readings {
        hub: state.hub.stats(),
        guard: state.guard.stats(),
        keys: keys(state),
        alert_queue: state.audit.alert_queue_len(),
        redis_up: state.cluster.as_ref().map(|c| c.health().reachable),
    }
}

/// The key ring aggregated: counts by state, the oldest owned active key's
/// age, whether one is due for rotation.
fn keys(state: &AppState) -> KeyReadings {
    let now = state.clock.now_ms();
    let mut k = KeyReadings::default();
    for info in state.keys.key_infos(now) {
        let slot = match info.state {
            KeyState::Active => 0,
            KeyState::Retiring { .. } => 1,
            KeyState::Revoked => 2,
        };
        k.by_state[slot] += 1;
        if let (KeyState::Active, KeySource::Owned, Some(created)) =
            (info.state, info.source, info.created_ms)
        {
            #[allow(clippy::cast_precision_loss)] // milliseconds, far below 2^52
            let age = now.saturating_sub(created).max(0) as f64 / 1000.0;
            k.oldest_active_age_seconds =
                Some(k.oldest_active_age_seconds.map_or(age, |a| a.max(age)));
        }
        k.rotation_due |= info.rotation_due;
    }
    k
}
