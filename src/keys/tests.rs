//! Key ring tests against real files in a temporary directory, with a manual clock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::config::{Env, from_yaml};
use crate::token::{self, ClaimGrants, TokenError, TokenPolicy};

const T0: i64 = 1_700_000_000_000;
const M: i64 = 60_000;

/// A temporary directory removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let p = std::env::temp_dir().join(format!(
            "warden-keys-{}-{}",
            std::process::id(),
            format::generate_key_id()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        Self(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &TempDir, extra: &str, env: &[(&str, &str)]) -> Config {
    let yaml = format!(
        "livekit: {{keys_file: {}}}\n{extra}",
        dir.path().join("keys.yaml").display()
    );
    from_yaml(&yaml, &Env::from_pairs(env.iter().copied())).expect("valid config")
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("exists").permissions().mode() & 0o777
}

#[test]
fn first_start_creates_one_key_in_a_private_file_and_only_once() {
    let dir = TempDir::new();
    let cfg = config(&dir, "", &[]);
    let clock = Clock::manual(T0);
    let (ring, created) = KeyRing::load(&cfg, &clock).expect("loads");
    let created = created.expect("no key anywhere: one is created");
    assert_eq!(validate_api_key_format(&created.id), Ok(()));
    assert_eq!(created.path, dir.path().join("keys.yaml"));
    assert_eq!(mode(&created.path), 0o600);
    assert_eq!(mode(&dir.path().join("keys.yaml.meta.json")), 0o600);
    let (id, secret) = ring.signing_key().expect("signs with it");
    assert_eq!(id, created.id);
    assert_eq!(secret.len(), format::SECRET_LEN);
    let text = std::fs::read_to_string(&created.path).expect("readable");
    let parsed = crate::config::parse_key_lines(&text).expect("livekit format");
    assert_eq!(parsed, vec![(id.clone(), secret.clone())]);
    let meta = std::fs::read_to_string(dir.path().join("keys.yaml.meta.json")).expect("meta");
    assert!(
        !meta.contains(secret.expose()),
        "metadata never holds a secret"
    );
    let (_, again) = KeyRing::load(&cfg, &clock).expect("loads");
    assert_eq!(again, None);
}

#[test]
fn no_key_is_created_when_the_environment_has_one() {
    let dir = TempDir::new();
    let secret = "e".repeat(40);
    let cfg = config(
        &dir,
        "",
        &[
            ("LIVEKIT_API_KEY", "APIenvironment1"),
            ("LIVEKIT_API_SECRET", &secret),
        ],
    );
    let (ring, created) = KeyRing::load(&cfg, &Clock::manual(T0)).expect("loads");
    assert_eq!(created, None);
    assert_eq!(
        ring.signing_key().map(|(id, _)| id).as_deref(),
        Some("APIenvironment1")
    );
    assert!(
        matches!(
            ring.rotate(T0, true, "test"),
            Err(KeyError::NothingToRotate)
        ),
        "env keys are never rotated"
    );
    assert!(matches!(
        ring.revoke("APIenvironment1", T0, "test"),
        Err(KeyError::NotOwned { .. })
    ));
    // Once Warden has a key of its own, it signs with that one.
    let (own, _) = ring.create_key(T0 + 1, "test").expect("creates");
    assert_eq!(ring.signing_key().map(|(id, _)| id), Some(own));
    assert!(ring.verifying_secret("APIenvironment1", T0 + 2).is_some());
}

#[test]
fn a_key_file_open_to_others_is_refused_naming_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let path = dir.path().join("keys.yaml");
    std::fs::write(&path, format!("APIabcdefghijkm: {}\n", "s".repeat(43))).expect("write");
    for bad in [0o644, 0o604, 0o601] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).expect("chmod");
        let err = KeyRing::load(&config(&dir, "", &[]), &Clock::manual(T0)).expect_err("refused");
        let msg = err.to_string();
        assert!(
            matches!(err, KeyError::Permissions { .. }) && msg.contains("keys.yaml"),
            "{msg}"
        );
        assert!(!msg.contains('\n') && !msg.contains(&"s".repeat(43)));
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    assert!(
        KeyRing::load(&config(&dir, "", &[]), &Clock::manual(T0)).is_ok(),
        "group access is livekit's business"
    );
}

