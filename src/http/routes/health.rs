//! `GET /health` (liveness for load balancers: nothing but `{"status":"ok"}`)
//! and `GET /api/security/health` (admin: named checks with detail).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
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
pub async fn detailed(State(state): State<AppState>, _admin: Admin) -> Json<Health> {
    let checks = checks(&state);
    Json(Health {
        overall_status: checks.overall(),
        checks,
    })
}

/// The body of `GET /api/security/health` (fields in the order they are sent).
#[derive(Debug, Serialize)]
pub struct Health {
    /// Every check by name.
    pub checks: Checks,
    /// The worst check's status.
    pub overall_status: Status,
}

/// A check's verdict, in rising order of gravity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nothing to do.
    Healthy,
    /// Working, but an operator should look.
    Degraded,
    /// Not working.
    Critical,
}

/// One named check: a sentence for the operator and its verdict (sent in that order).
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What was found.
    pub detail: String,
    /// The verdict.
    pub status: Status,
}

impl Check {
    fn healthy(detail: impl Into<String>) -> Self {
        Self::new(Status::Healthy, detail)
    }

    fn degraded(detail: impl Into<String>) -> Self {
        Self::new(Status::Degraded, detail)
    }

    fn critical(detail: impl Into<String>) -> Self {
        Self::new(Status::Critical, detail)
    }

    fn new(status: Status, detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            status,
        }
    }
}

/// Every health check, one field each.
#[derive(Clone, Debug)]
pub struct Checks {
    /// The alert webhook's delivery.
    pub alert_sink: Check,
    /// The audit store: writable, chain head verified.
    pub audit_store: Check,
    /// Whether clients are told apart (see [`client_identity`]).
    pub client_identity: Check,
    /// Open SSE connections against the cap.
    pub connections: Check,
    /// The webhook kill switch.
    pub ingestion: Check,
    /// Keys older than their rotation interval.
    pub key_rotation: Check,
    /// An active signing key.
    pub keys: Check,
    /// Redis reachability, in a cluster only.
    pub redis: Option<Check>,
    /// Secrets long enough.
    pub secret_strength: Check,
    /// Where TLS is terminated.
    pub tls: Check,
    /// How late webhooks arrive.
    pub webhook_lag: Check,
}

impl Checks {
    /// The checks by name, in name order (the order they are sent in).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Check)> {
        [
            ("alert_sink", Some(&self.alert_sink)),
            ("audit_store", Some(&self.audit_store)),
            ("client_identity", Some(&self.client_identity)),
            ("connections", Some(&self.connections)),
            ("ingestion", Some(&self.ingestion)),
            ("key_rotation", Some(&self.key_rotation)),
            ("keys", Some(&self.keys)),
            ("redis", self.redis.as_ref()),
            ("secret_strength", Some(&self.secret_strength)),
            ("tls", Some(&self.tls)),
            ("webhook_lag", Some(&self.webhook_lag)),
        ]
        .into_iter()
        .filter_map(|(name, check)| check.map(|c| (name, c)))
    }

    /// healthy < degraded < critical: the worst check wins.
    pub fn overall(&self) -> Status {
        self.iter()
            .map(|(_, c)| c.status)
            .max()
            .unwrap_or(Status::Healthy)
    }
}

