//! LiveKit's claim grants with the exact upstream names and defaults
//! (livekit/protocol `auth/grants.go`), and the grant checks Warden's routes use.
//!
//! Defaults as upstream: `canPublish` and `canSubscribe` are true when
//! absent, `canPublishData` follows `canPublish`, every other permission is
//! false when absent. Tri-state permissions stay `Option<bool>` so a token
//! round-trips without gaining explicit values it never had.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// LiveKit's `video` grant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VideoGrant {
    /// May create rooms.
    #[serde(skip_serializing_if = "is_false")]
    pub room_create: bool,
    /// May list rooms.
    #[serde(skip_serializing_if = "is_false")]
    pub room_list: bool,
    /// May record rooms.
    #[serde(skip_serializing_if = "is_false")]
    pub room_record: bool,
    /// May administer `room`.
    #[serde(skip_serializing_if = "is_false")]
    pub room_admin: bool,
    /// May join `room`.
    #[serde(skip_serializing_if = "is_false")]
    pub room_join: bool,
    /// The room this grant is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// May publish (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_publish: Option<bool>,
    /// May subscribe (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_subscribe: Option<bool>,
    /// May publish data (default: as `canPublish`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_publish_data: Option<bool>,
    /// Track sources that may be published (`camera`, `microphone`, …); empty = all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub can_publish_sources: Vec<String>,
    /// May update its own metadata (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_update_own_metadata: Option<bool>,
    /// May administer ingresses.
    #[serde(skip_serializing_if = "is_false")]
    pub ingress_admin: bool,
    /// Invisible to other participants.
    #[serde(skip_serializing_if = "is_false")]
    pub hidden: bool,
    /// Is a recorder.
    #[serde(skip_serializing_if = "is_false")]
    pub recorder: bool,
    /// May register as an agent worker.
    #[serde(skip_serializing_if = "is_false")]
    pub agent: bool,
    /// May subscribe to metrics (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_subscribe_metrics: Option<bool>,
    /// May manage an agent session (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub can_manage_agent_session: Option<bool>,
    /// Room this participant may forward to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination_room: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// LiveKit's `sip` grant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SipGrant {
    /// May manage SIP trunks and rules.
    #[serde(skip_serializing_if = "is_false")]
    pub admin: bool,
    /// May make outbound calls.
    #[serde(skip_serializing_if = "is_false")]
    pub call: bool,
}

/// LiveKit's `agent` grant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentGrant {
    /// May manage agents.
    #[serde(skip_serializing_if = "is_false")]
    pub admin: bool,
    /// May run simulations.
    #[serde(skip_serializing_if = "is_false")]
    pub simulation_admin: bool,
    /// May manage agent databases.
    #[serde(skip_serializing_if = "is_false")]
    pub database_admin: bool,
}

/// LiveKit's `inference` grant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InferenceGrant {
    /// May perform inference.
    #[serde(skip_serializing_if = "is_false")]
    pub perform: bool,
}

/// LiveKit's `observability` grant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObservabilityGrant {
    /// May write observability data.
    #[serde(skip_serializing_if = "is_false")]
    pub write: bool,
}

/// Everything a token grants besides the registered claims (upstream `ClaimGrants`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClaimGrants {
    /// Identity: travels as `sub`, not as a field of its own.
    #[serde(skip)]
    pub identity: String,
    /// Display name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Participant kind (`standard`, `agent`, `sip`, `egress`, `ingress`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Kind details.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kind_details: Vec<String>,
    /// Video grant.
    #[serde(skip_serializing_if = "is_default")]
    pub video: VideoGrant,
    /// SIP grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sip: Option<SipGrant>,
    /// Agent grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentGrant>,
    /// Inference grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference: Option<InferenceGrant>,
    /// Observability grant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observability: Option<ObservabilityGrant>,
    /// Room configuration (protobuf JSON, carried as is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_config: Option<serde_json::Value>,
    /// Room preset (LiveKit Cloud).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub room_preset: String,
    /// SHA-256 of a body (webhooks).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Participant metadata.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// Participant attributes.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Every boolean `video` permission by its LiveKit name.
pub const VIDEO_GRANT_NAMES: &[&str] = &[
    "roomCreate",
    "roomList",
    "roomRecord",
    "roomAdmin",
    "roomJoin",
    "canPublish",
    "canSubscribe",
    "canPublishData",
    "canUpdateOwnMetadata",
    "ingressAdmin",
    "hidden",
    "recorder",
    "agent",
    "canSubscribeMetrics",
    "canManageAgentSession",
];

