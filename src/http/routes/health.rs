//! `GET /health` (liveness for load balancers: nothing but `{"status":"ok"}`)
//! and `GET /api/security/health` (admin: named checks with detail).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::clock::rfc3339_ms;
use crate::http::error::ApiError;
use crate::http::extract::Admin;

/// `GET /health`.
pub async fn health(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        Json(json!({"status": "ok"})).into_response()
    } else {
        ApiError::unavailable("not_ready", "not ready", 1).into_response()
    }
}

/// `GET /api/security/health`.
pub async fn detailed(State(state): State<AppState>, _admin: Admin) -> Json<Value> {
    let checks = checks(&state);
    let overall = overall(&checks);
    Json(json!({"overall_status": overall, "checks": checks}))
}

fn check(status: &str, detail: impl Into<String>) -> Value {
    json!({"status": status, "detail": detail.into()})
}

/// The named health checks.
pub fn checks(state: &AppState) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    let now = state.clock.now_ms();
    let infos = state.keys.key_infos(now);
    let signing = state.keys.signing_key();
    m.insert(
        "keys".into(),
        match signing {
            Some((id, _)) => check(
                "healthy",
                match infos.len() {
                    1 => format!("1 key; signing with {id}"),
                    n => format!("{n} keys; signing with {id}"),
                },
            ),
            None => check("critical", "no active API key"),
        },
    );
    let due: Vec<&str> = infos
        .iter()
        .filter(|k| k.rotation_due)
        .map(|k| k.id.as_str())
        .collect();
    m.insert(
        "key_rotation".into(),
        if due.is_empty() {
            check("healthy", "no key is older than its rotation interval")
        } else {
            check("degraded", format!("rotation due for {}", due.join(", ")))
        },
    );
    let warnings = state.keys.warnings();
    m.insert(
        "secret_strength".into(),
        if warnings.is_empty() {
            check("healthy", "every secret has at least 32 characters")
        } else {
            check("degraded", warnings.join("; "))
        },
    );
    let audit = state.audit.health();
    m.insert(
        "audit_store".into(),
        if !audit.writable {
            check(
                "critical",
                format!("not writable: {}", audit.last_error.unwrap_or_default()),
            )
        } else if !audit.head_verified {
            check("critical", audit.head_detail)
        } else {
            check("healthy", audit.head_detail)
        },
    );
    m.insert(
        "alert_sink".into(),
        match (&state.config.alerts.webhook_url, audit.alerts) {
            // Not configured is a choice, not a fault: a fresh install is healthy.
            (None, _) => check(
                "healthy",
                "not configured (alerts.webhook_url unset): security events go to the audit log and the security log only",
            ),
            (Some(_), Some(a)) => {
                let v = serde_json::to_value(&a).unwrap_or(Value::Null);
                let failing = v.get("last_error").is_some_and(|e| !e.is_null());
                check(if failing { "degraded" } else { "healthy" }, v.to_string())
            }
            (Some(_), None) => check("degraded", "alerts configured but not running"),
        },
    );
    let tls = state.config.server.tls.is_some();
    m.insert(
        "tls".into(),
        if tls {
            check("healthy", "TLS terminated by warden")
        } else if !state.config.server.trusted_proxies.is_empty() {
            check("healthy", "TLS terminated by a trusted proxy")
        } else if state.config.wss_enforcement.enabled {
            check("healthy", "plain HTTP on loopback only")
        } else {
            check("degraded", "wss_enforcement is disabled")
        },
    );
    m.insert(
        "client_identity".into(),
        client_identity(&state.guard.client_identity()),
    );
    let open = state.admission.open();
    let cap = state.admission.max_total();
    m.insert(
        "connections".into(),
        check(
            if open * 10 >= cap * 9 {
                "degraded"
            } else {
                "healthy"
            },
            format!("{open} of {cap} SSE connections"),
        ),
    );
    if let Some(cluster) = &state.cluster {
        let redis = cluster.health();
        let status = if redis.reachable {
            "healthy"
        } else {
            "degraded"
        };
        m.insert("redis".into(), check(status, redis.detail));
    }
    let now = state.clock.now_ms();
    m.insert(
        "webhook_lag".into(),
        match state.ingest.sender_lag().recent_max_ms(now) {
            None => check("healthy", "no webhook event in the last 5 minutes"),
            Some(max) if max >= crate::webhook::lag::WARN_MS => check(
                "degraded",
                format!(
                    "webhook events arrive up to {:.1} s after LiveKit created them; LiveKit drops events older than about 30 s, so some are about to be missed (is Warden or the path to it overloaded?)",
                    max as f64 / 1000.0
                ),
            ),
            Some(max) => check(
                "healthy",
                format!("webhook events arrive within {:.1} s of LiveKit creating them (largest lag, last 5 minutes)", max as f64 / 1000.0),
            ),
        },
    );
    m.insert(
        "ingestion".into(),
        if state.ingestion_enabled() {
            check("healthy", "webhooks processed")
        } else {
            check("degraded", "ingestion paused")
        },
    );
    m
}

