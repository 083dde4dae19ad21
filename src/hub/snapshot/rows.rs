//! The room state's persisted form (see [`Room`]): one row per room, one per
//! participant, and which of them changed since the journal last wrote.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Room, Rooms};
use crate::event::{Order, ParticipantInfo};

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
pub(in crate::hub) struct DirtyRoom<'a> {
    /// The room's sid.
    pub sid: String,
    /// The room as held, `None` when it is gone (its rows go).
    pub room: Option<&'a Room>,
    /// Which participant rows to write.
    pub participants: Changed,
}

/// Which participant rows of a room changed.
pub(in crate::hub) enum Changed {
    /// All of them: delete the room's rows, then write those held.
    All,
    /// These sids: each written if held, deleted otherwise.
    Some(Vec<String>),
}

impl Room {
    /// Notes that participant `sid` changed (in the journal's copy).
    pub(super) fn mark(&mut self, sid: &str) {
        if let Some(changed) = &mut self.changed
            && !changed.contains(sid)
        {
            changed.insert(sid.to_owned());
        }
    }

    /// Participant `sid`'s row, if held.
    pub(in crate::hub) fn participant_row(&self, sid: &str) -> Option<String> {
        let info = self.participants.get(sid)?;
        let row = ParticipantRowRef {
            info,
            order: self.order.get(sid),
        };
        Some(serde_json::to_string(&row).expect("plain derived structs serialise without error"))
    }

    /// The sids of every participant held.
    pub(in crate::hub) fn participant_sids(&self) -> impl Iterator<Item = &String> {
        self.participants.keys()
    }

    /// Adds a participant read from its row.
    pub(in crate::hub) fn restore_participant(&mut self, row: &str) -> serde_json::Result<()> {
        let row: ParticipantRow = serde_json::from_str(row)?;
        if let Some(order) = row.order {
            self.order.insert(row.info.sid.clone(), order);
        }
        self.participants.insert(row.info.sid.clone(), row.info);
        Ok(())
    }

    /// Marks a room read from a row that still held its participants, so
    /// the journal's first write splits them into their own rows.
    pub(in crate::hub) fn note_legacy_row(&mut self) {
        self.rewrite_all = !self.participants.is_empty();
    }
}

impl Rooms {
    /// Rooms restored from their persisted rows; `track_dirty` for the
    /// journal's copy (see [`Rooms::take_dirty`]).
    pub(in crate::hub) fn restore(rooms: Vec<Room>, track_dirty: bool) -> Self {
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
    pub(in crate::hub) fn take_dirty(&mut self) -> Vec<DirtyRoom<'_>> {
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
}
