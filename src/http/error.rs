//! `ApiError`: the only place that picks status codes, error bodies and the
//! `Retry-After` / `RateLimit` headers.
//!
//! Domain errors carry kinds; a `From` impl here turns each into its answer
//! (the guard's [`Refusal`], SSE admission, ingest, webhook). Every refusal
//! is `{"error": "<stable code>", "message": "<one line>"}`. `IntoResponse`
//! has no side effects and shows nothing internal: causes are logged (masked)
//! where they happen, the client sees the code. All 401s look the same
//! whatever the cause. 429 and 503 always carry `Retry-After`.

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::guard::{RateInfo, Refusal, RefusalKind};

/// Marker put in a 401 response's extensions so the guard layer can count the
/// failure against the client (and the key id the credential named, if any).
#[derive(Clone, Debug, Default)]
pub struct AuthFailed {
    /// Key id the failed credential claimed.
    pub key_id: Option<String>,
}

/// An API error: status, stable code, one-line message, extra headers.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(&'static str, String)>,
    auth_failed: Option<AuthFailed>,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let message = message.into().replace(['\r', '\n'], " ");
        Self {
            status,
            code,
            message,
            headers: Vec::new(),
            auth_failed: None,
        }
    }

    /// 401 for a request that presented no credential at all: nothing was
    /// guessed, so it does not count towards a lockout (a dashboard checks
    /// its session on every visit before anyone signs in).
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid credentials",
        )
    }

    /// 401: missing or invalid credentials. Counts towards the client's lockout.
    pub fn unauthorized(key_id: Option<String>) -> Self {
        let mut e = Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid credentials",
        );
        e.auth_failed = Some(AuthFailed { key_id });
        e
    }

    /// 403: authenticated but not permitted.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 400: bad input.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// 429 with `Retry-After`.
    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, message).retry_after(retry_after_secs)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(
        code: &'static str,
        message: impl Into<String>,
        retry_after_secs: u64,
    ) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(retry_after_secs)
    }

    /// 500 without details (the cause is logged by the caller).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.headers.retain(|(n, _)| *n != "retry-after");
        self.headers.push(("retry-after", secs.max(1).to_string()));
        self
    }

    /// Adds headers (e.g. the RateLimit ones).
    pub fn with_headers(
        mut self,
        headers: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Self {
        self.headers.extend(headers);
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The one-line message the client gets.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut status = self.status;
        let mut headers = self.headers;
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
        {
            headers.push(("retry-after", "1".into()));
        }
        if status.is_success() {
            status = StatusCode::INTERNAL_SERVER_ERROR;
        }
        let mut resp = (
            status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        for (name, value) in headers {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                resp.headers_mut().insert(n, v);
            }
        }
        if let Some(a) = self.auth_failed {
            resp.extensions_mut().insert(a);
        }
        resp
    }
}

/// A webhook refusal: 413 for a body over the limit, 400 for a body that is
/// not a LiveKit event. (A signature failure is the route's 401, which also
/// names the key the token claimed: [`ApiError::unauthorized`].)
impl From<crate::webhook::WebhookError> for ApiError {
    fn from(e: crate::webhook::WebhookError) -> Self {
        use crate::webhook::WebhookError as W;
        let status = match &e {
            W::Signature(_) => StatusCode::UNAUTHORIZED,
            W::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            W::NotUtf8 | W::TooDeep { .. } | W::Syntax { .. } | W::Schema { .. } => {
                StatusCode::BAD_REQUEST
            }
        };
        Self::new(status, e.code(), e.public_message())
    }
}

/// A guard refusal: 429 for a rate limit, 403 otherwise (blocklist,
/// lockout, a webhook source not allowed); `Retry-After` and the `RateLimit`
/// headers as they apply.
impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = match r.kind {
            RefusalKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            RefusalKind::Blocked | RefusalKind::LockedOut | RefusalKind::NotAllowedSource => {
                StatusCode::FORBIDDEN
            }
        };
        refusal(status, r)
    }
}

/// `r` answered with `status`: the guard's code, a message chosen here, its headers.
fn refusal(status: StatusCode, r: Refusal) -> ApiError {
    let message = match r.kind {
        RefusalKind::Blocked => "this client is blocked",
        RefusalKind::LockedOut => "too many failed authentications; try again later",
        RefusalKind::RateLimited => "rate limit exceeded",
        RefusalKind::NotAllowedSource => "this source may not deliver webhooks",
    };
    let mut headers: Vec<_> = r
        .rate
        .as_ref()
        .map(rate_limit_headers)
        .into_iter()
        .flatten()
        .collect();
    if let Some(secs) = r.retry_after_secs {
        headers.push(("Retry-After", secs.to_string()));
    }
    ApiError::new(status, r.kind.code(), message).with_headers(headers)
}

/// `RateLimit-Policy: "api";q=100;w=60` and `RateLimit: "api";r=57;t=12`
/// (Structured Field Lists of one String Item with Integer parameters), for
/// refused and admitted requests alike.
pub fn rate_limit_headers(rate: &RateInfo) -> [(&'static str, String); 2] {
    let name = rate.policy_name;
    [
        (
            "RateLimit-Policy",
            format!("\"{name}\";q={};w={}", rate.limit, rate.window_secs),
        ),
        (
            "RateLimit",
            format!("\"{name}\";r={};t={}", rate.remaining, rate.reset_secs),
        ),
    ]
}

/// An SSE connection over a cap: 503 for the server's, 429 for the client's.
impl From<crate::guard::AdmissionError> for ApiError {
    fn from(e: crate::guard::AdmissionError) -> Self {
        use crate::guard::AdmissionError as A;
        let message = e.to_string();
        match e {
            A::Global => Self::unavailable("too_many_connections", message, 5),
            A::PerClient => Self::too_many("too_many_connections", message, 5),
        }
    }
}

/// An ingest refusal: the guard's (403/429; a locked-out source's unverified
/// delivery 429, which LiveKit retries), 503 while paused or when the event
/// cannot be stored or queued (LiveKit retries), 413/400 for the body, 401
/// for the signature (all 401s alike; one naming a key counts towards the
/// client's lockout).
impl From<crate::ingest::IngestError> for ApiError {
    fn from(e: crate::ingest::IngestError) -> Self {
        use crate::ingest::IngestError as I;
        let code = e.code();
        match e {
            I::Refused(r) => r.into(),
            // LiveKit retries a 429 and drops other 4xx: a locked-out source's
            // unverified delivery must not be lost for good.
            I::LockedOut(r) => refusal(StatusCode::TOO_MANY_REQUESTS, r),
            I::Paused => Self::unavailable(code, e.to_string(), 30),
            I::Storage | I::Cluster => Self::unavailable(code, e.to_string(), 1),
            I::BodyTooLarge { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, code, e.to_string()),
            I::BodyUnreadable => Self::bad_request(code, e.to_string()),
            I::Unauthorized {
                presented: false, ..
            } => Self::unauthenticated(),
            I::Unauthorized { claimed_key, .. } => Self::unauthorized(claimed_key),
            I::Webhook(w) => w.into(),
        }
    }
}

#[cfg(test)]
mod tests;
