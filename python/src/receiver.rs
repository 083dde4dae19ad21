//! `warden.WebhookReceiver`'s native half: `warden::webhook::Receiver`, the
//! pipeline behind the gateway's `POST /webhooks/livekit` — signature over
//! the exact bytes first, then UTF-8, depth, JSON, schema, sanitising,
//! minimising — and the replay window the gateway's ingest applies next
//! (`ingest/publish.rs`), returning the event as the SSE stream's `data`
//! shows it.

use std::net::IpAddr;
use std::str::FromStr;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use serde_json::json;

use warden::audit::Audit;
use warden::clock::Clock;
use warden::guard::UNKNOWN_CLIENT;
use warden::keys::KeyRing;
use warden::pepper::Pepper;
use warden::redact::{Masker, Secret};
use warden::webhook::{self, Outcome, ReceiverSettings, ReplayStore, Seen};

use crate::core::Core;
use crate::{WardenError, WebhookError, guarded};

/// Event ids remembered for replay detection (in memory, per receiver).
const REPLAY_CAP: usize = 100_000;

/// A webhook receiver (see the module doc).
#[pyclass(module = "warden._native", frozen)]
pub struct Receiver {
    rx: webhook::Receiver,
    seen: ReplayStore,
    audit: Audit,
    clock: Clock,
    masker: Masker,
}

#[pymethods]
impl Receiver {
    /// Verifies with `keys` (`(key id, secret)` pairs) when given, else with
    /// `core`'s key ring; settings, audit log and pepper are `core`'s.
    #[new]
    #[pyo3(signature = (core, keys=None))]
    fn new(core: PyRef<'_, Core>, keys: Option<Vec<(String, String)>>) -> PyResult<Self> {
        guarded(|| {
            let settings = ReceiverSettings::from_config(&core.config);
            let (ring, masker) = match keys {
                Some(pairs) => {
                    if pairs
                        .iter()
                        .any(|(id, secret)| id.is_empty() || secret.is_empty())
                    {
                        return Err(PyValueError::new_err(
                            "webhook keys need a key id and a secret",
                        ));
                    }
                    let pairs: Vec<(String, Secret)> = pairs
                        .into_iter()
                        .map(|(id, s)| (id, Secret::new(s)))
                        .collect();
                    let masker = Masker::new();
                    masker.set_known_secrets(pairs.iter().map(|(_, s)| s));
                    (KeyRing::from_keys(pairs), masker)
                }
                None => (core.keys.clone(), core.masker.clone()),
            };
            // Identities are hashed as the gateway hashes them; without
            // hashing no pepper is needed, so none is read or created.
            let pepper = if settings.hash_identities {
                core.pepper()?
            } else {
                Pepper::random()
            };
            let rx = webhook::Receiver::new(
                ring,
                pepper,
                core.audit.clone(),
                core.clock.clone(),
                settings,
            );
            Ok(Self {
                rx,
                seen: ReplayStore::memory(REPLAY_CAP),
                audit: core.audit.clone(),
                clock: core.clock.clone(),
                masker,
            })
        })
    }

    /// The event as JSON, or `None` for a delivery to acknowledge without
    /// acting on it (a retry of an event already received, or an event kind
    /// Warden does not broadcast). Refusals raise `WebhookError` with the
    /// gateway's `code` and HTTP `status`.
    #[pyo3(signature = (body, auth, source_ip=None))]
    fn receive(
        &self,
        py: Python<'_>,
        body: &[u8],
        auth: &str,
        source_ip: Option<&str>,
    ) -> PyResult<Option<String>> {
        guarded(|| {
            let ip = match source_ip {
                Some(s) => IpAddr::from_str(s.trim())
                    .map_err(|_| PyValueError::new_err("source_ip is not an IP address"))?,
                None => UNKNOWN_CLIENT,
            };
            let event = match self.rx.receive(ip, &[auth], body) {
                Ok(Outcome::Event(event, digest)) => {
                    let window = self.rx.replay_window();
                    match self
                        .seen
                        .check(&event.id, digest, self.clock.now_ms(), window)
                    {
                        Seen::New => event,
                        Seen::Retry => return Ok(None),
                        Seen::Replay => {
                            self.audit.record(webhook::replay::replay_event(ip, &event));
                            return Ok(None);
                        }
                    }
                }
                Ok(Outcome::Ignored { .. }) => return Ok(None),
                Err(e) => {
                    let err = WebhookError::new_err(self.masker.mask(&e.to_string()).into_owned());
                    let value = err.value(py);
                    value.setattr("code", e.code())?;
                    // The status the gateway answers, from the gateway's one error map.
                    let status = warden::http::error::ApiError::from(e).status().as_u16();
                    value.setattr("status", status)?;
                    return Err(err);
                }
            };
            // The envelope of the SSE frame (`hub/frame.rs`) without the stream's `seq`.
            let doc = json!({
                "id": event.id,
                "type": "livekit",
                "event": event.event,
                "timestamp": warden::clock::Clock::system().now_ms(),
                "data": event.data,
            });
            serde_json::to_string(&doc)
                .map(Some)
                .map_err(|e| WardenError::new_err(e.to_string()))
        })
    }
}
