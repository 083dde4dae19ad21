//! Real LiveKit payload shapes: zero values, enums, int64 forms, snake_case, hostile text.

use super::*;

fn accept(h: &H, body: &serde_json::Value) -> Event {
    let bytes = body.to_string().into_bytes();
    broadcast(h.rx.receive(ip(), &[sign(&bytes)], &bytes))
}

#[test]
fn audio_track_without_type_is_audio() {
    let h = harness();
    let e = accept(
        &h,
        &json!({"event": "track_published", "id": "EV_t1", "room": {"sid": "RM_a", "name": "r"},
        "participant": {"sid": "PA_a", "identity": "mic-user"},
        "track": {"sid": "TR_AMabc", "name": "microphone", "source": "MICROPHONE", "mimeType": "audio/red",
                  "version": {"unixMicro": "1700000000000000"}}}),
    );
    let t = e.data.track.expect("track");
    assert_eq!(
        (t.sid.as_str(), t.kind, t.source, t.muted),
        ("TR_AMabc", "audio", "microphone", false)
    );
    let p = e.data.participant.expect("participant");
    assert_eq!(p.state, "joining", "absent state is the zero value JOINING");
}

#[test]
fn egress_started_without_status_is_starting_with_its_room() {
    let h = harness();
    let e = accept(
        &h,
        &json!({"event": "egress_started", "id": "EV_g1", "createdAt": 1_700_000_000,
        "egressInfo": {"egressId": "EG_abc", "roomId": "RM_r", "roomName": "Board <b>room</b>",
                       "updatedAt": "1700000000123456789", "roomComposite": {"roomName": "x", "layout": "grid"},
                       "fileResults": [{"filename": "s3://secret-bucket/x.mp4"}]}}),
    );
    let g = e.data.egress.as_ref().expect("egress");
    assert_eq!((g.id.as_str(), g.status), ("EG_abc", "starting"));
    let r = e.data.room.as_ref().expect("room from egress");
    assert_eq!((r.sid.as_str(), r.name.as_str()), ("RM_r", "Board room"));
    assert_eq!(
        e.room_key.as_deref(),
        Some("Board <b>room</b>"),
        "authorisation uses the raw name"
    );
    assert!(
        !serde_json::to_string(&e)
            .expect("json")
            .contains("secret-bucket")
    );
}

#[test]
fn enums_as_numbers_and_int64_as_numbers() {
    let h = harness();
    let e = accept(
        &h,
        &json!({"event": "track_unpublished", "id": "EV_n", "createdAt": 1_700_000_001,
        "room": {"sid": "RM_a", "name": "r", "creationTime": 1_699_999_000, "numParticipants": "3"},
        "participant": {"sid": "PA_a", "identity": "u", "state": 3, "joinedAt": 1_699_999_999},
        "track": {"sid": "TR_v", "type": 1, "source": 3, "muted": true}}),
    );
    let t = e.data.track.expect("track");
    assert_eq!((t.kind, t.source, t.muted), ("video", "screen_share", true));
    assert_eq!(e.data.participant.expect("p").state, "disconnected");
    let r = e.data.room.expect("room");
    assert_eq!(
        (r.num_participants, r.creation_time),
        (Some(3), Some(1_699_999_000))
    );
    assert_eq!(e.created_at_ms, 1_700_000_001_000);
    let g = accept(
        &h,
        &json!({"event": "egress_ended", "id": "EV_gn",
        "egressInfo": {"egressId": "EG_1", "status": 6, "startedAt": 1_700_000_000_123_456_789_i64}}),
    );
    assert_eq!(g.data.egress.expect("egress").status, "limit_reached");
}

#[test]
fn unknown_enum_values_become_unknown() {
    let h = harness();
    let e = accept(
        &h,
        &json!({"event": "track_published", "id": "EV_u",
        "room": {"sid": "RM_a", "name": "r"},
        "participant": {"sid": "PA_a", "identity": "u", "state": 42},
        "track": {"sid": "TR_v", "type": "HOLOGRAM", "source": 99}}),
    );
    let t = e.data.track.expect("track");
    assert_eq!((t.kind, t.source), ("unknown", "unknown"));
    assert_eq!(e.data.participant.expect("p").state, "unknown");
    let g = accept(
        &h,
        &json!({"event": "egress_updated", "id": "EV_gu",
        "egressInfo": {"egressId": "EG_1", "status": "EGRESS_TELEPORTED"}}),
    );
    assert_eq!(g.data.egress.expect("egress").status, "unknown");
    let i = accept(
        &h,
        &json!({"event": "ingress_started", "id": "EV_iu",
        "ingressInfo": {"ingressId": "IN_1", "state": {"status": -1}}}),
    );
    assert_eq!(i.data.ingress.expect("ingress").state, "unknown");
}

#[test]
fn snake_case_names_are_accepted() {
    let h = harness();
    let e = accept(
        &h,
        &json!({"event": "participant_left", "id": "EV_s", "created_at": "1700000002",
        "room": {"sid": "RM_a", "name": "r", "num_participants": 2, "creation_time": "1699999000"},
        "participant": {"sid": "PA_a", "identity": "u", "state": "DISCONNECTED", "joined_at": "1699999999"}}),
    );
    assert_eq!(e.created_at_ms, 1_700_000_002_000);
    assert_eq!(e.data.room.expect("room").num_participants, Some(2));
    assert_eq!(
        e.data.participant.expect("p").joined_at,
        Some(1_699_999_999)
    );
    let g = accept(
        &h,
        &json!({"event": "egress_ended", "id": "EV_sg",
        "egress_info": {"egress_id": "EG_s", "room_name": "snake", "room_id": "RM_s", "status": "EGRESS_COMPLETE",
                        "started_at": "1700000000000000000", "ended_at": "1700000005000000000"}}),
    );
    assert_eq!(
        g.data.egress.as_ref().map(|x| (x.id.as_str(), x.status)),
        Some(("EG_s", "complete"))
    );
    assert_eq!(g.room_key.as_deref(), Some("snake"));
}

