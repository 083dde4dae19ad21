//! Property tests: the receiver never panics, and no change to a signed
//! delivery survives verification. (Bounded: proptest's default 256 cases
//! each; `PROPTEST_CASES=100000 cargo test --lib webhook::tests::props` for a long run.)

use proptest::prelude::*;

use super::*;

/// Hostile text: markup, controls, bidi, quotes, non-ASCII.
fn hostile() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "<", ">", "/", "!", "?", "a", "Z", "é", "<script>", "</b>", "<!--", "\u{202E}", "\u{2066}",
        "\u{200F}", "\u{061C}", "\r", "\n", "\u{1b}", "\u{85}", "\u{0}", "\"", "\\", " ", "&lt;",
        "日本",
    ]);
    prop::collection::vec(atoms, 0..40).prop_map(|v| v.concat())
}

fn enum_value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        (-5i64..12).prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "ACTIVE",
            "VIDEO",
            "SCREEN_SHARE",
            "EGRESS_FAILED",
            "NOPE",
            ""
        ])
        .prop_map(|s| json!(s)),
        Just(serde_json::Value::Null),
    ]
}

fn event_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(crate::event::BROADCAST_EVENTS.to_vec())
}

/// A LiveKit-shaped event of any broadcast type, with hostile strings and arbitrary enums.
fn livekit_event() -> impl Strategy<Value = serde_json::Value> {
    (event_name(), hostile(), hostile(), hostile(), enum_value(), enum_value(), enum_value(), any::<u32>()).prop_map(
        |(event, room, identity, name, state, source, status, n)| {
            json!({"event": event, "id": format!("EV_{n}"), "createdAt": n.to_string(),
                "room": {"sid": "RM_p", "name": room, "numParticipants": n},
                "participant": {"sid": "PA_p", "identity": identity, "name": name, "state": state},
                "track": {"sid": "TR_p", "type": source.clone(), "source": source},
                "egressInfo": {"egressId": "EG_p", "roomName": room, "status": status.clone()},
                "ingressInfo": {"ingressId": "IN_p", "roomName": room, "state": {"status": status.clone()}},
                "job": {"id": "AJ_p", "type": state.clone(), "agentName": name, "room": {"sid": "RM_p", "name": room},
                    "participant": {"sid": "PA_p", "identity": identity, "name": name, "kind": state},
                    "state": {"status": status, "error": name, "participantIdentity": identity,
                              "startedAt": n.to_string(), "metadata": "secret-meta"}}})
        },
    )
}

fn assert_sanitised(s: &str) {
    let chars: Vec<char> = s.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        assert!(
            !c.is_control()
                && !('\u{202A}'..='\u{202E}').contains(c)
                && !('\u{2066}'..='\u{2069}').contains(c)
        );
        if *c == '<' {
            let next = chars.get(i + 1).copied();
            assert!(
                !next.is_some_and(|n| n.is_alphabetic() || matches!(n, '/' | '!' | '?')),
                "markup in {s:?}"
            );
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_and_tokens_never_panic(body in prop::collection::vec(any::<u8>(), 0..512),
                                              auth in prop::collection::vec(any::<u8>(), 0..300)) {
        let h = harness();
        let r = h.rx.receive(ip(), &[auth.as_slice()], &body);
        prop_assert!(matches!(r, Err(WebhookError::Signature(_))));
    }

    #[test]
    fn signed_arbitrary_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let h = harness();
        match h.rx.receive(ip(), &[sign(&body)], &body) {
            Ok(_) => {}
            Err(e) => prop_assert!(e.is_bad_body(), "{e}"),
        }
    }

    #[test]
    fn any_body_mutation_invalidates_the_signature(ev in livekit_event(), at in any::<prop::sample::Index>(),
                                                    flip in 1u8..=255, kind in 0u8..3) {
        let h = harness();
        let body = ev.to_string().into_bytes();
        let auth = sign(&body);
        let mut changed = body.clone();
        let i = at.index(body.len());
        match kind {
            0 => changed[i] ^= flip,
            1 => changed.insert(i, flip),
            _ => { changed.remove(i); }
        }
        let r = h.rx.receive(ip(), &[&auth], &changed);
        prop_assert!(matches!(r, Err(WebhookError::Signature(SignatureError::ChecksumMismatch))), "{r:?}");
        // The untouched delivery still verifies.
        prop_assert!(h.rx.receive(ip(), &[&auth], &body).is_ok());
    }

    #[test]
    fn any_token_mutation_is_refused(at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let h = harness();
        let body = joined("EV_tok");
        let mut auth = sign(&body).into_bytes();
        let i = at.index(auth.len());
        auth[i] ^= flip;
        let r = h.rx.receive(ip(), &[auth.as_slice()], &body);
        prop_assert!(matches!(r, Err(WebhookError::Signature(_))), "{r:?}");
    }

    #[test]
    fn every_broadcast_is_sanitised(ev in livekit_event()) {
        let h = harness();
        let body = ev.to_string().into_bytes();
        match h.rx.receive(ip(), &[sign(&body)], &body) {
            Ok(Outcome::Event(e, _)) => {
                let data = &e.data;
                for s in [data.room.as_ref().map(|r| r.name.as_str()), data.participant.as_ref().map(|p| p.name.as_str()),
                          data.participant.as_ref().map(|p| p.identity.as_str()), Some(e.id.as_str())].into_iter().flatten() {
                    assert_sanitised(s);
                }
                let wire = serde_json::to_string(&e).expect("json");
                prop_assert!(!wire.contains("<script"));
                if let Some(p) = &data.participant {
                    prop_assert_eq!(p.identity.len(), 8);
                    prop_assert!(["joining", "joined", "active", "disconnected", "unknown"].contains(&p.state));
                }
            }
            other => prop_assert!(false, "a well-formed event was not broadcast: {other:?}"),
        }
    }

    #[test]
    fn sanitiser_invariant_holds_for_any_string(s in any::<String>(), max in 0usize..300) {
        let out = sanitize::text(&s, max);
        prop_assert!(out.chars().count() <= max);
        assert_sanitised(&out);
    }
}
