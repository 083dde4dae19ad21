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

use crate::event::{
    EgressInfo, Event, IngressInfo, JobInfo, Order, ParticipantInfo, RoomInfo, TrackInfo,
};

mod view;

pub use view::HeldRoom;

/// Departed sessions remembered per room (oldest forgotten first).
const DEPARTED_KEPT: usize = 256;

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

/// A participant's persisted row (see [`Room`]).
#[derive(Serialize)]
struct ParticipantRowRef<'a> {
    info: &'a ParticipantInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<&'a Order>,
}

#[derive(Deserialize)]
struct ParticipantRow {
    info: ParticipantInfo,
    #[serde(default)]
    order: Option<Order>,
}

/// What the journal writes for one changed room.
pub(super) struct DirtyRoom<'a> {
    /// The room's sid.
    pub sid: String,
    /// The room as held, `None` when it is gone (its rows go).
    pub room: Option<&'a Room>,
    /// Which participant rows to write.
    pub participants: Changed,
}

/// Which participant rows of a room changed.
pub(super) enum Changed {
    /// All of them: delete the room's rows, then write those held.
    All,
    /// These sids: each written if held, deleted otherwise.
    Some(Vec<String>),
}

impl Room {
    /// Notes that participant `sid` changed (in the journal's copy).
    fn mark(&mut self, sid: &str) {
        if let Some(changed) = &mut self.changed
            && !changed.contains(sid)
        {
            changed.insert(sid.to_owned());
        }
    }

    /// The sid the room is stored under.
    pub(super) fn sid(&self) -> &str {
        &self.info.sid
    }

    /// Participant `sid`'s row, if held.
    pub(super) fn participant_row(&self, sid: &str) -> Option<String> {
        let info = self.participants.get(sid)?;
        let row = ParticipantRowRef {
            info,
            order: self.order.get(sid),
        };
        Some(serde_json::to_string(&row).expect("plain derived structs serialise without error"))
    }

    /// The sids of every participant held.
    pub(super) fn participant_sids(&self) -> impl Iterator<Item = &String> {
        self.participants.keys()
    }

    /// Adds a participant read from its row.
    pub(super) fn restore_participant(&mut self, row: &str) -> serde_json::Result<()> {
        let row: ParticipantRow = serde_json::from_str(row)?;
        if let Some(order) = row.order {
            self.order.insert(row.info.sid.clone(), order);
        }
        self.participants.insert(row.info.sid.clone(), row.info);
        Ok(())
    }

    /// Marks a room read from a row that still held its participants, so
    /// the journal's first write splits them into their own rows.
    pub(super) fn note_legacy_row(&mut self) {
        self.rewrite_all = !self.participants.is_empty();
    }

    /// The sids held under `identity` (other than none), pruning entries
    /// whose participant left or changed identity.
    fn sessions_of(&mut self, identity: &str) -> Vec<String> {
        let participants = &self.participants;
        let index = self.by_identity.get_or_insert_with(|| {
            let mut index: HashMap<String, Vec<String>> = HashMap::new();
            for p in participants.values() {
                index
                    .entry(p.identity.clone())
                    .or_default()
                    .push(p.sid.clone());
            }
            index
        });
        let Some(sids) = index.get_mut(identity) else {
            return Vec::new();
        };
        sids.retain(|sid| {
            participants
                .get(sid)
                .is_some_and(|p| p.identity == identity)
        });
        let held = sids.clone();
        if sids.is_empty() {
            index.remove(identity);
        }
        held
    }

