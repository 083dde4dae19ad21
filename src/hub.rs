//! SSE fan-out. (Lead's interface stub; the real hub lands from the hub branch.)

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use crate::config::Config;
use crate::event::Event;

/// Hub settings.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Events kept.
    pub history_size: usize,
}

impl HubSettings {
    /// From the configuration.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            history_size: cfg.realtime.history_size,
        }
    }
}

/// What a subscriber may watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Every room.
    All,
    /// These rooms only.
    Rooms(Vec<String>),
}

/// A subscription request.
#[derive(Clone, Debug)]
pub struct SubscribeRequest {
    /// Permission.
    pub access: Access,
    /// `?room=` filter.
    pub rooms: Vec<String>,
    /// Resume point.
    pub last_event_id: Option<String>,
    /// Token expiry, Unix ms.
    pub deadline_ms: Option<i64>,
    /// Now, Unix ms.
    pub now_ms: i64,
}

/// The hub handle.
#[derive(Clone, Debug)]
pub struct Hub {
    _settings: Arc<HubSettings>,
}

impl Hub {
    /// A hub.
    pub fn new(settings: HubSettings) -> Self {
        Self {
            _settings: Arc::new(settings),
        }
    }

    /// Publishes an event.
    pub fn publish(&self, event: Event, now_ms: i64) -> u64 {
        let _ = (event, now_ms);
        0
    }

    /// Subscribes.
    pub fn subscribe(&self, req: SubscribeRequest) -> Subscription {
        let _ = req;
        Subscription {
            first: Some(Bytes::from_static(
                b"id: 0-0\nevent: snapshot\ndata: {\"rooms\":[]}\n\n",
            )),
        }
    }

    /// The snapshot as JSON.
    pub fn snapshot_json(&self, access: &Access, rooms: &[String]) -> serde_json::Value {
        let _ = (access, rooms);
        serde_json::json!({"rooms": []})
    }

    /// Ends every stream.
    pub fn close(&self) {}
}

/// A subscriber's stream.
pub struct Subscription {
    first: Option<Bytes>,
}

impl Stream for Subscription {
    type Item = Result<Bytes, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.first.take() {
            Some(b) => Poll::Ready(Some(Ok(b))),
            None => Poll::Pending,
        }
    }
}
