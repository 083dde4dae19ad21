//! The live room state the `snapshot` event and `GET /api/rooms` show.
//!
//! Every entity is keyed by its LiveKit id (room sid, participant sid, track
//! sid, egress and ingress id), so applying an event is an idempotent upsert
//! or remove: a repeated event changes nothing, a missed one leaves at worst a
//! stale entry (reconciliation fixes those), and a participant or track event
//! for a room never seen creates what it names. Ended egress and ingress and
//! finished rooms are removed, so the state is bounded by what is live.
//!
//! LiveKit promises no order across resources, and retries reorder: a
//! participant that reconnects fast can have its `participant_left` arrive
//! after its new `participant_joined` (livekit/livekit#2399). The state is
//! therefore ordered by LiveKit's own clocks, not by arrival (events are still
//! delivered as they arrive):
//! - one identity has one session in a room (LiveKit disconnects the older on
//!   a duplicate join): a join removes the identity's older sessions, and a
//!   `participant_left` older than the session held (`joined_at_ms`) is stale;
//! - updates of one session apply only if not older (`version`);
//! - a participant that left is remembered (bounded) so that a late update of
//!   that same session does not bring it back;
//! - a room name has one live incarnation: a room seen under a new sid
//!   replaces an older one of that name, and a `room_finished` names the sid
//!   it ends (a late one of an older incarnation ends nothing);
//! - a track event for a participant not yet known adds it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::event::{EgressInfo, Event, IngressInfo, JobInfo, Order, ParticipantInfo, RoomInfo};

mod participant;
mod rows;
mod view;

use participant::{join, leave, update, upsert_track};
pub(super) use rows::Changed;
pub use view::HeldRoom;

/// All live rooms, by sid (a `BTreeMap` so output order is stable).
#[derive(Debug, Default, Clone)]
pub(super) struct Rooms {
    by_sid: BTreeMap<String, Room>,
    /// Sids of rooms changed since [`Rooms::take_dirty`] (only tracked for the
    /// journal's copy, which persists exactly those rooms).
    dirty: Option<BTreeSet<String>>,
}

/// One room's whole state; also its persisted form: the journal stores one
/// JSON row per live room without its participants, and one row per
/// participant (so a join writes one small row, not the whole room: a
/// webinar holds thousands). Rows written before the split carry the
/// participants inside the room row; they are read and rewritten split.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(super) struct Room {
    /// Raw room name, compared with the token's grant; `None` = only full access sees it.
    key: Option<String>,
    info: RoomInfo,
    #[serde(default, skip_serializing)]
    participants: BTreeMap<String, ParticipantInfo>,
    egress: BTreeMap<String, EgressInfo>,
    ingress: BTreeMap<String, IngressInfo>,
    /// Running agent jobs, by job id.
    #[serde(default)]
    agents: BTreeMap<String, JobInfo>,
    /// LiveKit's order of each participant held (see module docs); persisted
    /// in the participant's row.
    #[serde(default, skip_serializing)]
    order: BTreeMap<String, Order>,
    /// Sessions that left, with their order, so a late event cannot revive them.
    #[serde(default)]
    departed: BTreeMap<String, Order>,
    /// Sids held under each identity, so a join finds the identity's older
    /// sessions without walking every participant (a webinar holds
    /// thousands). Built on first use, kept by [`upsert_participant`];
    /// removals leave entries behind that [`Room::sessions_of`] prunes.
    #[serde(skip)]
    by_identity: Option<HashMap<String, Vec<String>>>,
    /// Participants changed since the journal last wrote this room (only
    /// in the journal's copy: `None` elsewhere, so nothing accumulates).
    #[serde(skip)]
    changed: Option<BTreeSet<String>>,
    /// Every participant row is to be rewritten: a new incarnation of the
    /// sid, or a room read from a row that still held its participants.
    #[serde(skip)]
    rewrite_all: bool,
}

impl Room {
    /// The sid the room is stored under.
    pub(super) fn sid(&self) -> &str {
        &self.info.sid
    }

    /// The subject's sessions and agent jobs here, each as `{room, participant}` or `{room, agent_job}`.
    pub(super) fn about(&self, needles: &[String]) -> Vec<serde_json::Value> {
        let is = |i: &str| needles.iter().any(|n| n == i);
        let room = serde_json::json!({"sid": self.info.sid, "name": self.info.name});
        let mut out: Vec<serde_json::Value> = self
            .participants
            .values()
            .filter(|p| is(&p.identity))
            .map(|p| serde_json::json!({"room": room, "participant": p}))
            .collect();
        out.extend(
            self.agents
                .values()
                .filter(|j| j.agent_identity.as_deref().is_some_and(is))
                .map(|j| serde_json::json!({"room": room, "agent_job": j})),
        );
        out
    }
}

