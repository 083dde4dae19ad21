//! The error map: statuses, codes and headers for each domain error.

use super::*;

#[tokio::test]
async fn errors_are_one_line_json_with_retry_after_where_due() {
    let resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "slow\r\ndown",
    )
    .into_response();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body = axum::body::to_bytes(resp.into_body(), 1024)
        .await
        .expect("body");
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v, json!({"error": "rate_limited", "message": "slow  down"}));
}

#[test]
fn webhook_refusals_map_to_their_statuses_here() {
    use crate::webhook::WebhookError as W;
    let cases = [
        (
            W::Signature(crate::webhook::SignatureError::Expired),
            401,
            "invalid_signature",
        ),
        (W::BodyTooLarge { size: 2, limit: 1 }, 413, "body_too_large"),
        (W::NotUtf8, 400, "malformed_body"),
        (W::TooDeep { max: 64 }, 400, "malformed_body"),
        (W::Syntax { line: 1, column: 2 }, 400, "malformed_body"),
        (
            W::Schema {
                reason: "event".into(),
            },
            400,
            "invalid_event",
        ),
    ];
    for (e, status, code) in cases {
        let api = ApiError::from(e);
        assert_eq!((api.status().as_u16(), api.code()), (status, code));
    }
}

#[test]
fn guard_and_ingest_refusals_get_their_statuses_and_headers_here() {
    let rate = RateInfo {
        policy_name: "api",
        limit: 3,
        window_secs: 60,
        remaining: 0,
        reset_secs: 20,
    };
    let limited = Refusal {
        kind: RefusalKind::RateLimited,
        retry_after_secs: Some(20),
        rate: Some(rate),
    };
    let resp = ApiError::from(limited).into_response();
    assert_eq!(resp.status(), 429);
    let h = resp.headers();
    assert_eq!(h["ratelimit-policy"], "\"api\";q=3;w=60");
    assert_eq!(h["ratelimit"], "\"api\";r=0;t=20");
    assert_eq!(h["retry-after"], "20");
    let locked = Refusal {
        kind: RefusalKind::LockedOut,
        retry_after_secs: Some(900),
        rate: None,
    };
    let api = ApiError::from(locked.clone()).into_response();
    assert_eq!(
        (
            api.status().as_u16(),
            api.headers()["retry-after"].to_str().ok()
        ),
        (403, Some("900"))
    );
    // The same lockout met by a webhook: LiveKit retries 429 only.
    let hook = ApiError::from(crate::ingest::IngestError::LockedOut(locked));
    assert_eq!((hook.status().as_u16(), hook.code()), (429, "locked_out"));
    for kind in [RefusalKind::Blocked, RefusalKind::NotAllowedSource] {
        let e = ApiError::from(Refusal {
            kind,
            retry_after_secs: None,
            rate: None,
        });
        assert_eq!((e.status().as_u16(), e.code()), (403, kind.code()));
    }
    use crate::guard::AdmissionError as A;
    let global = ApiError::from(A::Global);
    let per_client = ApiError::from(A::PerClient);
    assert_eq!(
        (global.status().as_u16(), per_client.status().as_u16()),
        (503, 429)
    );
    assert_eq!(global.code(), "too_many_connections");
}

#[test]
fn unauthorized_marks_the_failure_for_the_guard() {
    let resp = ApiError::unauthorized(Some("APIx".into())).into_response();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.extensions()
            .get::<AuthFailed>()
            .and_then(|a| a.key_id.clone()),
        Some("APIx".into())
    );
}
