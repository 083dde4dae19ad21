//! `GET /api/events` (the SSE stream) and `GET /api/rooms` (its snapshot as JSON).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::Stream;

use crate::app::{AppState, Lifeline};
use crate::guard::AdmissionError;
use crate::guard::ConnPermit;
use crate::http::error::ApiError;
use crate::http::extract::{ClientIp, Subscriber, deny, query_pairs};
use crate::http::serve::stream::Probe;
use crate::hub::{SubscribeRequest, Subscription};

/// Admission (global cap, per-client cap, connect rate) before any
/// expensive work; then the token; then per-room authorisation. Every
/// refusal is counted by its reason.
pub async fn stream(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    req: Request,
) -> Result<Response, ApiError> {
    open(&state, ip, req).await.map_err(|refused| {
        state.metrics.sse_refusal(refused.reason());
        refused.into()
    })
}

/// Why a stream was refused: kept as a kind until it is counted.
enum Refused {
    /// Over a connection cap.
    Admission(AdmissionError),
    /// The guard's connect-rate limit.
    Guard(crate::guard::Refusal),
    /// The token or the rooms.
    Api(ApiError),
}

impl Refused {
    /// The `reason` label of the refusal counter.
    fn reason(&self) -> &'static str {
        match self {
            Self::Admission(AdmissionError::Global) => "global_limit",
            Self::Admission(AdmissionError::PerClient) => "per_ip_limit",
            Self::Guard(r) => r.kind.code(),
            // The token's codes; anything else counts as `other`.
            Self::Api(e) => e.code(),
        }
    }
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Admission(e) => e.into(),
            Refused::Guard(r) => r.into(),
            Refused::Api(e) => e,
        }
    }
}

/// The stream, or why it is refused.
async fn open(state: &AppState, ip: std::net::IpAddr, req: Request) -> Result<Response, Refused> {
    let permit = state.admission.admit(ip).map_err(Refused::Admission)?;
    state.guard.check_sse_connect(ip).map_err(Refused::Guard)?;
    let (mut parts, _) = req.into_parts();
    let sub = Subscriber::from_request_parts(&mut parts, state).await?;
    let query = query_pairs(&parts);
    let rooms = requested_rooms(&query);
    check_rooms(state, &parts, &sub, &rooms)?;
    let last_event_id = parts
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            query
                .iter()
                .find(|(k, _)| k == "lastEventId")
                .map(|(_, v)| v.clone())
        });
    let subscription = state.hub.subscribe(SubscribeRequest {
        access: sub.access,
        rooms,
        last_event_id,
        deadline_ms: Some(sub.claims.exp.saturating_mul(1000)),
        now_ms: state.clock.now_ms(),
    });
    state.metrics.sse_connection(1);
    // Revoking the token's key ends the stream; over HTTP/2 the stream is
    // also watched while hyper cannot poll it (see `serve::stream`).
    // This runs in the task that will poll the stream's body: its waker is
    // the one a revocation must wake.
    let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    let life = state.lifelines.register(&sub.claims.iss, &waker);
    let probe = crate::http::serve::stream::current()
        .map(|slot| slot.arm(subscription.ends_at(), life.watch(), state.metrics.clone()));
    let body = Body::from_stream(Held {
        inner: subscription,
        _permit: permit,
        metrics: state.metrics.clone(),
        life,
        probe,
        revoked: false,
    });
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// `GET /api/rooms`: the snapshot a new stream would start with.
pub async fn rooms(
    State(state): State<AppState>,
    sub: Subscriber,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (parts, _) = req.into_parts();
    let rooms = requested_rooms(&query_pairs(&parts));
    check_rooms(&state, &parts, &sub, &rooms)?;
    Ok(Json(state.hub.snapshot_json(&sub.access, &rooms)))
}

fn requested_rooms(query: &[(String, String)]) -> Vec<String> {
    let mut rooms: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "room")
        .map(|(_, v)| v.clone())
        .collect();
    rooms.sort_unstable();
    rooms.dedup();
    rooms
}

/// Refuses (403, recorded) a `?room=` the token does not grant.
fn check_rooms(
    state: &AppState,
    parts: &Parts,
    sub: &Subscriber,
    rooms: &[String],
) -> Result<(), ApiError> {
    match rooms.iter().find(|r| !sub.access.permits(Some(r.as_str()))) {
        None => Ok(()),
        Some(room) => {
            let why = format!(
                "the token does not permit room {:?}",
                room.chars().take(64).collect::<String>()
            );
            Err(deny(state, parts, &sub.claims, &why))
        }
    }
}

/// The subscription plus its admission permit: the slot is freed when the
/// body is dropped, whichever way the stream ends. The stream ends when its
/// lifeline does (its key was revoked).
struct Held {
    inner: Subscription,
    _permit: ConnPermit,
    metrics: crate::metrics::Metrics,
    life: Lifeline,
    /// The HTTP/2 stream watch, told of every poll.
    probe: Option<Arc<Probe>>,
    /// Ended by its lifeline (counted once).
    revoked: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.metrics.sse_connection(-1);
    }
}

impl Stream for Held {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.life.is_ended() {
            if !std::mem::replace(&mut this.revoked, true) {
                this.metrics.sse_cut("revoked");
            }
            return Poll::Ready(None);
        }
        let next = Pin::new(&mut this.inner).poll_next(cx);
        if let Some(p) = &this.probe {
            p.polled(matches!(next, Poll::Ready(Some(_))));
        }
        next
    }
}