#[test]
fn short_secrets_are_refused_in_strict_mode_and_named_by_id_otherwise() {
    let dir = TempDir::new();
    let env = [
        ("LIVEKIT_API_KEY", "APIshortsecret1"),
        ("LIVEKIT_API_SECRET", "tooShortSecret1234567"),
    ];
    let err = KeyRing::load(&config(&dir, "", &env), &Clock::manual(T0)).expect_err("strict");
    assert!(
        matches!(&err, KeyError::WeakSecret { key_id, len: 21 } if key_id == "APIshortsecret1")
    );
    assert!(!err.to_string().contains("tooShortSecret"));
    let lax = config(&dir, "access_validation: {strict_mode: false}", &env);
    let (ring, _) = KeyRing::load(&lax, &Clock::manual(T0)).expect("lax");
    let warnings = ring.warnings();
    assert!(
        warnings.len() == 1
            && warnings[0].contains("APIshortsecret1")
            && !warnings[0].contains("tooShort")
    );
    let empty = [("LIVEKIT_KEYS", "APIemptysecret1: \"\"")];
    assert!(matches!(
        KeyRing::load(
            &config(&dir, "access_validation: {strict_mode: false}", &empty),
            &Clock::manual(T0)
        ),
        Err(KeyError::EmptySecret { .. })
    ));
}

