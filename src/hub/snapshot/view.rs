//! What the hub shows of its rooms: the `snapshot` event's and
//! `GET /api/rooms`' JSON ([`SnapshotView`], borrowed, serialised once), and
//! the ids the reconciler compares with LiveKit ([`HeldRoom`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Room, Rooms};
use crate::event::{EgressInfo, IngressInfo, JobInfo, TrackInfo};
use crate::hub::frame::Filter;

/// The snapshot's `data` object.
#[derive(Serialize)]
pub(in crate::hub) struct SnapshotView<'a> {
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
    agents: Vec<&'a JobInfo>,
}

#[derive(Serialize)]
struct ParticipantView<'a> {
    sid: &'a str,
    identity: &'a str,
    name: &'a str,
    state: &'static str,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    joined_at: Option<i64>,
    tracks: &'a [TrackInfo],
}

/// One held room by its ids: what reconciliation compares with LiveKit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeldRoom {
    /// The room's sid.
    pub sid: String,
    /// Its display name (sanitised).
    pub name: String,
    /// Sids of the participants held.
    pub participants: BTreeSet<String>,
    /// Ids of the running agent jobs held.
    pub agents: BTreeSet<String>,
}

impl Rooms {
    /// The rooms `filter` admits, in sid order.
    pub(in crate::hub) fn view(&self, filter: &Filter) -> SnapshotView<'_> {
        let rooms = self
            .by_sid
            .values()
            .filter(|r| filter.admits(r.key.as_deref()))
            .map(room_view)
            .collect();
        SnapshotView { rooms }
    }

    /// Rooms, participants and running agent jobs held (a walk over the rooms).
    pub(in crate::hub) fn totals(&self) -> [u64; 3] {
        let (mut participants, mut agents) = (0, 0);
        for room in self.by_sid.values() {
            participants += room.participants.len() as u64;
            agents += room.agents.len() as u64;
        }
        [self.by_sid.len() as u64, participants, agents]
    }

    /// Every room held, by sid.
    pub(in crate::hub) fn held(&self) -> BTreeMap<String, HeldRoom> {
        self.by_sid
            .values()
            .map(|room| {
                let held = HeldRoom {
                    sid: room.info.sid.clone(),
                    name: room.info.name.clone(),
                    participants: room.participants.values().map(|p| p.sid.clone()).collect(),
                    agents: room.agents.values().map(|j| j.id.clone()).collect(),
                };
                (held.sid.clone(), held)
            })
            .collect()
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
                kind: p.kind,
                joined_at: p.joined_at,
                tracks: &p.tracks,
            })
            .collect(),
        egress: room.egress.values().collect(),
        ingress: room.ingress.values().collect(),
        agents: room.agents.values().collect(),
    }
}
