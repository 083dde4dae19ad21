//! Token tests: round trips, LiveKit names and defaults, and adversarial tokens.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::*;
use crate::keys::KeyRing;
use crate::redact::Secret;

const KID: &str = "APIkeyForTests2";
const SECRET: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
const NOW: i64 = 1_700_000_000_000;
const NOW_S: i64 = NOW / 1000;

fn ring() -> KeyRing {
    KeyRing::from_keys([(KID.to_owned(), Secret::new(SECRET))])
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).expect("json"))
}

/// Hand-assembled JWT: header and payload as given, HMAC-SHA256 over them with `key`.
fn hs256_raw(header: &Value, payload: &Value, key: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn signed(payload: &Value) -> String {
    hs256_raw(
        &json!({"alg": "HS256", "typ": "JWT"}),
        payload,
        SECRET.as_bytes(),
    )
}

fn claims(extra: Value) -> Value {
    let mut base = json!({"iss": KID, "sub": "alice", "nbf": NOW_S - 10, "exp": NOW_S + 3600, "video": {"roomList": true}});
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        for (k, v) in e {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
    base
}

fn check(token: &str) -> Result<Claims, TokenError> {
    verify(token, &ring(), NOW, &TokenPolicy::default())
}

/// The error, which must never quote the token or any of its segments.
fn refused(token: &str) -> TokenError {
    let err = check(token).expect_err("must be refused");
    let shown = format!("{err} {err:?}");
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!shown.contains(part), "error quotes the token: {shown}");
    }
    err
}

#[test]
fn minted_tokens_verify_with_the_same_grants() {
    let ring = ring();
    let mut grants = ClaimGrants {
        identity: "alice".into(),
        name: "Alice".into(),
        ..ClaimGrants::default()
    };
    grants.video.set("roomAdmin", true).expect("known");
    grants.video.room = Some("r1".into());
    grants.video.can_publish_sources = vec!["camera".into()];
    grants.attributes.insert("team".into(), "blue".into());
    grants.sip = Some(SipGrant {
        admin: true,
        call: false,
    });
    let jwt = mint(&ring, &grants, None, NOW).expect("mints");
    let c = verify(&jwt, &ring, NOW, &TokenPolicy::default()).expect("verifies");
    assert_eq!(
        (c.iss.as_str(), c.exp - c.nbf.expect("nbf set")),
        (KID, 6 * 3600),
        "default lifetime 6 h"
    );
    assert_eq!(c.grants(), grants);
    assert!(
        can_watch_room(&c, "r1")
            && !can_watch_room(&c, "r2")
            && !can_watch_all(&c)
            && !is_admin(&c)
    );
}

#[test]
fn claim_names_are_livekits() {
    let mut v = VideoGrant::default();
    for name in VIDEO_GRANT_NAMES {
        v.set(name, true).expect("known");
    }
    v.room = Some("r".into());
    v.destination_room = Some("d".into());
    v.can_publish_sources = vec!["microphone".into()];
    let json = serde_json::to_value(&v).expect("json");
    let mut keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected: Vec<&str> = VIDEO_GRANT_NAMES.to_vec();
    expected.extend(["room", "destinationRoom", "canPublishSources"]);
    expected.sort_unstable();
    assert_eq!(keys, expected);
    let g = ClaimGrants {
        room_config: Some(json!({"emptyTimeout": 5})),
        room_preset: "p".into(),
        kind: "agent".into(),
        ..ClaimGrants::default()
    };
    let j = serde_json::to_value(&g).expect("json");
    assert!(
        j.get("roomConfig").is_some() && j.get("roomPreset").is_some() && j.get("kind").is_some()
    );
    assert!(j.get("identity").is_none(), "identity travels as sub");
}

#[test]
fn defaults_follow_livekit() {
    let v: VideoGrant = serde_json::from_value(json!({})).expect("empty grant");
    assert!(v.can_publish() && v.can_subscribe() && v.can_publish_data());
    assert_eq!(v.get("canUpdateOwnMetadata"), Ok(false));
    let v: VideoGrant = serde_json::from_value(json!({"canPublish": false})).expect("grant");
    assert!(!v.can_publish_data(), "canPublishData follows canPublish");
    let v: VideoGrant =
        serde_json::from_value(json!({"canPublish": false, "canPublishData": true}))
            .expect("grant");
    assert!(v.can_publish_data());
}

