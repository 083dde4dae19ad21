//! Ingest: one call takes a LiveKit delivery from the guard to the stream.
//!
//! [`Ingest::accept`] is everything behind `POST /webhooks/livekit` but the
//! HTTP: in order,
//!
//! 1. the guard's webhook policy ([`Guard::check_webhook`]: allowed sources,
//!    blocklist, rate limit);
//! 2. the kill switch ([`Ingest::set_enabled`]);
//! 3. the body, read by the caller's future only now (capped at
//!    [`Ingest::max_body_bytes`]);
//! 4. a locked-out source passes only with a signature that verifies;
//!    whatever it sends that does not is refused as [`IngestError::LockedOut`]
//!    (LiveKit retries that answer and drops other refusals);
//! 5. verification, decoding and normalising ([`Receiver::receive`]); the body
//!    digest the verification computed travels on to the dedupe;
//! 6. dedupe and publishing through the one [`Publisher`]: this node's replay
//!    store and hub, or the cluster's shared stream (whose publish script
//!    dedupes); a repeat with another body is recorded as `WEBHOOK_REPLAY`
//!    ([`crate::webhook::replay::replay_event`]).
//!
//! Every outcome is counted by its label ([`Accepted::as_str`],
//! [`IngestError::code`]). Which HTTP status each refusal gets is
//! `http/error.rs`'s business.

mod error;
mod publish;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;

pub use self::error::{BodyError, IngestError};
pub use self::publish::Publisher;

use crate::audit::{Audit, MinuteCounter};
use crate::clock::Clock;
use crate::event::Event;
use crate::guard::Guard;
use crate::metrics::Metrics;
use crate::webhook::lag::SenderLag;
use crate::webhook::{Outcome, Receiver, WebhookError};

/// What became of a delivery that was not refused (all answered 200).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// A new event, stored (or queued in the cluster's stream).
    Accepted,
    /// An id already processed within the replay window: not broadcast again.
    Duplicate,
    /// An event Warden does not broadcast (acknowledged so LiveKit does not retry).
    Ignored,
}

impl Accepted {
    /// The outcome's name: the answer's `status` and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
        }
    }
}

/// What [`Ingest::new`] wires together.
pub struct Parts {
    /// The webhook policy and lockouts.
    pub guard: Guard,
    /// Verification, decoding, normalising.
    pub receiver: Receiver,
    /// Where new events go.
    pub publisher: Publisher,
    /// Where `WEBHOOK_REPLAY` goes.
    pub audit: Audit,
    /// Webhook counters and timings.
    pub metrics: Metrics,
    /// Time source.
    pub clock: Clock,
}

struct Inner {
    parts: Parts,
    /// The kill switch (true = webhooks processed).
    enabled: AtomicBool,
    lag: SenderLag,
    minutes: MinuteCounter,
}

/// The ingest pipeline; a cheap `Clone` handle.
#[derive(Clone)]
pub struct Ingest {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("enabled", &self.enabled())
            .field("publisher", &self.inner.parts.publisher)
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// A pipeline over `parts`, processing webhooks.
    pub fn new(parts: Parts) -> Self {
        Self {
            inner: Arc::new(Inner {
                parts,
                enabled: AtomicBool::new(true),
                lag: SenderLag::default(),
                minutes: MinuteCounter::default(),
            }),
        }
    }

    /// The largest body accepted: cap the read at this.
    pub fn max_body_bytes(&self) -> usize {
        self.inner.parts.receiver.max_body_bytes()
    }

    /// True while webhooks are processed.
    pub fn enabled(&self) -> bool {
        self.inner.enabled.load(Ordering::Relaxed)
    }

    /// Pauses (`false`) or resumes webhook processing; returns the previous state.
    pub fn set_enabled(&self, enabled: bool) -> bool {
        self.inner.enabled.swap(enabled, Ordering::SeqCst)
    }

    /// How old events are when they arrive.
    pub fn sender_lag(&self) -> &SenderLag {
        &self.inner.lag
    }

