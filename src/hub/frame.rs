//! SSE wire frames and stream ids.
//!
//! Every frame is complete (`…\n\n`) so frames can be concatenated into one
//! write. An event is serialised once here and the same `Bytes` goes to every
//! subscriber. Ids are `<epoch>-<seq>`: the epoch is random per hub start, so
//! an id from before a restart is recognised and answered with a reset.

use std::io::Write;

use bytes::Bytes;
use serde::Serialize;

use super::{HubError, ResetReason};
use crate::event::{Event, EventData};

/// The heartbeat comment.
pub(super) const PING: Bytes = Bytes::from_static(b": ping\n\n");

/// One published event on the shared ring.
pub(super) struct Frame {
    /// The raw room name (`Event::room_key`), for authorisation and `?room=`.
    pub(super) room: Option<Box<str>>,
    /// The complete SSE frame.
    pub(super) bytes: Bytes,
}

/// The `data` JSON of an event frame, as SPEC "SSE stream" shows it.
#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    seq: u64,
    r#type: &'static str,
    event: &'a str,
    timestamp: i64,
    data: &'a EventData,
}

/// Serialises `event` once into its SSE frame.
pub(super) fn event_frame(epoch: &str, seq: u64, event: &Event, now_ms: i64) -> Frame {
    // An event name is one of the broadcast names, but a line break in it would
    // let one event forge another frame, so it is checked rather than trusted.
    let name = if event.event.contains(['\r', '\n']) {
        "unknown"
    } else {
        event.event.as_str()
    };
    let envelope = Envelope {
        id: &event.id,
        seq,
        r#type: "livekit",
        event: name,
        timestamp: now_ms,
        data: &event.data,
    };
    let mut out = Vec::with_capacity(320);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "id: {epoch}-{seq}\nevent: {name}\ndata: ");
    // serde_json escapes control characters inside strings, so `data` stays one line.
    serde_json::to_writer(&mut out, &envelope)
        .expect("plain derived structs serialise without error");
    out.extend_from_slice(b"\n\n");
    Frame {
        room: event.room_key.as_deref().map(Box::from),
        bytes: Bytes::from(out),
    }
}

/// A snapshot frame: `data` is already-serialised JSON; its id is the last
/// published seq, so resuming from it continues right after the snapshot.
pub(super) fn snapshot_frame(out: &mut Vec<u8>, epoch: &str, seq: u64, json: &[u8]) {
    let _ = write!(out, "id: {epoch}-{seq}\nevent: snapshot\ndata: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
}

/// A reset frame. It has no `id:` line, so the client keeps the last id it
/// really received (the snapshot that follows brings the new one).
pub(super) fn reset_frame(reason: ResetReason) -> Bytes {
    Bytes::from(format!(
        "event: reset\ndata: {{\"reason\":\"{}\"}}\n\n",
        reason.as_str()
    ))
}

/// Parses a client's last event id into a seq of this epoch.
pub(super) fn parse_id(epoch: &str, id: &str) -> Result<u64, HubError> {
    let (their_epoch, seq) = id.trim().split_once('-').ok_or(HubError::MalformedId)?;
    let seq = seq.parse::<u64>().map_err(|_| HubError::MalformedId)?;
    if their_epoch.is_empty() || !their_epoch.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HubError::MalformedId);
    }
    if their_epoch != epoch {
        return Err(HubError::OtherEpoch);
    }
    Ok(seq)
}

/// Which rooms a subscriber receives: `None` means every frame (including
/// frames without a room); `Some(list)` means frames whose raw room name is in
/// the list. Built once per subscriber, so checking a frame allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Filter(Option<Box<[Box<str>]>>);

impl Filter {
    /// Combines what the token permits with the `?room=` filter.
    pub(super) fn new(access: &super::Access, rooms: &[String]) -> Self {
        let boxed = |names: &mut dyn Iterator<Item = &String>| -> Box<[Box<str>]> {
            names.map(|n| Box::from(n.as_str())).collect()
        };
        match access {
            super::Access::All if rooms.is_empty() => Self(None),
            super::Access::All => Self(Some(boxed(&mut rooms.iter()))),
            super::Access::Rooms(permitted) if rooms.is_empty() => {
                Self(Some(boxed(&mut permitted.iter())))
            }
            super::Access::Rooms(permitted) => Self(Some(boxed(
                &mut rooms.iter().filter(|r| permitted.contains(r)),
            ))),
        }
    }

    /// True when a frame of `room` goes to this subscriber.
    pub(super) fn admits(&self, room: Option<&str>) -> bool {
        match (&self.0, room) {
            (None, _) => true,
            (Some(list), Some(room)) => list.iter().any(|r| &**r == room),
            (Some(_), None) => false,
        }
    }

    /// The one room this subscriber receives, when it is exactly one: such
    /// a subscriber waits on that room alone and is not woken for others.
    pub(super) fn single_room(&self) -> Option<&str> {
        match self.0.as_deref() {
            Some([room]) => Some(room),
            _ => None,
        }
    }

    /// True when no filter applies (the shared cached snapshot fits).
    pub(super) fn is_everything(&self) -> bool {
        self.0.is_none()
    }
}