#[test]
fn ingress_keeps_state_and_drops_stream_keys() {
    let h = harness();
    let e = accept(
        &h,
        &json!({"event": "ingress_started", "id": "EV_i",
        "ingressInfo": {"ingressId": "IN_abc", "name": "obs", "streamKey": "sk_SUPERSECRET",
                        "url": "rtmp://ingest.example/live", "roomName": "stage", "participantIdentity": "streamer",
                        "state": {"status": "ENDPOINT_PUBLISHING", "roomId": "RM_st", "startedAt": "1700000000000000000"}}}),
    );
    let i = e.data.ingress.as_ref().expect("ingress");
    assert_eq!((i.id.as_str(), i.state), ("IN_abc", "publishing"));
    assert_eq!(e.data.room.as_ref().map(|r| r.sid.as_str()), Some("RM_st"));
    let wire = serde_json::to_string(&e).expect("json");
    for leak in ["SUPERSECRET", "rtmp://", "streamer"] {
        assert!(!wire.contains(leak), "{leak} leaked");
    }
    let ended = accept(
        &h,
        &json!({"event": "ingress_ended", "id": "EV_i2", "ingressInfo": {"ingressId": "IN_abc"}}),
    );
    assert_eq!(
        ended.data.ingress.expect("ingress").state,
        "endpoint_inactive"
    );
}

#[test]
fn nulls_are_zero_values_and_unknown_fields_are_ignored() {
    let h = harness();
    let e = accept(
        &h,
        &json!({"event": "room_finished", "id": null, "createdAt": null, "numDropped": 3,
        "job": {"id": "AJ_x"}, "room": {"sid": "RM_a", "name": null, "creationTime": null, "future": {"a": [1]}}}),
    );
    assert!(
        e.id.starts_with("WH_"),
        "an id is generated when LiveKit sent none: {}",
        e.id
    );
    assert_eq!(
        (e.created_at_ms, e.data.room.expect("room").name.as_str()),
        (0, "")
    );
}

#[test]
fn bad_int64_forms_are_schema_errors() {
    let h = harness();
    for bad in [json!("12abc"), json!(1.5), json!(true), json!({})] {
        let body = json!({"event": "room_started", "room": {"sid": "RM_a", "creationTime": bad}})
            .to_string();
        let err =
            h.rx.receive(ip(), &[sign(body.as_bytes())], body.as_bytes())
                .expect_err("refused");
        assert_eq!(err.code(), "invalid_event", "{err}");
        assert!(err.to_string().contains("room.creationTime"), "{err}");
    }
}

#[test]
fn hostile_text_is_sanitised_and_identities_hashed() {
    let h = harness();
    let evil = "<script>alert(1)</script>\u{202E}gnp\r\n\u{1b}[2J<<img src=x onerror=alert(2)>";
    let e = accept(
        &h,
        &json!({"event": "participant_joined", "id": "EV_<evil>\n",
        "room": {"sid": "RM_a\u{0}<x>", "name": evil},
        "participant": {"sid": "PA_a", "identity": evil, "name": evil}}),
    );
    let wire = serde_json::to_string(&e).expect("json");
    for bad in [
        "<script", "<img", "\\r", "\\n", "\\u001b", "<x", "\u{202E}", "\u{1b}",
    ] {
        assert!(
            !wire.to_lowercase().contains(bad),
            "{bad:?} survived: {wire}"
        );
    }
    assert_eq!(e.id, sanitize::event_id("EV_<evil>\n"));
    assert!(
        e.id.starts_with("EVX_"),
        "an unclean id is hashed, not stripped"
    );
    assert_eq!(e.data.room.as_ref().expect("room").sid, "RM_ax");
    let p = e.data.participant.expect("p");
    assert_eq!(p.identity, Pepper::new(PEPPER).hash_identity(evil));
    assert_eq!(p.name, "alert(1)gnp[2J<", "a lone trailing < opens nothing");
    let long = "n".repeat(10_000);
    let e = accept(
        &h,
        &json!({"event": "room_started", "id": "EV_long", "room": {"sid": "RM_l", "name": long}}),
    );
    assert_eq!(
        e.data.room.expect("room").name.len(),
        sanitize::MAX_TEXT_CHARS
    );
}

#[test]
fn identities_can_be_shown_sanitised_instead_of_hashed() {
    let mut s = settings();
    s.hash_identities = false;
    let h = harness_with(
        s,
        KeyRing::from_keys([(KEY.to_owned(), Secret::new(SECRET))]),
    );
    let e = accept(
        &h,
        &json!({"event": "participant_joined", "id": "EV_plain", "room": {"sid": "RM_a", "name": "r"},
        "participant": {"sid": "PA_a", "identity": "bob\u{202E}<b>x</b>"}}),
    );
    assert_eq!(e.data.participant.expect("p").identity, "bobx");
}