    /// Webhooks accepted per minute over the last hour (the dashboard's timeline).
    pub fn minutes(&self) -> &MinuteCounter {
        &self.inner.minutes
    }

    /// Writes the ids still waiting for the disk (at shutdown).
    pub fn flush(&self) {
        self.inner.parts.publisher.flush();
    }

    /// Takes one delivery from `ip` (see the module docs). `authorization`
    /// holds every `Authorization` value of the request (more than one is
    /// refused); `body` is awaited only once the guard and the kill switch
    /// let the delivery through.
    pub async fn accept<B>(
        &self,
        ip: IpAddr,
        authorization: &[&str],
        body: B,
    ) -> Result<Accepted, IngestError>
    where
        B: Future<Output = Result<Bytes, BodyError>>,
    {
        let started = Instant::now();
        let result = self.process(ip, authorization, body, started).await;
        let p = &self.inner.parts;
        match &result {
            Ok(a) => p.metrics.webhook(a.as_str()),
            Err(e) => p.metrics.webhook(e.code()),
        }
        if matches!(result, Ok(Accepted::Accepted)) {
            self.inner.minutes.record(p.clock.now_ms());
        }
        result
    }

    async fn process<B>(
        &self,
        ip: IpAddr,
        auth: &[&str],
        body: B,
        started: Instant,
    ) -> Result<Accepted, IngestError>
    where
        B: Future<Output = Result<Bytes, BodyError>>,
    {
        let p = &self.inner.parts;
        let allowed = p.guard.check_webhook(ip).map_err(IngestError::Refused)?;
        let locked = allowed.locked_until_ms;
        if !self.enabled() {
            return Err(IngestError::Paused);
        }
        // From a locked-out source, before its signature was verified: the lockout.
        let unless_locked = |err| match locked {
            Some(until) => IngestError::LockedOut(p.guard.webhook_lockout(ip, until)),
            None => err,
        };
        let bytes = body.await.map_err(|e| {
            unless_locked(match e {
                BodyError::TooLarge => IngestError::BodyTooLarge {
                    limit: self.max_body_bytes(),
                },
                BodyError::Unreadable => IngestError::BodyUnreadable,
            })
        })?;
        if let Some(until) = locked
            && !p.receiver.signature_verifies(auth, &bytes)
        {
            return Err(IngestError::LockedOut(p.guard.webhook_lockout(ip, until)));
        }
        match p.receiver.receive(ip, auth, &bytes) {
            Ok(Outcome::Event(event, digest)) => self.publish(ip, event, digest, started).await,
            Ok(Outcome::Ignored { event }) => {
                tracing::info!(event = %event, reason = "not an event Warden broadcasts; answered 200", "webhook ignored");
                Ok(Accepted::Ignored)
            }
            Err(WebhookError::Signature(cause)) => Err(IngestError::Unauthorized {
                cause,
                presented: !auth.is_empty(),
                claimed_key: auth.first().and_then(|a| {
                    crate::token::claimed_key_id(a.trim_start_matches("Bearer ").trim())
                }),
            }),
            Err(e) => Err(IngestError::Webhook(e)),
        }
    }

    /// Records the event's sender lag; returns it.
    fn lag(&self, event: &Event) -> Option<i64> {
        let p = &self.inner.parts;
        let lag = self.inner.lag.record(event.created_at_ms, p.clock.now_ms());
        if let Some(lag) = lag {
            p.metrics.webhook_lag(lag);
        }
        lag
    }
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
    fn of(event: &Event, lag_ms: Option<i64>) -> Option<Self> {
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

    fn write(self, id: &str, started: Instant) {
        tracing::info!(
            event = %self.event,
            room = %self.room,
            webhook.id = %id,
            lag_ms = self.lag_ms.unwrap_or(-1),
            duration_ms = crate::telemetry::rounded_ms(started.elapsed()),
            "webhook accepted"
        );
    }
}
