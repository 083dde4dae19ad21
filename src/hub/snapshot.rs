//! The live room state the `snapshot` event and `GET /api/rooms` show.
//!
//! Every entity is keyed by its LiveKit id (room sid, participant sid, track
//! sid, egress and ingress id), so applying an event is an idempotent upsert
//! or remove: a repeated event changes nothing, a missed one leaves at worst a
//! stale entry (reconciliation fixes those), and a participant or track event
//! for a room never seen creates what it names. Ended egress and ingress and
//! finished rooms are removed, so the state is bounded by what is live.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::frame::Filter;
use crate::event::{EgressInfo, Event, IngressInfo, ParticipantInfo, RoomInfo, TrackInfo};

/// All live rooms, by sid (a `BTreeMap` so output order is stable).
#[derive(Debug, Default, Clone)]
pub(super) struct Rooms {
    by_sid: BTreeMap<String, Room>,
    /// Sids of rooms changed since [`Rooms::take_dirty`] (only tracked for the
    /// journal's copy, which persists exactly those rooms).
    dirty: Option<BTreeSet<String>>,
}

/// One room's whole state; also its persisted form (the journal stores one
/// JSON row per live room).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct Room {
    /// Raw room name, compared with the token's grant; `None` = only full access sees it.
    key: Option<String>,
    info: RoomInfo,
    participants: BTreeMap<String, ParticipantInfo>,
    egress: BTreeMap<String, EgressInfo>,
    ingress: BTreeMap<String, IngressInfo>,
}

/// The snapshot's `data` object.
#[derive(Serialize)]
pub(super) struct SnapshotView<'a> {
    rooms: Vec<RoomView<'a>>,
}

#[derive(Serialize)]
struct RoomView<'a> {
    sid: &'a str,
    name: &'a str,
    num_participants: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    creation_time: Option<i64>,
    participants: Vec<ParticipantView<'a>>,
    egress: Vec<&'a EgressInfo>,
    ingress: Vec<&'a IngressInfo>,
}

#[derive(Serialize)]
struct ParticipantView<'a> {
    sid: &'a str,
    identity: &'a str,
    name: &'a str,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    joined_at: Option<i64>,
    tracks: &'a [TrackInfo],
}

impl Rooms {
    /// Rooms restored from their persisted rows; `track_dirty` for the
    /// journal's copy (see [`Rooms::take_dirty`]).
    pub(super) fn restore(rooms: Vec<Room>, track_dirty: bool) -> Self {
        Self {
            by_sid: rooms.into_iter().map(|r| (r.info.sid.clone(), r)).collect(),
            dirty: track_dirty.then(BTreeSet::new),
        }
    }

    /// The sids of the rooms changed since the last call, each with its
    /// current state (`None`: the room is gone).
    pub(super) fn take_dirty(&mut self) -> Vec<(String, Option<&Room>)> {
        let dirty = self.dirty.as_mut().map(std::mem::take).unwrap_or_default();
        dirty
            .into_iter()
            .map(|sid| {
                let room = self.by_sid.get(&sid);
                (sid, room)
            })
            .collect()
    }

    fn touch(&mut self, sid: &str) {
        if let Some(dirty) = &mut self.dirty
            && !dirty.contains(sid)
        {
            dirty.insert(sid.to_owned());
        }
    }

    /// Applies one event. Unknown event names change nothing.
    pub(super) fn apply(&mut self, event: &Event) {
        let data = &event.data;
        match event.event.as_str() {
            "room_started" => {
                self.room_mut(event);
            }
            "room_finished" => {
                if let Some(sid) = self.find_sid(event) {
                    self.by_sid.remove(&sid);
                    self.touch(&sid);
                }
            }
            "participant_joined" => {
                if let (Some(p), Some(room)) = (&data.participant, self.room_mut(event)) {
                    upsert_participant(room, p);
                }
            }
            "participant_left" | "participant_connection_aborted" => {
                if let (Some(p), Some(room)) = (&data.participant, self.existing_mut(event)) {
                    room.participants.remove(&p.sid);
                }
            }
            "track_published" => {
                if let (Some(p), Some(t), Some(room)) =
                    (&data.participant, &data.track, self.room_mut(event))
                {
                    upsert_track(upsert_participant(room, p), t);
                }
            }
            "track_unpublished" => {
                if let (Some(p), Some(t), Some(room)) =
                    (&data.participant, &data.track, self.existing_mut(event))
                    && let Some(known) = room.participants.get_mut(&p.sid)
                {
                    known.tracks.retain(|k| k.sid != t.sid);
                }
            }
            "egress_started" | "egress_updated" => self.upsert_egress(event),
            "egress_ended" => {
                self.remove_everywhere(event, |room, id| room.egress.remove(id).is_some())
            }
            "ingress_started" => self.upsert_ingress(event),
            "ingress_ended" => {
                self.remove_everywhere(event, |room, id| room.ingress.remove(id).is_some())
            }
            // Reconciliation with the LiveKit API (see `livekit`): the same
            // changes as the events LiveKit failed to deliver.
            "reconciled" => match event.data.change {
                Some("room_added") => self.apply(&renamed(event, "room_started")),
                Some("room_removed") => self.apply(&renamed(event, "room_finished")),
                Some("participant_added") => self.apply(&renamed(event, "participant_joined")),
                Some("participant_removed") => self.apply(&renamed(event, "participant_left")),
                _ => {}
            },
            _ => {}
        }
    }