impl Rooms {
    /// Removes the sessions of the subject (`needles`: its identity and its
    /// hash) and drops it as an agent's identity; the changed rooms turn dirty.
    /// Returns how many rooms changed.
    pub(super) fn erase(&mut self, needles: &[String]) -> u64 {
        let is = |i: &str| needles.iter().any(|n| n == i);
        let mut changed = Vec::new();
        for (sid, room) in &mut self.by_sid {
            let gone: Vec<String> = room
                .participants
                .values()
                .filter(|p| is(&p.identity))
                .map(|p| p.sid.clone())
                .collect();
            let mut touched = !gone.is_empty();
            for p in gone {
                room.participants.remove(&p);
                room.order.remove(&p);
                room.mark(&p);
            }
            for job in room.agents.values_mut() {
                if job.agent_identity.as_deref().is_some_and(is) {
                    job.agent_identity = None;
                    touched = true;
                }
            }
            if touched {
                changed.push(sid.clone());
            }
        }
        for sid in &changed {
            self.touch(sid);
        }
        changed.len() as u64
    }

    /// Every room held.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Room> {
        self.by_sid.values()
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
                if let Some(sid) = self.find_sid(event)
                    && !self.older_incarnation(&sid, event)
                {
                    self.by_sid.remove(&sid);
                    self.touch(&sid);
                }
            }
            "participant_joined" => {
                if let (Some(p), Some(room)) = (&data.participant, self.room_mut(event)) {
                    join(room, p, event.order);
                }
            }
            "participant_left" | "participant_connection_aborted" => {
                if let (Some(p), Some(room)) = (&data.participant, self.existing_mut(event)) {
                    leave(room, p, event.order);
                }
            }
            "track_published" => {
                if let (Some(p), Some(t), Some(room)) =
                    (&data.participant, &data.track, self.room_mut(event))
                    && let Some(known) = update(room, p, event.order)
                {
                    upsert_track(known, t);
                }
            }
            "track_unpublished" => {
                if let (Some(p), Some(t), Some(room)) =
                    (&data.participant, &data.track, self.room_mut(event))
                    && let Some(known) = update(room, p, event.order)
                {
                    known.tracks.retain(|k| k.sid != t.sid);
                }
            }
            "agent_job_started" | "agent_job_ended" => self.apply_job(event),
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
                Some("agent_added") => self.apply(&renamed(event, "agent_job_started")),
                Some("agent_removed") => self.apply(&renamed(event, "agent_job_ended")),
                _ => {}
            },
            _ => {}
        }
    }

    /// A job runs until it ends; an ended one (success or failure) leaves the running set.
    fn apply_job(&mut self, event: &Event) {
        let Some(job) = &event.data.job else {
            return;
        };
        let running =
            event.event == "agent_job_started" && matches!(job.status, "pending" | "running");
        if running {
            if let Some(room) = self.room_mut(event) {
                room.agents.insert(job.id.clone(), job.clone());
            }
            return;
        }
        self.remove_everywhere_by(&job.id, |room, id| room.agents.remove(id).is_some());
    }

    /// True when `event` (a `room_finished` found by name) is older than the
    /// incarnation held under `sid`.
    fn older_incarnation(&self, sid: &str, event: &Event) -> bool {
        let (Some(held), Some(info)) = (self.by_sid.get(sid), event.data.room.as_ref()) else {
            return false;
        };
        info.sid != sid
            && matches!((info.creation_time, held.info.creation_time), (Some(e), Some(h)) if e < h)
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
        if !self.by_sid.contains_key(&sid) {
            self.replace_older_incarnations(event, &sid);
        }
        self.touch(&sid);
        let tracked = self.dirty.is_some();
        // A new room (or a new incarnation of a sid) rewrites all its rows.
        let room = self.by_sid.entry(sid.clone()).or_insert_with(|| Room {
            changed: tracked.then(BTreeSet::new),
            rewrite_all: tracked,
            ..Room::default()
        });
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

    /// A room name has one live incarnation in LiveKit: a new sid for a name
    /// held under another sid means the older one finished (its
    /// `room_finished` was lost or is late), unless the held one is newer.
    fn replace_older_incarnations(&mut self, event: &Event, new_sid: &str) {
        let Some(key) = event.room_key.as_deref() else {
            return;
        };
        let created = event.data.room.as_ref().and_then(|r| r.creation_time);
        let older: Vec<String> = self
            .by_sid
            .iter()
            .filter(|(sid, r)| {
                sid.as_str() != new_sid
                    && r.key.as_deref() == Some(key)
                    && !matches!((r.info.creation_time, created), (Some(h), Some(e)) if h > e)
            })
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in older {
            self.by_sid.remove(&sid);
            self.touch(&sid);
        }
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
    fn remove_everywhere(&mut self, event: &Event, remove: impl FnMut(&mut Room, &str) -> bool) {
        let id = match (&event.data.egress, &event.data.ingress) {
            (Some(e), _) => e.id.as_str(),
            (None, Some(i)) => i.id.as_str(),
            (None, None) => return,
        };
        self.remove_everywhere_by(id, remove);
    }

    /// Removes what `remove` finds under `id` from the first room that has it.
    fn remove_everywhere_by(&mut self, id: &str, mut remove: impl FnMut(&mut Room, &str) -> bool) {
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

/// A copy of `event` under another name (reconciliation reuses the event rules).
fn renamed(event: &Event, name: &str) -> Event {
    Event {
        event: name.to_owned(),
        ..event.clone()
    }
}
