//! The participant rules of the room state (see the module docs of
//! `snapshot`): one session per identity, LiveKit's order, departed
//! sessions remembered so a late update cannot revive them.

use std::collections::HashMap;

use super::Room;
use crate::event::{Order, ParticipantInfo, TrackInfo};

/// Departed sessions remembered per room (oldest forgotten first).
const DEPARTED_KEPT: usize = 256;

impl Room {
    /// The sids held under `identity` (other than none), pruning entries
    /// whose participant left or changed identity.
    pub(super) fn sessions_of(&mut self, identity: &str) -> Vec<String> {
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
    pub(super) fn index_session(&mut self, identity: &str, sid: &str) {
        if let Some(index) = &mut self.by_identity {
            let sids = index.entry(identity.to_owned()).or_default();
            if !sids.iter().any(|s| s == sid) {
                sids.push(sid.to_owned());
            }
        }
    }
}

/// A join: the session is new or newer; the identity's older sessions go.
pub(super) fn join(room: &mut Room, p: &ParticipantInfo, order: Option<Order>) {
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
pub(super) fn leave(room: &mut Room, p: &ParticipantInfo, order: Option<Order>) {
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

pub(super) fn depart(room: &mut Room, sid: &str) {
    room.mark(sid);
    room.participants.remove(sid);
    let order = room.order.remove(sid).unwrap_or_default();
    remember_departed(room, sid, order);
}

pub(super) fn remember_departed(room: &mut Room, sid: &str, order: Order) {
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
pub(super) fn update<'r>(
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
pub(super) fn upsert_participant<'r>(
    room: &'r mut Room,
    p: &ParticipantInfo,
) -> &'r mut ParticipantInfo {
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

pub(super) fn upsert_track(p: &mut ParticipantInfo, t: &TrackInfo) {
    match p.tracks.iter_mut().find(|k| k.sid == t.sid) {
        Some(known) => known.clone_from(t),
        None => p.tracks.push(t.clone()),
    }
}