#[test]
fn retiring_key_verifies_inside_its_window_then_is_revoked_and_leaves_the_file() {
    let dir = TempDir::new();
    let cfg = config(&dir, "", &[]);
    let clock = Clock::manual(T0);
    let (ring, created) = KeyRing::load(&cfg, &clock).expect("loads");
    let old = created.expect("created").id;
    assert!(
        matches!(ring.rotate(T0 + M, false, "test"), Err(KeyError::NotDue { due_ms }) if due_ms == T0 + 24 * 60 * M)
    );
    let (r, _) = ring.rotate(T0 + M, true, "test").expect("forced");
    assert_eq!(
        ring.signing_key().map(|(id, _)| id),
        Some(r.new_id.clone()),
        "new key signs at once"
    );
    assert!(ring.verifying_secret(&r.new_id, T0 + M).is_some());
    assert!(
        ring.verifying_secret(&old, T0 + 31 * M - 1).is_some(),
        "inside the overlap"
    );
    assert!(
        ring.verifying_secret(&old, T0 + 31 * M).is_none(),
        "after the overlap"
    );
    assert!(ring.maintain(T0 + 31 * M - 1).expect("upkeep").is_empty());
    let steps = ring.maintain(T0 + 31 * M).expect("upkeep");
    assert_eq!(
        steps
            .iter()
            .map(|e| (e.action, e.key_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(Action::Expired, old.as_str())]
    );
    assert_eq!(
        ring.snapshot().get(&old).map(|k| k.state),
        Some(KeyState::Revoked)
    );
    let text = std::fs::read_to_string(dir.path().join("keys.yaml")).expect("file");
    assert!(!text.contains(&old) && text.contains(&r.new_id));
    let ev = watch::event_of(&steps[0]);
    assert_eq!(
        (ev.kind, ev.key_id.as_deref()),
        (crate::audit::EventType::KeyRotation, Some(old.as_str()))
    );
}

#[test]
fn a_minted_token_keeps_its_key_verifying_after_rotation() {
    let dir = TempDir::new();
    let cfg = config(&dir, "", &[]);
    let (ring, _) = KeyRing::load(&cfg, &Clock::manual(T0)).expect("loads");
    let grants = ClaimGrants {
        identity: "alice".into(),
        ..ClaimGrants::default()
    };
    let jwt = token::mint(&ring, &grants, Some(Duration::from_secs(2 * 3600)), T0).expect("mints");
    // Another process (the CLI) rotates: it sees the recorded exp in the metadata file.
    let cli = KeyRing::open(&cfg, &Clock::manual(T0 + M)).expect("opens");
    let (r, _) = cli.rotate(T0 + M, true, "cli").expect("rotates");
    assert!(
        r.until_ms >= T0 + 2 * 3600 * 1000 + 60_000,
        "overlap outlives the token: {}",
        r.until_ms - T0
    );
    ring.reload(T0 + 2 * M).expect("server reloads");
    let policy = TokenPolicy::default();
    let late = T0 + 2 * 3600 * 1000 - 1000;
    assert_eq!(
        token::verify(&jwt, &ring, late, &policy)
            .expect("still valid")
            .sub,
        "alice"
    );
    ring.maintain(late).expect("upkeep");
    assert!(
        token::verify(&jwt, &ring, late, &policy).is_ok(),
        "not revoked while its tokens live"
    );
}

#[test]
fn revoked_key_is_refused_at_once() {
    let dir = TempDir::new();
    let cfg = config(&dir, "", &[]);
    let (ring, created) = KeyRing::load(&cfg, &Clock::manual(T0)).expect("loads");
    let id = created.expect("created").id;
    let grants = ClaimGrants {
        identity: "bob".into(),
        ..ClaimGrants::default()
    };
    let jwt = token::mint(&ring, &grants, None, T0).expect("mints");
    ring.revoke(&id, T0 + 1, "test").expect("revokes");
    assert!(matches!(
        token::verify(&jwt, &ring, T0 + 2, &TokenPolicy::default()),
        Err(TokenError::UnknownKey { .. })
    ));
    assert!(matches!(
        ring.revoke(&id, T0 + 3, "test"),
        Err(KeyError::AlreadyRevoked { .. })
    ));
    assert!(matches!(
        ring.revoke("APInotakey12345", T0 + 3, "test"),
        Err(KeyError::UnknownKey { .. })
    ));
    assert!(ring.all_secrets().is_empty(), "revoked secrets are gone");
}

#[test]
fn a_running_ring_picks_up_changes_and_auto_rotates_when_due() {
    let dir = TempDir::new();
    let cfg = config(
        &dir,
        "key_rotation: {auto_rotation: true, rotation_interval_hours: 1}",
        &[],
    );
    let (server, created) = KeyRing::load(&cfg, &Clock::manual(T0)).expect("loads");
    let first = created.expect("created").id;
    let cli = KeyRing::open(&cfg, &Clock::manual(T0)).expect("opens");
    let (second, _) = cli.create_key(T0 + M, "cli").expect("creates");
    assert!(
        server.verifying_secret(&second, T0 + M).is_none(),
        "not seen before reload"
    );
    server.reload(T0 + M).expect("reloads");
    assert!(server.verifying_secret(&second, T0 + M).is_some());
    assert!(
        server.maintain(T0 + 59 * M).expect("upkeep").is_empty(),
        "not due yet"
    );
    let steps = server.maintain(T0 + 61 * M).expect("upkeep");
    assert_eq!(steps.len(), 1);
    let mut retired = steps[0].retired.clone();
    retired.sort();
    let mut expect = vec![first, second];
    expect.sort();
    assert_eq!(
        (steps[0].action, steps[0].by.as_str(), retired),
        (Action::Rotated, "auto", expect)
    );
    assert_eq!(
        server.signing_key().map(|(id, _)| id),
        Some(steps[0].key_id.clone())
    );
}

#[test]
fn a_broken_key_file_keeps_the_current_keys() {
    let dir = TempDir::new();
    let cfg = config(&dir, "", &[]);
    let (ring, created) = KeyRing::load(&cfg, &Clock::manual(T0)).expect("loads");
    let id = created.expect("created").id;
    std::fs::write(dir.path().join("keys.yaml"), "- just\n- a list\n").expect("write");
    assert!(ring.reload(T0 + 1).is_err());
    assert!(ring.verifying_secret(&id, T0 + 1).is_some());
}