#[test]
fn access_rights_and_roles() {
    let v: VideoGrant =
        serde_json::from_value(json!({"roomAdmin": true, "roomCreate": true})).expect("grant");
    assert_eq!(
        validate_access_rights(&v, &["roomAdmin", "roomCreate"]),
        Ok(())
    );
    assert_eq!(
        validate_access_rights(&v, &["roomAdmin", "roomList", "roomRecord"]),
        Err(Denied::Missing {
            missing: vec!["roomList".into(), "roomRecord".into()]
        })
    );
    assert!(matches!(
        validate_access_rights(&v, &["root"]),
        Err(Denied::Unknown(_))
    ));
    let with = |video: VideoGrant| Claims {
        grants: ClaimGrants {
            video,
            ..ClaimGrants::default()
        },
        ..Claims::default()
    };
    let admin = with(v.clone());
    // SPEC: the admin grants watch every room.
    assert!(is_admin(&admin) && can_watch_all(&admin) && can_watch_room(&admin, "r"));
    let scoped = with(VideoGrant {
        room: Some("r".into()),
        ..v
    });
    assert!(!is_admin(&scoped) && can_watch_room(&scoped, "r") && !can_watch_room(&scoped, "s"));
    let lister = with(VideoGrant {
        room_list: true,
        ..VideoGrant::default()
    });
    assert!(can_watch_all(&lister) && can_watch_room(&lister, "any"));
}

#[test]
fn alg_none_and_other_algorithms_are_refused() {
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none"})),
        b64(&claims(json!({})))
    );
    assert!(matches!(
        refused(&none),
        TokenError::Malformed(StructureError::EmptySegment {
            segment: "signature"
        })
    ));
    let none_signed = hs256_raw(
        &json!({"alg": "none"}),
        &claims(json!({})),
        SECRET.as_bytes(),
    );
    assert!(matches!(refused(&none_signed), TokenError::Algorithm { alg } if alg == "none"));
    for alg in ["HS384", "HS512"] {
        let t = jws::hmac_token(alg, &claims(json!({})), SECRET.as_bytes());
        assert!(
            matches!(refused(&t), TokenError::Algorithm { .. }),
            "{alg:?}"
        );
    }
    let rs = hs256_raw(
        &json!({"alg": "RS256"}),
        &claims(json!({})),
        SECRET.as_bytes(),
    );
    assert!(matches!(refused(&rs), TokenError::Algorithm { alg } if alg == "RS256"));
}

#[test]
fn an_rsa_public_key_used_as_hmac_secret_is_a_bad_signature() {
    let pem = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u\n-----END PUBLIC KEY-----\n";
    let t = hs256_raw(&json!({"alg": "HS256"}), &claims(json!({})), pem.as_bytes());
    assert!(matches!(refused(&t), TokenError::BadSignature));
}

#[test]
fn empty_secrets_never_verify() {
    let t = hs256_raw(&json!({"alg": "HS256"}), &claims(json!({})), b"");
    assert!(matches!(refused(&t), TokenError::BadSignature));
    let empty = KeyRing::from_keys([(KID.to_owned(), Secret::new(""))]);
    let err = verify(&t, &empty, NOW, &TokenPolicy::default())
        .expect_err("a key with an empty secret verifies nothing");
    assert!(matches!(err, TokenError::UnknownKey { .. }));
}

#[test]
fn missing_and_mistyped_claims_are_refused() {
    assert!(matches!(
        refused(&signed(&claims(json!({"exp": null})))),
        TokenError::MissingClaim { claim: "exp" }
    ));
    assert!(matches!(
        refused(&signed(&claims(json!({"iss": null})))),
        TokenError::MissingClaim { claim: "iss" }
    ));
    let string_exp = signed(&claims(json!({"exp": (NOW_S + 3600).to_string()})));
    assert!(matches!(
        refused(&string_exp),
        TokenError::ClaimType { claim: "exp", .. }
    ));
    let string_nbf = signed(&claims(json!({"nbf": (NOW_S - 10).to_string()})));
    assert!(matches!(
        refused(&string_nbf),
        TokenError::ClaimType { claim: "nbf", .. }
    ));
    assert!(matches!(
        refused(&signed(&claims(json!({"iss": 42})))),
        TokenError::ClaimType { claim: "iss", .. }
    ));
    assert!(
        check(&signed(&claims(json!({"nbf": null})))).is_ok(),
        "nbf is optional"
    );
}

