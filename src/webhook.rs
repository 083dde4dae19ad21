//! Webhook ingest. (Lead's interface stub; the real receiver lands from the webhook branch.)

use std::net::IpAddr;

use crate::audit::Audit;
use crate::clock::Clock;
use crate::config::Config;
use crate::event::Event;
use crate::keys::KeyRing;
use crate::pepper::Pepper;

/// Receiver settings.
#[derive(Clone, Debug)]
pub struct ReceiverSettings {
    /// Largest body.
    pub max_body_bytes: usize,
}

impl ReceiverSettings {
    /// From the configuration.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            max_body_bytes: cfg.webhooks.max_body_bytes,
        }
    }
}

/// Seen event ids.
#[derive(Clone, Debug)]
pub struct ReplayStore;

impl ReplayStore {
    /// In memory.
    pub fn memory(cap: usize) -> Self {
        let _ = cap;
        Self
    }
}

/// What became of a webhook.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    /// Broadcast this.
    Broadcast(Event),
    /// Seen before.
    Duplicate,
    /// Unknown event name.
    Ignored {
        /// The name.
        event: String,
    },
}

/// A refused webhook.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Bad signature.
    #[error("invalid signature")]
    Unauthorized,
}

impl WebhookError {
    /// HTTP status.
    pub fn status(&self) -> u16 {
        401
    }
    /// Stable code.
    pub fn code(&self) -> &'static str {
        "invalid_signature"
    }
    /// The key id named by the token, if any.
    pub fn key_id(&self) -> Option<&str> {
        None
    }
}

/// The receiver.
#[derive(Clone, Debug)]
pub struct Receiver {
    settings: ReceiverSettings,
}

impl Receiver {
    /// A receiver.
    pub fn new(
        keys: KeyRing,
        pepper: Pepper,
        audit: Audit,
        clock: Clock,
        settings: ReceiverSettings,
        replay: ReplayStore,
    ) -> Self {
        let _ = (keys, pepper, audit, clock, replay);
        Self { settings }
    }
    /// Largest body.
    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }
    /// Verifies, decodes and normalises one delivery.
    pub fn receive(
        &self,
        source_ip: IpAddr,
        authorization: &[&str],
        body: &[u8],
    ) -> Result<Outcome, WebhookError> {
        let _ = (source_ip, authorization, body);
        Err(WebhookError::Unauthorized)
    }
}