/// Whether clients are told apart as they should be (see `guard/forwarding.rs`):
/// degraded when a loopback or private peer — where a reverse proxy sits —
/// sent forwarding headers without being in `server.trusted_proxies`, or when
/// trusted proxies named no client more often than they named one.
pub fn client_identity(s: &crate::guard::IdentitySnapshot) -> Value {
    if let Some(peer) = s.last_ignored_local.filter(|_| s.ignored_local > 0) {
        return check(
            "degraded",
            format!(
                "{} requests from {peer} carried X-Forwarded-For, X-Real-IP or Forwarded, ignored because {peer} is not in server.trusted_proxies: if it is your reverse proxy, add it to server.trusted_proxies (until then every client behind it is {peer} to lockouts and rate limits, so one attacker locks out everyone)",
                s.ignored_local
            ),
        );
    }
    if s.unknown > s.forwarded {
        let proxy = s
            .last_unknown_proxy
            .map_or_else(|| "a trusted proxy".to_owned(), |p| p.to_string());
        return check(
            "degraded",
            format!(
                "{} requests from trusted proxies named no client ({} did), the last from {proxy}: make the proxy set X-Forwarded-For; until then its clients are one unknown client (0.0.0.0) to lockouts and rate limits",
                s.unknown, s.forwarded
            ),
        );
    }
    let public = if s.ignored_public > 0 {
        format!(
            "; forwarding headers of {} requests from public addresses outside server.trusted_proxies were ignored",
            s.ignored_public
        )
    } else {
        String::new()
    };
    let how = if s.trusted_proxies == 0 {
        "clients are identified by their TCP address (server.trusted_proxies is empty)".to_owned()
    } else {
        format!(
            "{} requests identified by X-Forwarded-For from {} trusted proxy entries; {} named no client",
            s.forwarded, s.trusted_proxies, s.unknown
        )
    };
    check("healthy", format!("{how}{public}"))
}

/// healthy < degraded < critical: the worst check wins.
pub fn overall(checks: &serde_json::Map<String, Value>) -> &'static str {
    let statuses: Vec<&str> = checks
        .values()
        .filter_map(|c| c.get("status").and_then(Value::as_str))
        .collect();
    if statuses.contains(&"critical") {
        "critical"
    } else if statuses.contains(&"degraded") {
        "degraded"
    } else {
        "healthy"
    }
}

/// The body of `GET /api/security/status`.
pub fn status_json(state: &AppState) -> Value {
    let checks = checks(state);
    let overall = overall(&checks);
    let reasons: Vec<String> = checks
        .iter()
        .filter(|(_, c)| c.get("status").and_then(Value::as_str) != Some("healthy"))
        .map(|(name, c)| {
            format!(
                "{name}: {}",
                c.get("detail").and_then(Value::as_str).unwrap_or("")
            )
        })
        .collect();
    let now = state.clock.now_ms();
    let recent = state.audit.recent_events(20).unwrap_or_default();
    let counts = state.audit.counts(now).ok();
    let blocked: Vec<Value> = state
        .guard
        .blocked()
        .iter()
        .map(|b| json!({"ip": b.client, "until": rfc3339_ms(b.until_ms)}))
        .collect();
    let keys: Vec<Value> = state
        .keys
        .key_infos(now)
        .iter()
        .map(|k| key_json(k, now))
        .collect();
    json!({
        "overall_status": overall,
        "reason": reasons.join("; "),
        "checks": checks,
        "counts": counts,
        "recent_events": recent,
        "blocked": blocked,
        "keys": keys,
        "ingestion": {"enabled": state.ingestion_enabled()},
        "connections": {"open": state.admission.open(), "max": state.admission.max_total()},
        "webhook_lag_ms": {"last": state.ingest.sender_lag().last_ms(), "max_5m": state.ingest.sender_lag().recent_max_ms(now)},
    })
}

fn key_json(k: &crate::keys::KeyInfo, now: i64) -> Value {
    let (state_name, until) = match k.state {
        crate::keys::KeyState::Active => ("active", None),
        crate::keys::KeyState::Retiring { until_ms } => ("retiring", Some(rfc3339_ms(until_ms))),
        crate::keys::KeyState::Revoked => ("revoked", None),
    };
    json!({
        "id": k.id,
        "state": state_name,
        "source": format!("{:?}", k.source).to_ascii_lowercase(),
        "created": k.created_ms.map(rfc3339_ms),
        "age_hours": k.created_ms.map(|c| ((now - c) as f64 / 3_600_000.0 * 100.0).round() / 100.0),
        "rotation_due": k.rotation_due,
        "rotation_due_at": k.rotation_due_at_ms.map(rfc3339_ms),
        "retiring_until": until,
        "fingerprint": k.fingerprint,
    })
}
