//! `Core`: one loaded configuration and everything built from it — the key
//! ring, the masker that knows its secrets, the guard and an in-memory audit
//! log — the native half of `warden.SecurityManager`.
//!
//! Loaded as `warden serve` loads them: the same YAML file (`config_path`,
//! else `$LIVEKIT_SECURITY_CONFIG`, else `config/security.yaml`), the same
//! environment (`LIVEKIT_API_KEY`/`_SECRET`, `LIVEKIT_KEYS`, `WARDEN_*`) and
//! the same key file; unlike `serve` it never creates a key. The deployment
//! pepper (`<storage dir>/pepper`) is read, or created as `serve` creates it,
//! only when something needs it (hashing a key or an identity).

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::{Value, json};

use warden::audit::{Audit, EventType, NewEvent, Severity};
use warden::clock::{Clock, rfc3339_ms};
use warden::config::{self, Config, Env};
use warden::guard::Guard;
use warden::keys::{self, KeyRing, KeyState};
use warden::pepper::Pepper;
use warden::redact::Masker;
use warden::token::{self, TokenPolicy, VideoGrant};
use warden::transport::{self, OutboundPolicy};

use crate::{ConfigError, TokenError, WardenError, guarded};

/// Recent events kept for `get_security_status()`.
const RECENT_EVENTS: usize = 20;

/// The native security manager (see the module doc).
#[pyclass(module = "warden._native", frozen)]
pub struct Core {
    pub(crate) config: Config,
    pub(crate) keys: KeyRing,
    pub(crate) masker: Masker,
    pub(crate) clock: Clock,
    pub(crate) audit: Audit,
    guard: Guard,
    outbound: OutboundPolicy,
    tokens: TokenPolicy,
    pepper: Mutex<Option<Pepper>>,
}

impl Core {
    /// An exception of type `E` whose message is masked: no secret leaves in one.
    pub(crate) fn error<E: pyo3::PyTypeInfo>(&self, message: impl std::fmt::Display) -> PyErr {
        PyErr::new::<E, _>(self.masker.mask(&message.to_string()).into_owned())
    }

    /// The deployment pepper, read or created on first use.
    pub(crate) fn pepper(&self) -> PyResult<Pepper> {
        let mut slot = self.pepper.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let dir = self.config.data_dir();
        let p = Pepper::load_or_create(&dir)
            .map_err(|e| self.error::<ConfigError>(format!("pepper in {}: {e}", dir.display())))?;
        *slot = Some(p.clone());
        Ok(p)
    }

    fn ip(&self, ip: &str) -> PyResult<IpAddr> {
        IpAddr::from_str(ip.trim())
            .map(|a| a.to_canonical())
            .map_err(|_| PyValueError::new_err("not an IP address"))
    }

