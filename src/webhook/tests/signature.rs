//! Signature verification: every way a token or body can be wrong, and the exact edges.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;

#[test]
fn bearer_prefix_is_tolerated_in_any_case() {
    let h = harness();
    for (i, prefix) in ["Bearer ", "bearer  ", "BEARER "].iter().enumerate() {
        let body = joined(&format!("EV_b{i}"));
        broadcast(receive(&h, &[&format!("{prefix}{}", sign(&body))], &body));
    }
}

#[test]
fn any_change_to_the_body_is_refused() {
    let h = harness();
    let body = joined("EV_x");
    let auth = sign(&body);
    let mut flipped = body.clone();
    let at = body
        .windows(6)
        .position(|w| w == b"\"demo\"")
        .expect("name")
        + 1;
    flipped[at] ^= 1;
    refused_with(&h, &[&auth], &flipped, SignatureError::ChecksumMismatch);
    let mut newline = body.clone();
    newline.push(b'\n');
    refused_with(&h, &[&auth], &newline, SignatureError::ChecksumMismatch);
    assert_eq!(
        h.audit
            .recent()
            .last()
            .and_then(|e| e.key_id.clone())
            .as_deref(),
        Some(KEY)
    );
}

/// A body whose standard base64 SHA-256 contains `+` or `/`, so the url-safe form differs.
fn body_with_url_unsafe_hash() -> Vec<u8> {
    (0..)
        .map(|i| joined(&format!("EV_u{i}")))
        .find(|b| verify::body_checksum(b).contains(['+', '/']))
        .expect("found")
}

#[test]
fn other_hash_encodings_are_refused() {
    let h = harness();
    let body = body_with_url_unsafe_hash();
    let std = verify::body_checksum(&body);
    let url_safe = std.replace('+', "-").replace('/', "_");
    let unpadded = std.trim_end_matches('=').to_owned();
    use sha2::Digest as _;
    let hex = hex::encode(sha2::Sha256::digest(&body));
    for alt in [
        url_safe.clone(),
        url_safe.trim_end_matches('=').to_owned(),
        unpadded,
        hex,
    ] {
        let mut c = claims(&body);
        c["sha256"] = json!(alt);
        refused_with(
            &h,
            &[&token(&c, "HS256", SECRET)],
            &body,
            SignatureError::ChecksumMismatch,
        );
    }
    broadcast(receive(
        &h,
        &[&token(&claims(&body), "HS256", SECRET)],
        &body,
    ));
}

#[test]
fn missing_claims_are_refused() {
    let h = harness();
    let body = joined("EV_m");
    for (claim, want) in [
        ("sha256", SignatureError::MissingChecksum),
        ("exp", SignatureError::MissingExp),
        ("iss", SignatureError::UnknownKey),
    ] {
        let mut c = claims(&body);
        c.as_object_mut().expect("object").remove(claim);
        refused_with(&h, &[&token(&c, "HS256", SECRET)], &body, want);
    }
}

#[test]
fn exp_and_nbf_honour_the_leeway_to_the_millisecond() {
    let h = harness();
    let leeway_ms = i64::try_from(settings().leeway.as_millis()).expect("small");
    let exp_secs = T0 / 1000 - 300;
    let with = |id: &str, exp: i64, nbf: i64| {
        let body = joined(id);
        let mut c = claims(&body);
        c["exp"] = json!(exp);
        c["nbf"] = json!(nbf);
        (body.clone(), token(&c, "HS256", SECRET))
    };
    // Expired exactly `leeway` ago: still accepted; one millisecond later: refused.
    h.clock.set_ms(exp_secs * 1000 + leeway_ms);
    let (b, t) = with("EV_e1", exp_secs, exp_secs - 300);
    broadcast(receive(&h, &[&t], &b));
    h.clock.set_ms(exp_secs * 1000 + leeway_ms + 1);
    let (b, t) = with("EV_e2", exp_secs, exp_secs - 300);
    refused_with(&h, &[&t], &b, SignatureError::Expired);
    // Valid from `leeway` ahead: accepted exactly at the edge, refused one millisecond earlier.
    let nbf_secs = T0 / 1000 + 60;
    h.clock.set_ms(nbf_secs * 1000 - leeway_ms);
    let (b, t) = with("EV_n1", nbf_secs + 300, nbf_secs);
    broadcast(receive(&h, &[&t], &b));
    h.clock.set_ms(nbf_secs * 1000 - leeway_ms - 1);
    let (b, t) = with("EV_n2", nbf_secs + 300, nbf_secs);
    refused_with(&h, &[&t], &b, SignatureError::NotYetValid);
}

#[test]
fn only_hs256_is_accepted() {
    let h = harness();
    let body = joined("EV_alg");
    let c = claims(&body);
    for alg in ["HS384", "HS512"] {
        refused_with(
            &h,
            &[&token(&c, alg, SECRET)],
            &body,
            SignatureError::Algorithm,
        );
    }
    let payload = URL_SAFE_NO_PAD.encode(c.to_string());
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"typ":"JWT"}"#,
    ] {
        let unsigned = format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(header));
        refused_with(&h, &[&unsigned], &body, SignatureError::Algorithm);
    }
}

