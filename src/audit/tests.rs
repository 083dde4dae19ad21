use super::*;

/// An event with every field set, for the pure chain tests.
pub(crate) fn sample_event() -> StoredEvent {
    StoredEvent {
        id: "evt_1".into(),
        kind: EventType::WebhookReplay,
        severity: Severity::High,
        source_ip: Some("203.0.113.9".parse().expect("ip")),
        identity: Some("ab12cd34".into()),
        key_id: Some("APIabc".into()),
        details: serde_json::Map::from_iter([("n".to_owned(), serde_json::json!(1))]),
        timestamp: "2024-01-01T00:00:00.000Z".into(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}