    fn verify(&self, token: &str) -> Result<token::Claims, token::TokenError> {
        token::verify(token.trim(), &self.keys, self.clock.now_ms(), &self.tokens)
    }
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (config_path=None))]
    fn new(config_path: Option<PathBuf>) -> PyResult<Self> {
        guarded(|| {
            let patterns = Masker::new();
            let fail = |e: &dyn std::fmt::Display| {
                ConfigError::new_err(patterns.mask(&e.to_string()).into_owned())
            };
            let config =
                config::load(config_path.as_deref(), &Env::from_process()).map_err(|e| fail(&e))?;
            let clock = Clock::system();
            let keys = KeyRing::open(&config, &clock).map_err(|e| fail(&e))?;
            let masker = Masker::new();
            let secrets = keys.all_secrets();
            masker.set_known_secrets(secrets.iter().chain(config.alerts.signing_secret.iter()));
            let audit = Audit::in_memory();
            let guard = Guard::new(&config, clock.clone(), audit.clone());
            Ok(Self {
                outbound: OutboundPolicy::from_config(&config),
                tokens: TokenPolicy::from_config(&config),
                config,
                keys,
                masker,
                clock,
                audit,
                guard,
                pepper: Mutex::new(None),
            })
        })
    }

    /// The configuration file in use, if any.
    #[getter]
    fn config_source(&self) -> Option<PathBuf> {
        self.config.source.clone()
    }

    /// Masks every secret in `text` (patterns and the known API secrets).
    fn mask(&self, text: &str) -> PyResult<String> {
        guarded(|| Ok(self.masker.mask(text).into_owned()))
    }

    /// Why `key` is not `API` + 12 base57 characters, or `None`.
    fn api_key_format_error(&self, key: &str) -> PyResult<Option<String>> {
        guarded(|| {
            Ok(keys::validate_api_key_format(key)
                .err()
                .map(|e| e.to_string()))
        })
    }

    /// HMAC-SHA256 of `key` with the deployment pepper, hex.
    fn hash_api_key_for_storage(&self, key: &str) -> PyResult<String> {
        guarded(|| Ok(keys::hash_api_key_for_storage(&self.pepper()?, key)))
    }

    /// ws → wss, http → https; other URLs unchanged.
    fn enforce_wss_connections(&self, url: &str) -> PyResult<String> {
        guarded(|| {
            transport::enforce_wss_connections(url).map_err(|e| self.error::<PyValueError>(e))
        })
    }

    /// Why `url` may not be dialled under `wss_enforcement`, or `None`.
    fn connection_protocol_error(&self, url: &str) -> PyResult<Option<String>> {
        guarded(|| {
            Ok(self
                .outbound
                .validate_connection_protocol(url)
                .err()
                .map(|e| self.masker.mask(&e.to_string()).into_owned()))
        })
    }

    /// Why `token` is not a well-formed JWT, or `None`.
    fn jwt_structure_error(&self, token: &str) -> PyResult<Option<String>> {
        guarded(|| {
            Ok(token::validate_jwt_token_structure(token)
                .err()
                .map(|e| e.to_string()))
        })
    }

    /// The permissions of `required` that `grants_json` (a `video` grant,
    /// LiveKit names) lacks; `ValueError` for a name LiveKit does not have.
    fn missing_grants(&self, grants_json: &str, required: Vec<String>) -> PyResult<Vec<String>> {
        guarded(|| {
            let grant: VideoGrant = serde_json::from_str(grants_json).map_err(|e| {
                PyValueError::new_err(format!("grants are not a LiveKit video grant: {e}"))
            })?;
            let names: Vec<&str> = required.iter().map(String::as_str).collect();
            match token::validate_access_rights(&grant, &names) {
                Ok(()) => Ok(Vec::new()),
                Err(token::Denied::Missing { missing }) => Ok(missing),
                Err(e @ token::Denied::Unknown(_)) => Err(PyValueError::new_err(e.to_string())),
            }
        })
    }

    /// Verifies an access token now; its claims as JSON, or `TokenError`.
    fn verify_token(&self, token: &str) -> PyResult<String> {
        guarded(|| {
            let claims = self
                .verify(token)
                .map_err(|e| self.error::<TokenError>(e))?;
            serde_json::to_string(&claims).map_err(|e| self.error::<WardenError>(e))
        })
    }

    /// `security_required`: verifies `token`, then the `required` grants.
    /// A bad token is an authentication failure of `ip` (counts towards its
    /// lockout) and raises `TokenError`; missing grants are recorded as
    /// `UNAUTHORIZED_ACCESS` and returned, with the claims as JSON.
    #[pyo3(signature = (token, required, ip, what))]
    fn authorize(
        &self,
        token: &str,
        required: Vec<String>,
        ip: &str,
        what: &str,
    ) -> PyResult<(String, Vec<String>)> {
        guarded(|| {
            let ip = self.ip(ip)?;
            let claims = match self.verify(token) {
                Ok(c) => c,
                Err(e) => {
                    self.guard.record_auth_failure(ip, None, None);
                    return Err(self.error::<TokenError>(e));
                }
            };
            let names: Vec<&str> = required.iter().map(String::as_str).collect();
            let missing = match token::validate_access_rights(&claims.grants.video, &names) {
                Ok(()) => Vec::new(),
                Err(token::Denied::Missing { missing }) => missing,
                Err(e @ token::Denied::Unknown(_)) => {
                    return Err(PyValueError::new_err(e.to_string()));
                }
            };
            if missing.is_empty() {
                self.guard.record_auth_success(ip, Some(&claims.iss));
            } else if self.config.access_validation.log_access_attempts {
                let reason = format!("missing grants: {}", missing.join(", "));
                self.audit.record(
                    NewEvent::new(EventType::UnauthorizedAccess, Severity::Medium)
                        .ip(ip)
                        .key(claims.iss.clone())
                        .identity(self.pepper()?.hash_identity(&claims.sub))
                        .detail("route", what)
                        .detail("reason", reason),
                );
            }
            let json = serde_json::to_string(&claims).map_err(|e| self.error::<WardenError>(e))?;
            Ok((json, missing))
        })
    }

    /// Records an authentication attempt from `ip` (failures lock it out as
    /// the gateway's `suspicious_activity` rules say). The identity is
    /// stored hashed with the deployment pepper, never as given.
    #[pyo3(signature = (ip, success, user_identity=None))]
    fn record_auth_attempt(
        &self,
        ip: &str,
        success: bool,
        user_identity: Option<&str>,
    ) -> PyResult<()> {
        guarded(|| {
            let ip = self.ip(ip)?;
            let hashed = match user_identity.filter(|i| !i.is_empty()) {
                Some(i) => Some(self.pepper()?.hash_identity(i)),
                None => None,
            };
            self.guard
                .record_auth_attempt(ip, success, hashed.as_deref());
            Ok(())
        })
    }

    /// Records one handled API call of `endpoint` (a route name, never a raw
    /// URI) from `ip`; `UNUSUAL_API_USAGE` when the client passes
    /// `unusual_usage_threshold` calls in an hour or jumps far above its baseline.
    fn record_api_usage(&self, endpoint: &str, ip: &str, response_time: f64) -> PyResult<()> {
        guarded(|| {
            let took = Duration::try_from_secs_f64(response_time)
                .map_err(|_| PyValueError::new_err("response_time must be seconds >= 0"))?;
            self.guard.record_api_usage(endpoint, self.ip(ip)?, took);
            Ok(())
        })
    }

    /// True when an active key Warden owns is older than `rotation_interval_hours`.
    fn is_key_rotation_due(&self) -> PyResult<bool> {
        guarded(|| {
            Ok(self
                .keys
                .key_infos(self.clock.now_ms())
                .iter()
                .any(|k| k.rotation_due))
        })
    }

    /// True when `ip` is on the blocklist or locked out now.
    fn is_ip_blocked(&self, ip: &str) -> PyResult<bool> {
        guarded(|| Ok(self.guard.is_blocked(self.ip(ip)?)))
    }

    /// This process's guard state, keys (never secrets) and recent events, as JSON.
    fn status(&self) -> PyResult<String> {
        guarded(|| {
            let now = self.clock.now_ms();
            let infos = self.keys.key_infos(now);
            let blocked: Vec<Value> = self
                .guard
                .blocked()
                .iter()
                .map(|b| json!({"client": b.client, "until": rfc3339_ms(b.until_ms)}))
                .collect();
            let audit_err = |e| self.error::<WardenError>(e);
            let recent = self.audit.recent_events(RECENT_EVENTS).map_err(audit_err)?;
            let counts = self.audit.counts(now).map_err(audit_err)?;
            let overall = if !infos.iter().any(|k| k.state == KeyState::Active) {
                "critical"
            } else if infos.iter().any(|k| k.rotation_due) || !blocked.is_empty() {
                "degraded"
            } else {
                "healthy"
            };
            let stats = self.guard.stats();
            let doc = json!({
                "overall_status": overall,
                "source": "local",
                "config": self.config.source.as_ref().map(|p| p.display().to_string()),
                "keys": infos.iter().map(key_summary).collect::<Vec<_>>(),
                "blocked": blocked,
                "guard": {"tracked_clients": stats.tracked_clients, "active_lockouts": stats.active_lockouts,
                    "auth_failures_total": stats.auth_failures_total, "lockouts_total": stats.lockouts_total,
                    "api_requests_total": stats.api_requests_total},
                "counts": counts,
                "recent_events": recent.iter().map(event_summary).collect::<Vec<_>>(),
            });
            serde_json::to_string(&doc).map_err(|e| self.error::<WardenError>(e))
        })
    }

    /// A short-lived admin token (`roomAdmin` + `roomCreate`) signed with
    /// this configuration's signing key, for asking a running gateway.
    fn service_token(&self) -> PyResult<String> {
        guarded(|| {
            token::mint_service(
                &self.keys,
                "warden-python",
                json!({"roomAdmin": true, "roomCreate": true}),
                self.clock.now_ms(),
            )
            .map_err(|e| self.error::<TokenError>(e))
        })
    }

    /// A token minted with this configuration's signing key (see `mint.rs`).
    #[pyo3(signature = (identity, grants_json, ttl_secs=None))]
    fn mint(&self, identity: &str, grants_json: &str, ttl_secs: Option<u64>) -> PyResult<String> {
        guarded(|| crate::mint::mint(&self.keys, &self.masker, identity, grants_json, ttl_secs))
    }

    fn __repr__(&self) -> String {
        let n = self.keys.key_infos(self.clock.now_ms()).len();
        match &self.config.source {
            Some(p) => format!(
                "<warden.SecurityManager config={:?} keys={n}>",
                p.display().to_string()
            ),
            None => format!("<warden.SecurityManager config=defaults keys={n}>"),
        }
    }
}

/// A key as the status lists it: id, state, fingerprint; never the secret.
fn key_summary(k: &warden::keys::KeyInfo) -> Value {
    json!({"id": k.id, "state": k.state.name(), "fingerprint": k.fingerprint,
        "created": k.created_ms.map(rfc3339_ms), "rotation_due": k.rotation_due})
}

/// A stored event as the status lists it: what, when, from where; no chain fields.
fn event_summary(e: &warden::audit::StoredEvent) -> Value {
    json!({
        "id": e.id,
        "type": e.event.kind.as_str(),
        "severity": e.event.severity,
        "timestamp": e.timestamp,
        "source_ip": e.event.source_ip,
        "identity": e.event.identity,
        "key_id": e.event.key_id,
        "details": e.event.details,
    })
}