#[test]
fn keys_and_headers_are_checked() {
    let h = harness();
    let body = joined("EV_k");
    let mut c = claims(&body);
    c["iss"] = json!("APIunknown9999");
    refused_with(
        &h,
        &[&token(&c, "HS256", SECRET)],
        &body,
        SignatureError::UnknownKey,
    );
    assert_eq!(
        h.audit
            .recent()
            .last()
            .and_then(|e| e.key_id.clone())
            .as_deref(),
        Some("APIunknown9999")
    );
    let wrong = format!("{SECRET}x");
    refused_with(
        &h,
        &[&token(&claims(&body), "HS256", &wrong)],
        &body,
        SignatureError::BadSignature,
    );
    let good = sign(&body);
    refused_with(&h, &[&good, &good], &body, SignatureError::MultipleHeaders);
    refused_with(&h, &[], &body, SignatureError::Missing);
    refused_with(&h, &[""], &body, SignatureError::Missing);
    refused_with(&h, &["Bearer "], &body, SignatureError::Missing);
    refused_with(&h, &["garbage"], &body, SignatureError::Malformed);
    refused_with(
        &h,
        &["Basic dXNlcjpwYXNz"],
        &body,
        SignatureError::Malformed,
    );
    refused_with(
        &h,
        &[&"a".repeat(verify::MAX_TOKEN_BYTES + 1)],
        &body,
        SignatureError::TooLong,
    );
    let tampered = format!("{}A", &good[..good.len() - 1]);
    assert_ne!(tampered, good);
    refused_with(&h, &[&tampered], &body, SignatureError::BadSignature);
    broadcast(receive(&h, &[&good], &body));
}

#[test]
fn a_key_with_an_empty_secret_verifies_nothing() {
    let h = harness_with(
        settings(),
        KeyRing::from_keys([("APIempty".to_owned(), Secret::new(""))]),
    );
    let body = joined("EV_empty");
    let mut c = claims(&body);
    c["iss"] = json!("APIempty");
    let forged = token(&c, "HS256", "");
    refused_with(&h, &[&forged], &body, SignatureError::UnknownKey);
}

/// The token's parts one by one: each malformation keeps the reason it had
/// when jsonwebtoken checked the token, and nothing but the exact signed
/// bytes verifies.
#[test]
fn each_part_of_the_token_is_checked_strictly() {
    let h = harness();
    let body = joined("EV_parts");
    let good = sign(&body);
    let parts: Vec<&str> = good.split('.').collect();
    let [head, payload, sig] = parts[..] else {
        panic!("three parts")
    };
    let join = |h: &str, p: &str, s: &str| format!("{h}.{p}.{s}");
    // Four parts, two parts.
    refused_with(
        &h,
        &[&format!("{good}.x")],
        &body,
        SignatureError::Malformed,
    );
    refused_with(
        &h,
        &[&format!("{head}.{payload}")],
        &body,
        SignatureError::Malformed,
    );
    // Padding or characters outside base64url in any part.
    refused_with(
        &h,
        &[&join(&format!("{head}="), payload, sig)],
        &body,
        SignatureError::Malformed,
    );
    // (A padded payload changes the signed bytes: the HMAC fails first;
    // signed as it is, the padding is still refused.)
    refused_with(
        &h,
        &[&join(head, &format!("{payload}="), sig)],
        &body,
        SignatureError::BadSignature,
    );
    let padded_signed = {
        use hmac::{Hmac, Mac};
        let signed = format!("{head}.{payload}=");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
        mac.update(signed.as_bytes());
        format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    };
    refused_with(&h, &[&padded_signed], &body, SignatureError::Malformed);
    refused_with(
        &h,
        &[&join(head, payload, &format!("{sig}="))],
        &body,
        SignatureError::Malformed,
    );
    refused_with(
        &h,
        &[&join(head, payload, "a+b/")],
        &body,
        SignatureError::Malformed,
    );
    // A header or payload that is not JSON.
    let not_json = URL_SAFE_NO_PAD.encode("not json");
    refused_with(
        &h,
        &[&join(&not_json, payload, sig)],
        &body,
        SignatureError::Malformed,
    );
    refused_with(
        &h,
        &[&join(head, &not_json, sig)],
        &body,
        SignatureError::Malformed,
    );
    // `alg` is compared exactly.
    let lower = URL_SAFE_NO_PAD.encode(r#"{"alg":"hs256","typ":"JWT"}"#);
    refused_with(
        &h,
        &[&join(&lower, payload, sig)],
        &body,
        SignatureError::Algorithm,
    );
    // Another HS256 header, or another payload, under the original signature.
    let other_head = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT","kid":"x"}"#);
    refused_with(
        &h,
        &[&join(&other_head, payload, sig)],
        &body,
        SignatureError::BadSignature,
    );
    let mut c = claims(&body);
    c["exp"] = json!(T0 / 1000 + 3600);
    let later = URL_SAFE_NO_PAD.encode(c.to_string());
    refused_with(
        &h,
        &[&join(head, &later, sig)],
        &body,
        SignatureError::BadSignature,
    );
    // A truncated signature (40 characters: whole base64 quanta, so it
    // decodes whatever the signature's bits are, to 30 bytes that cannot match).
    refused_with(
        &h,
        &[&join(head, payload, &sig[..sig.len() - 3])],
        &body,
        SignatureError::BadSignature,
    );
    broadcast(receive(&h, &[&good], &body));
}

/// Signed claims of the wrong type: `exp` must be a non-negative integer.
#[test]
fn signed_claims_of_the_wrong_type_are_refused() {
    let h = harness();
    let body = joined("EV_types");
    for (exp, want) in [
        (json!(-1), SignatureError::MissingExp),
        (json!("1700000300"), SignatureError::Malformed),
        (json!(1.5), SignatureError::Malformed),
        (json!(null), SignatureError::MissingExp),
    ] {
        let mut c = claims(&body);
        c["exp"] = exp.clone();
        refused_with(&h, &[&token(&c, "HS256", SECRET)], &body, want);
    }
    let mut c = claims(&body);
    c["sha256"] = json!(42);
    refused_with(
        &h,
        &[&token(&c, "HS256", SECRET)],
        &body,
        SignatureError::Malformed,
    );
}