/// A grant name LiveKit does not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown grant {name:?}; known grants: {}", VIDEO_GRANT_NAMES.join(", "))]
pub struct UnknownGrant {
    /// The name given.
    pub name: String,
}

impl VideoGrant {
    /// `canPublish` with its default (true).
    pub fn can_publish(&self) -> bool {
        self.can_publish.unwrap_or(true)
    }

    /// `canSubscribe` with its default (true).
    pub fn can_subscribe(&self) -> bool {
        self.can_subscribe.unwrap_or(true)
    }

    /// `canPublishData` with its default (as `canPublish`).
    pub fn can_publish_data(&self) -> bool {
        self.can_publish_data.unwrap_or_else(|| self.can_publish())
    }

    /// The effective value of the permission named `name` (LiveKit names).
    pub fn get(&self, name: &str) -> Result<bool, UnknownGrant> {
        Ok(match name {
            "roomCreate" => self.room_create,
            "roomList" => self.room_list,
            "roomRecord" => self.room_record,
            "roomAdmin" => self.room_admin,
            "roomJoin" => self.room_join,
            "canPublish" => self.can_publish(),
            "canSubscribe" => self.can_subscribe(),
            "canPublishData" => self.can_publish_data(),
            "canUpdateOwnMetadata" => self.can_update_own_metadata.unwrap_or(false),
            "ingressAdmin" => self.ingress_admin,
            "hidden" => self.hidden,
            "recorder" => self.recorder,
            "agent" => self.agent,
            "canSubscribeMetrics" => self.can_subscribe_metrics.unwrap_or(false),
            "canManageAgentSession" => self.can_manage_agent_session.unwrap_or(false),
            _ => {
                return Err(UnknownGrant {
                    name: name.to_owned(),
                });
            }
        })
    }

    /// Sets the permission named `name` (LiveKit names).
    pub fn set(&mut self, name: &str, value: bool) -> Result<(), UnknownGrant> {
        match name {
            "roomCreate" => self.room_create = value,
            "roomList" => self.room_list = value,
            "roomRecord" => self.room_record = value,
            "roomAdmin" => self.room_admin = value,
            "roomJoin" => self.room_join = value,
            "canPublish" => self.can_publish = Some(value),
            "canSubscribe" => self.can_subscribe = Some(value),
            "canPublishData" => self.can_publish_data = Some(value),
            "canUpdateOwnMetadata" => self.can_update_own_metadata = Some(value),
            "ingressAdmin" => self.ingress_admin = value,
            "hidden" => self.hidden = value,
            "recorder" => self.recorder = value,
            "agent" => self.agent = value,
            "canSubscribeMetrics" => self.can_subscribe_metrics = Some(value),
            "canManageAgentSession" => self.can_manage_agent_session = Some(value),
            _ => {
                return Err(UnknownGrant {
                    name: name.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// May watch room `room`: `roomList`, `roomAdmin` for exactly that room,
    /// or the admin grants (which watch every room).
    pub fn can_watch_room(&self, room: &str) -> bool {
        self.room_list || (self.room_admin && self.room_name() == Some(room)) || self.is_admin()
    }

    /// May watch every room: `roomList` without a room, or the admin grants
    /// (SPEC: the dashboard's admin token sees the rooms it administers).
    pub fn can_watch_all(&self) -> bool {
        (self.room_list && self.room_name().is_none()) || self.is_admin()
    }

    /// Admin: `roomAdmin` and `roomCreate` with no room.
    pub fn is_admin(&self) -> bool {
        self.room_admin && self.room_create && self.room_name().is_none()
    }

    /// The room, when set and not empty.
    pub fn room_name(&self) -> Option<&str> {
        self.room.as_deref().filter(|r| !r.is_empty())
    }
}

/// Why a grant check failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// Required permissions the grant lacks.
    #[error("missing grants: {}", missing.join(", "))]
    Missing {
        /// Their LiveKit names.
        missing: Vec<String>,
    },
    /// A required name that LiveKit does not have (a programming error: refuse).
    #[error(transparent)]
    Unknown(#[from] UnknownGrant),
}

/// The one grant check: every permission in `required` (LiveKit names) must be granted.
pub fn validate_access_rights(grants: &VideoGrant, required: &[&str]) -> Result<(), Denied> {
    let mut missing = Vec::new();
    for name in required {
        if !grants.get(name)? {
            missing.push((*name).to_owned());
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Denied::Missing { missing })
    }
}