    /// Notes that `sid` is held under `identity` (when the index is built).
    fn index_session(&mut self, identity: &str, sid: &str) {
        if let Some(index) = &mut self.by_identity {
            let sids = index.entry(identity.to_owned()).or_default();
            if !sids.iter().any(|s| s == sid) {
                sids.push(sid.to_owned());
            }
        }
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
    /// Rooms restored from their persisted rows; `track_dirty` for the
    /// journal's copy (see [`Rooms::take_dirty`]).
    pub(super) fn restore(rooms: Vec<Room>, track_dirty: bool) -> Self {
        let mut by_sid = BTreeMap::new();
        let mut dirty = track_dirty.then(BTreeSet::new);
        for mut room in rooms {
            match &mut dirty {
                Some(dirty) => {
                    room.changed = Some(BTreeSet::new());
                    if room.rewrite_all {
                        dirty.insert(room.info.sid.clone());
                    }
                }
                None => room.rewrite_all = false,
            }
            by_sid.insert(room.info.sid.clone(), room);
        }
        Self { by_sid, dirty }
    }

    /// The rooms changed since the last call, each with its current state
    /// (`None`: the room is gone) and the participants that changed in it.
    pub(super) fn take_dirty(&mut self) -> Vec<DirtyRoom<'_>> {
        let dirty = self.dirty.as_mut().map(std::mem::take).unwrap_or_default();
        let mut drained = Vec::with_capacity(dirty.len());
        for sid in dirty {
            let participants = match self.by_sid.get_mut(&sid) {
                Some(room) => {
                    let changed = room.changed.as_mut().map(std::mem::take);
                    if std::mem::take(&mut room.rewrite_all) {
                        Changed::All
                    } else {
                        Changed::Some(changed.unwrap_or_default().into_iter().collect())
                    }
                }
                None => Changed::All,
            };
            drained.push((sid, participants));
        }
        drained
            .into_iter()
            .map(|(sid, participants)| DirtyRoom {
                room: self.by_sid.get(&sid),
                sid,
                participants,
            })
            .collect()
    }

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

/// A join: the session is new or newer; the identity's older sessions go.
fn join(room: &mut Room, p: &ParticipantInfo, order: Option<Order>) {
    if let Some(order) = order
        && !p.identity.is_empty()
    {
        let older: Vec<String> = room
            .sessions_of(&p.identity)
            .into_iter()
            .filter(|sid| {
                *sid != p.sid
                    && room
                        .order
                        .get(sid)
                        .is_none_or(|o| o.joined_at_ms <= order.joined_at_ms)
            })
            .collect();
        for sid in older {
            depart(room, &sid);
        }
    }
    update(room, p, order);
}

/// A leave: removes the session unless the one held is newer.
fn leave(room: &mut Room, p: &ParticipantInfo, order: Option<Order>) {
    let held = room.order.get(&p.sid).copied();
    if let (Some(held), Some(order)) = (held, order)
        && held.joined_at_ms > order.joined_at_ms
    {
        return;
    }
    if room.participants.contains_key(&p.sid) {
        depart(room, &p.sid);
    } else {
        remember_departed(room, &p.sid, order.unwrap_or_default());
    }
}

fn depart(room: &mut Room, sid: &str) {
    room.mark(sid);
    room.participants.remove(sid);
    let order = room.order.remove(sid).unwrap_or_default();
    remember_departed(room, sid, order);
}

fn remember_departed(room: &mut Room, sid: &str, order: Order) {
    room.departed.insert(sid.to_owned(), order);
    while room.departed.len() > DEPARTED_KEPT {
        // Forget the session that joined first.
        let oldest = room
            .departed
            .iter()
            .min_by_key(|(_, o)| **o)
            .map(|(sid, _)| sid.clone());
        match oldest {
            Some(sid) => room.departed.remove(&sid),
            None => break,
        };
    }
}

/// Inserts or refreshes a participant unless the event is older than what
/// is held (or than its departure); keeps known tracks when the event lists
/// none. The participant as held afterwards, if it is held.
fn update<'r>(
    room: &'r mut Room,
    p: &ParticipantInfo,
    order: Option<Order>,
) -> Option<&'r mut ParticipantInfo> {
    if let Some(order) = order {
        if room
            .departed
            .get(&p.sid)
            .is_some_and(|gone| order <= *gone || order.joined_at_ms == gone.joined_at_ms)
        {
            return None;
        }
        if let Some(held) = room.order.get(&p.sid)
            && order < *held
        {
            // Older than what is held: only its tracks may still apply.
            room.mark(&p.sid);
            return room.participants.get_mut(&p.sid);
        }
        room.order.insert(p.sid.clone(), order);
    }
    room.departed.remove(&p.sid);
    room.mark(&p.sid);
    Some(upsert_participant(room, p))
}

/// Inserts or refreshes a participant, keeping known tracks when the event lists none.
fn upsert_participant<'r>(room: &'r mut Room, p: &ParticipantInfo) -> &'r mut ParticipantInfo {
    if room
        .participants
        .get(&p.sid)
        .is_none_or(|held| held.identity != p.identity)
    {
        room.index_session(&p.identity, &p.sid);
    }
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

/// A copy of `event` under another name (reconciliation reuses the event rules).
fn renamed(event: &Event, name: &str) -> Event {
    Event {
        event: name.to_owned(),
        ..event.clone()
    }
}