/// A JSON object of the checks present, by name.
impl Serialize for Checks {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// The named health checks.
pub fn checks(state: &AppState) -> Checks {
    let now = state.clock.now_ms();
    let infos = state.keys.key_infos(now);
    let keys = match state.keys.signing_key() {
        Some((id, _)) => Check::healthy(match infos.len() {
            1 => format!("1 key; signing with {id}"),
            n => format!("{n} keys; signing with {id}"),
        }),
        None => Check::critical("no active API key"),
    };
    let due: Vec<&str> = infos
        .iter()
        .filter(|k| k.rotation_due)
        .map(|k| k.id.as_str())
        .collect();
    let key_rotation = if due.is_empty() {
        Check::healthy("no key is older than its rotation interval")
    } else {
        Check::degraded(format!("rotation due for {}", due.join(", ")))
    };
    let warnings = state.keys.warnings();
    let secret_strength = if warnings.is_empty() {
        Check::healthy("every secret has at least 32 characters")
    } else {
        Check::degraded(warnings.join("; "))
    };
    let audit = state.audit.health();
    let audit_store = if !audit.writable {
        Check::critical(format!(
            "not writable: {}",
            audit.last_error.unwrap_or_default()
        ))
    } else if !audit.head_verified {
        Check::critical(audit.head_detail)
    } else {
        Check::healthy(audit.head_detail)
    };
    let alert_sink = match (&state.config.alerts.webhook_url, audit.alerts) {
        // Not configured is a choice, not a fault: a fresh install is healthy.
        (None, _) => Check::healthy(
            "not configured (alerts.webhook_url unset): security events go to the audit log and the security log only",
        ),
        (Some(_), Some(a)) => Check::new(
            if a.last_error.is_some() {
                Status::Degraded
            } else {
                Status::Healthy
            },
            // Through a `Value`: the detail lists the fields in name order.
            serde_json::to_value(&a)
                .map(|v| v.to_string())
                .unwrap_or_default(),
        ),
        (Some(_), None) => Check::degraded("alerts configured but not running"),
    };
    let server = &state.config.server;
    let tls = if server.tls.is_some() {
        Check::healthy("TLS terminated by warden")
    } else if !server.trusted_proxies.is_empty() {
        Check::healthy("TLS terminated by a trusted proxy")
    } else if state.config.wss_enforcement.enabled {
        Check::healthy("plain HTTP on loopback only")
    } else {
        Check::degraded("wss_enforcement is disabled")
    };
    let open = state.admission.open();
    let cap = state.admission.max_total();
    let connections = Check::new(
        if open * 10 >= cap * 9 {
            Status::Degraded
        } else {
            Status::Healthy
        },
        format!("{open} of {cap} SSE connections"),
    );
    let redis = state.cluster.as_ref().map(|cluster| {
        let redis = cluster.health();
        let status = if redis.reachable {
            Status::Healthy
        } else {
            Status::Degraded
        };
        Check::new(status, redis.detail)
    });
    let now = state.clock.now_ms();
    let webhook_lag = match state.ingest.sender_lag().recent_max_ms(now) {
        None => Check::healthy("no webhook event in the last 5 minutes"),
        Some(max) if max >= crate::webhook::lag::WARN_MS => Check::degraded(format!(
            "webhook events arrive up to {:.1} s after LiveKit created them; LiveKit drops events older than about 30 s, so some are about to be missed (is Warden or the path to it overloaded?)",
            max as f64 / 1000.0
        )),
        Some(max) => Check::healthy(format!(
            "webhook events arrive within {:.1} s of LiveKit creating them (largest lag, last 5 minutes)",
            max as f64 / 1000.0
        )),
    };
    let ingestion = if state.ingestion_enabled() {
        Check::healthy("webhooks processed")
    } else {
        Check::degraded("ingestion paused")
    };
    Checks {
        alert_sink,
        audit_store,
        client_identity: client_identity(&state.guard.client_identity()),
        connections,
        ingestion,
        key_rotation,
        keys,
        redis,
        secret_strength,
        tls,
        webhook_lag,
    }
}

/// Whether clients are told apart as they should be (see `guard/forwarding.rs`):
/// degraded when a loopback or private peer — where a reverse proxy sits —
/// sent forwarding headers without being in `server.trusted_proxies`, or when
/// trusted proxies named no client more often than they named one.
pub fn client_identity(s: &crate::guard::IdentitySnapshot) -> Check {
    if let Some(peer) = s.last_ignored_local.filter(|_| s.ignored_local > 0) {
        return Check::degraded(format!(
            "{} requests from {peer} carried X-Forwarded-For, X-Real-IP or Forwarded, ignored because {peer} is not in server.trusted_proxies: if it is your reverse proxy, add it to server.trusted_proxies (until then every client behind it is {peer} to lockouts and rate limits, so one attacker locks out everyone)",
            s.ignored_local
        ));
    }
    if s.unknown > s.forwarded {
        let proxy = s
            .last_unknown_proxy
            .map_or_else(|| "a trusted proxy".to_owned(), |p| p.to_string());
        return Check::degraded(format!(
            "{} requests from trusted proxies named no client ({} did), the last from {proxy}: make the proxy set X-Forwarded-For; until then its clients are one unknown client (0.0.0.0) to lockouts and rate limits",
            s.unknown, s.forwarded
        ));
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
    Check::healthy(format!("{how}{public}"))
}

/// The body of `GET /api/security/status`.
pub fn status_json(state: &AppState) -> Value {
    let checks = checks(state);
    let overall = checks.overall();
    let reasons: Vec<String> = checks
        .iter()
        .filter(|(_, c)| c.status != Status::Healthy)
        .map(|(name, c)| format!("{name}: {}", c.detail))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn all(status: Status) -> Checks {
        let c = || Check::new(status, "d");
        Checks {
            alert_sink: c(),
            audit_store: c(),
            client_identity: c(),
            connections: c(),
            ingestion: c(),
            key_rotation: c(),
            keys: c(),
            redis: None,
            secret_strength: c(),
            tls: c(),
            webhook_lag: c(),
        }
    }

    #[test]
    fn the_worst_check_decides_and_the_body_is_in_name_order() {
        let mut checks = all(Status::Healthy);
        assert_eq!(checks.overall(), Status::Healthy);
        checks.tls = Check::degraded("x");
        assert_eq!(checks.overall(), Status::Degraded);
        checks.redis = Some(Check::critical("down"));
        assert_eq!(checks.overall(), Status::Critical);
        let body = serde_json::to_string(&Health {
            overall_status: checks.overall(),
            checks,
        })
        .expect("serialises");
        assert!(body.starts_with(r#"{"checks":{"alert_sink":{"detail":"d","status":"healthy"},"#));
        assert!(
            body.contains(r#""redis":{"detail":"down","status":"critical"},"secret_strength""#)
        );
        assert!(body.ends_with(
            r#""webhook_lag":{"detail":"d","status":"healthy"}},"overall_status":"critical"}"#
        ));
        let without = serde_json::to_value(all(Status::Healthy)).expect("serialises");
        assert!(without.get("redis").is_none(), "redis only in a cluster");
    }
}
