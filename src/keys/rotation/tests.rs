use std::time::Duration;

use super::*;
use crate::keys::meta::OwnedKeys;

const H: i64 = 3_600_000;
const M: i64 = 60_000;

fn policy() -> RotationPolicy {
    RotationPolicy {
        interval: Duration::from_secs(24 * 3600),
        overlap: Duration::from_secs(30 * 60),
        token_leeway: Duration::from_secs(60),
    }
}

fn secret(c: char) -> Secret {
    Secret::new(c.to_string().repeat(43))
}

fn one_key(now: i64) -> OwnedKeys {
    let mut k = OwnedKeys::default();
    create(&mut k, "APIold".into(), secret('a'), now, "test");
    k
}

#[test]
fn rotation_is_due_exactly_at_the_interval() {
    let day = Duration::from_secs(24 * 3600);
    assert!(!is_key_rotation_due(1_000, 1_000 + 24 * H - 1, day));
    assert!(is_key_rotation_due(1_000, 1_000 + 24 * H, day));
    assert!(
        !is_key_rotation_due(1_000, 0, day),
        "a clock before creation is never due"
    );
    assert_eq!(rotation_due_at(1_000, day), 1_000 + 24 * H);
}

#[test]
fn rotate_makes_one_active_key_and_retires_the_previous_for_the_overlap() {
    let t0 = 10 * H;
    let mut k = one_key(0);
    let r = rotate(&mut k, "APInew".into(), secret('b'), t0, &policy(), "cli");
    assert_eq!(r.retired, vec!["APIold".to_owned()]);
    assert_eq!(r.until_ms, t0 + 30 * M);
    assert_eq!(k.newest_active().map(|a| a.id.as_str()), Some("APInew"));
    let old = k
        .keys
        .iter()
        .find(|x| x.id == "APIold")
        .expect("old key kept");
    assert_eq!(old.meta.state, StoredState::Retiring);
    assert_eq!(old.meta.replaced_by.as_deref(), Some("APInew"));
    assert!(
        old.secret.is_some(),
        "a retiring key keeps verifying, so its secret stays"
    );
    let last = k.history.last().expect("logged");
    assert_eq!(
        (last.action, last.key_id.as_str(), last.seq),
        (Action::Rotated, "APInew", 2)
    );
}

#[test]
fn overlap_is_extended_to_outlive_minted_tokens() {
    let t0 = 10 * H;
    let mut k = one_key(0);
    assert!(record_minted_exp(&mut k, "APIold", t0 + 2 * H + 1));
    // Rounded up to 5 minutes, so the next token of a similar lifetime needs no write.
    let stored = k.keys[0].meta.max_token_exp_ms.expect("recorded");
    assert!(
        stored > t0 + 2 * H && stored <= t0 + 2 * H + 5 * M,
        "{stored}"
    );
    assert!(!record_minted_exp(&mut k, "APIold", t0 + 2 * H + 2));
    let r = rotate(&mut k, "APInew".into(), secret('b'), t0, &policy(), "cli");
    assert_eq!(
        r.until_ms,
        stored + 60_000,
        "exp + leeway, beyond the 30 min overlap"
    );
    assert!(expire(&mut k, stored + 59_999, "t").is_empty());
    assert_eq!(
        expire(&mut k, stored + 60_000, "t"),
        vec!["APIold".to_owned()]
    );
}

#[test]
fn retiring_key_expires_at_the_end_of_its_window_only() {
    let t0 = 10 * H;
    let mut k = one_key(0);
    rotate(&mut k, "APInew".into(), secret('b'), t0, &policy(), "cli");
    assert!(expire(&mut k, t0 + 30 * M - 1, "server").is_empty());
    assert_eq!(
        expire(&mut k, t0 + 30 * M, "server"),
        vec!["APIold".to_owned()]
    );
    let old = k
        .keys
        .iter()
        .find(|x| x.id == "APIold")
        .expect("kept in metadata");
    assert_eq!(old.meta.state, StoredState::Revoked);
    assert!(
        old.secret.is_none(),
        "a revoked key's secret leaves the key file"
    );
    assert_eq!(
        k.live().map(|(id, _)| id).collect::<Vec<_>>(),
        vec!["APInew"]
    );
    assert_eq!(k.history.last().map(|e| e.action), Some(Action::Expired));
}

#[test]
fn revoke_refuses_unknown_and_repeated() {
    let mut k = one_key(0);
    assert_eq!(
        revoke(&mut k, "APInope", 5, "cli"),
        Err(RevokeRefusal::Unknown)
    );
    assert_eq!(revoke(&mut k, "APIold", 5, "cli"), Ok(()));
    assert_eq!(
        revoke(&mut k, "APIold", 6, "cli"),
        Err(RevokeRefusal::AlreadyRevoked)
    );
    assert!(k.newest_active().is_none());
}

#[test]
fn merge_never_loses_a_key_and_never_undoes_a_revocation() {
    let mut k = one_key(0);
    rotate(&mut k, "APInew".into(), secret('b'), H, &policy(), "cli");
    revoke(&mut k, "APIold", 2 * H, "cli").expect("known");
    let meta = k.to_meta();
    // Crash after the key file was written but before the metadata: a key without metadata is active.
    let file = vec![
        ("APInew".to_owned(), secret('b')),
        ("APIcrash".to_owned(), secret('c')),
    ];
    let merged = OwnedKeys::merge(file, meta.clone(), 3 * H);
    let crash = merged
        .keys
        .iter()
        .find(|x| x.id == "APIcrash")
        .expect("kept");
    assert_eq!(
        (crash.meta.state, crash.meta.created_ms),
        (StoredState::Active, 3 * H)
    );
    assert_eq!(
        merged.newest_active().map(|a| a.id.as_str()),
        Some("APIcrash")
    );
    // A revoked key showing up in the key file again stays revoked and loses its secret.
    let file = vec![
        ("APInew".to_owned(), secret('b')),
        ("APIold".to_owned(), secret('a')),
    ];
    let merged = OwnedKeys::merge(file, meta.clone(), 3 * H);
    let old = merged.keys.iter().find(|x| x.id == "APIold").expect("kept");
    assert!(old.secret.is_none() && old.meta.state == StoredState::Revoked);
    // Metadata of a key whose secret is gone: revoked.
    let merged = OwnedKeys::merge(Vec::new(), meta, 3 * H);
    assert!(
        merged
            .keys
            .iter()
            .all(|x| x.meta.state == StoredState::Revoked && x.secret.is_none())
    );
    assert_eq!(merged.history.len(), 3);
}