#[test]
fn time_claims_use_the_leeway_exactly() {
    let policy = TokenPolicy {
        leeway: Duration::from_secs(60),
        max_len: 8192,
    };
    let t = signed(&claims(json!({"exp": NOW_S})));
    assert!(
        verify(&t, &ring(), NOW + 60_000 - 1, &policy).is_ok(),
        "just inside the leeway"
    );
    assert!(
        matches!(verify(&t, &ring(), NOW + 60_000, &policy), Err(TokenError::Expired { exp }) if exp == NOW_S)
    );
    let ahead = signed(&claims(json!({"nbf": NOW_S + 3600})));
    assert!(matches!(refused(&ahead), TokenError::NotYetValid { .. }));
    let skewed = signed(&claims(json!({"nbf": NOW_S + 60})));
    assert!(
        verify(&skewed, &ring(), NOW, &policy).is_ok(),
        "nbf within the leeway"
    );
    assert!(verify(&skewed, &ring(), NOW - 1, &policy).is_err());
}

#[test]
fn a_forged_expired_token_is_a_bad_signature() {
    let t = hs256_raw(
        &json!({"alg": "HS256"}),
        &claims(json!({"exp": NOW_S - 7200})),
        b"wrong-secret-of-sufficient-length!!",
    );
    assert!(matches!(refused(&t), TokenError::BadSignature));
}

#[test]
fn length_is_capped_before_decoding() {
    let big = signed(&claims(json!({"metadata": "x".repeat(100 * 1024)})));
    assert!(big.len() > 100 * 1024);
    assert!(matches!(
        refused(&big),
        TokenError::TooLong { max: 8192, .. }
    ));
    let garbage = "!".repeat(100 * 1024);
    assert!(
        matches!(refused(&garbage), TokenError::TooLong { .. }),
        "no decoding attempted"
    );
}

#[test]
fn unknown_issuer_is_refused() {
    let t = signed(&claims(json!({"iss": "APIsomeoneElse1"})));
    assert!(
        matches!(refused(&t), TokenError::UnknownKey { key_id } if key_id == "APIsomeoneElse1")
    );
}

#[test]
fn structure_errors_are_precise() {
    assert_eq!(validate_jwt_token_structure(""), Err(StructureError::Empty));
    assert_eq!(
        validate_jwt_token_structure("a.b"),
        Err(StructureError::Segments { found: 2 })
    );
    assert_eq!(
        validate_jwt_token_structure(".a.b"),
        Err(StructureError::EmptySegment { segment: "header" })
    );
    assert_eq!(
        validate_jwt_token_structure("a*.b.c"),
        Err(StructureError::Base64 { segment: "header" })
    );
    let arr = URL_SAFE_NO_PAD.encode("[1]");
    assert_eq!(
        validate_jwt_token_structure(&format!("{arr}.{arr}.c2ln")),
        Err(StructureError::NotJsonObject { segment: "header" })
    );
    let no_alg = format!("{}.{}.c2ln", b64(&json!({"typ": "JWT"})), b64(&json!({})));
    assert_eq!(
        validate_jwt_token_structure(&no_alg),
        Err(StructureError::MissingAlg)
    );
    assert_eq!(
        validate_jwt_token_structure(&signed(&claims(json!({})))),
        Ok(())
    );
}

#[test]
fn mint_refuses_what_livekit_refuses() {
    let ring = ring();
    let mut grants = ClaimGrants::default();
    grants.video.room_join = true;
    assert!(
        matches!(
            mint(&ring, &grants, None, NOW),
            Err(TokenError::InvalidGrants(_))
        ),
        "roomJoin needs an identity"
    );
    assert!(matches!(
        mint(&KeyRing::default(), &ClaimGrants::default(), None, NOW),
        Err(TokenError::NoSigningKey)
    ));
    assert!(matches!(
        mint(&ring, &ClaimGrants::default(), Some(Duration::ZERO), NOW),
        Err(TokenError::InvalidGrants(_))
    ));
}