    /// The rooms `filter` admits, in sid order.
    pub(super) fn view(&self, filter: &Filter) -> SnapshotView<'_> {
        let rooms = self
            .by_sid
            .values()
            .filter(|r| filter.admits(r.key.as_deref()))
            .map(room_view)
            .collect();
        SnapshotView { rooms }
    }

    /// Number of rooms held.
    pub(super) fn len(&self) -> usize {
        self.by_sid.len()
    }

    /// The sid the event's room is stored under: its own sid, or — when
    /// LiveKit left the sid out — the room already known by that raw name.
    fn find_sid(&self, event: &Event) -> Option<String> {
        let room = event.data.room.as_ref()?;
        if !room.sid.is_empty() {
            return Some(room.sid.clone());
        }
        let key = event.room_key.as_deref()?;
        self.by_sid
            .iter()
            .find(|(_, r)| r.key.as_deref() == Some(key))
            .map(|(sid, _)| sid.clone())
    }

    /// The event's room, created if new; its info refreshed from the event.
    fn room_mut(&mut self, event: &Event) -> Option<&mut Room> {
        let info = event.data.room.as_ref()?;
        let sid = match self.find_sid(event) {
            Some(sid) => sid,
            // No sid and not known by name: the name stands in for the sid.
            None => event.room_key.clone().filter(|k| !k.is_empty())?,
        };
        self.touch(&sid);
        let room = self.by_sid.entry(sid.clone()).or_default();
        room.info.sid = sid;
        if !info.name.is_empty() {
            room.info.name.clone_from(&info.name);
        }
        room.info.creation_time = info.creation_time.or(room.info.creation_time);
        if event.room_key.is_some() {
            room.key.clone_from(&event.room_key);
        }
        Some(room)
    }

    /// The event's room if already known (a removal never creates a room).
    fn existing_mut(&mut self, event: &Event) -> Option<&mut Room> {
        let sid = self.find_sid(event)?;
        if self.by_sid.contains_key(&sid) {
            self.touch(&sid);
        }
        self.by_sid.get_mut(&sid)
    }

    fn upsert_egress(&mut self, event: &Event) {
        let Some(egress) = &event.data.egress else {
            return;
        };
        if event.data.room.is_some() {
            if let Some(room) = self.room_mut(event) {
                room.egress.insert(egress.id.clone(), egress.clone());
            }
            return;
        }
        // No room on the event: update the egress wherever it is already known.
        let mut touched = Vec::new();
        for (sid, room) in &mut self.by_sid {
            if let Some(known) = room.egress.get_mut(&egress.id) {
                known.clone_from(egress);
                touched.push(sid.clone());
            }
        }
        for sid in touched {
            self.touch(&sid);
        }
    }

    fn upsert_ingress(&mut self, event: &Event) {
        let Some(ingress) = &event.data.ingress else {
            return;
        };
        if let Some(room) = self.room_mut(event) {
            room.ingress.insert(ingress.id.clone(), ingress.clone());
        }
    }

    /// Removes an egress/ingress by id from every room (ended events may omit the room).
    fn remove_everywhere(
        &mut self,
        event: &Event,
        mut remove: impl FnMut(&mut Room, &str) -> bool,
    ) {
        let id = match (&event.data.egress, &event.data.ingress) {
            (Some(e), _) => e.id.as_str(),
            (None, Some(i)) => i.id.as_str(),
            (None, None) => return,
        };
        let mut removed_from = None;
        for (sid, room) in &mut self.by_sid {
            if remove(room, id) {
                removed_from = Some(sid.clone());
                break;
            }
        }
        if let Some(sid) = removed_from {
            self.touch(&sid);
        }
    }
}

/// Inserts or refreshes a participant, keeping known tracks when the event lists none.
fn upsert_participant<'r>(room: &'r mut Room, p: &ParticipantInfo) -> &'r mut ParticipantInfo {
    let known = room
        .participants
        .entry(p.sid.clone())
        .or_insert_with(|| p.clone());
    let tracks = if p.tracks.is_empty() {
        std::mem::take(&mut known.tracks)
    } else {
        p.tracks.clone()
    };
    known.clone_from(p);
    known.tracks = tracks;
    known
}

fn upsert_track(p: &mut ParticipantInfo, t: &TrackInfo) {
    match p.tracks.iter_mut().find(|k| k.sid == t.sid) {
        Some(known) => known.clone_from(t),
        None => p.tracks.push(t.clone()),
    }
}

fn room_view(room: &Room) -> RoomView<'_> {
    RoomView {
        sid: &room.info.sid,
        name: &room.info.name,
        num_participants: room.participants.len(),
        creation_time: room.info.creation_time,
        participants: room
            .participants
            .values()
            .map(|p| ParticipantView {
                sid: &p.sid,
                identity: &p.identity,
                name: &p.name,
                state: p.state,
                joined_at: p.joined_at,
                tracks: &p.tracks,
            })
            .collect(),
        egress: room.egress.values().collect(),
        ingress: room.ingress.values().collect(),
    }
}

/// A copy of `event` under another name (reconciliation reuses the event rules).
fn renamed(event: &Event, name: &str) -> Event {
    Event {
        event: name.to_owned(),
        ..event.clone()
    }
}
