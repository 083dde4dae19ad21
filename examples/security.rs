//! Warden as a library: what a Rust service can embed instead of the original
//! Python security manager — key format checks, peppered key hashes, secret
//! masking, key rotation with an overlap, token mint/verify and access rights.
//!
//! Run with `cargo run --example security`. Every step checks its own result;
//! the process exits non-zero if one does not hold (the test suite runs it).

use std::time::Duration;

use anyhow::{Context, ensure};
use warden::clock::Clock;
use warden::config::{Env, from_yaml};
use warden::keys::{KeyRing, hash_api_key_for_storage, validate_api_key_format};
use warden::pepper::Pepper;
use warden::redact::Masker;
use warden::token::{self, ClaimGrants, TokenPolicy, validate_access_rights};

fn main() -> anyhow::Result<()> {
    // Key format: LiveKit's `API` + 12 base57 characters, with a precise complaint otherwise.
    ensure!(validate_api_key_format("APIa2b3c4d5e6f7").is_ok());
    let complaint = validate_api_key_format("APIshort")
        .err()
        .context("a short key is refused")?;
    println!("key format: APIshort refused: {complaint}");

    // Keys Warden only needs to recognise are stored as HMAC-SHA256 with the deployment pepper.
    let pepper = Pepper::random();
    let stored = hash_api_key_for_storage(&pepper, "APIa2b3c4d5e6f7");
    ensure!(stored.len() == 64 && stored == hash_api_key_for_storage(&pepper, "APIa2b3c4d5e6f7"));
    println!("storage hash: {}…", &stored[..12]);

    // A key store in a scratch directory, with a manual clock so the overlap can be shown.
    let dir = std::env::temp_dir().join(format!("warden-example-{}", std::process::id()));
    let yaml = format!(
        "livekit: {{keys_file: {}}}\n",
        dir.join("keys.yaml").display()
    );
    let cfg = from_yaml(&yaml, &Env::default())?;
    let clock = Clock::manual(1_700_000_000_000);
    let (ring, created) = KeyRing::load(&cfg, &clock)?;
    let first = created.context("a fresh store creates its first key")?;
    println!("created key {} in {}", first.id, first.path.display());

    // Masking: every secret Warden knows disappears from log lines.
    let masker = Masker::new();
    masker.set_known_secrets(ring.all_secrets().iter());
    let (_, secret) = ring.signing_key().context("a signing key")?;
    let line = format!("connecting with api_secret {}", secret.expose());
    let masked = masker.mask(&line);
    ensure!(!masked.contains(secret.expose()));
    println!("masked: {masked}");

    // Tokens: mint with the active key, verify with the ring.
    let mut grants = ClaimGrants {
        identity: "dashboard".into(),
        ..ClaimGrants::default()
    };
    grants.video.set("roomList", true)?;
    let jwt = token::mint(
        &ring,
        &grants,
        Some(Duration::from_secs(3600)),
        clock.now_ms(),
    )?;

    // Rotation: the new key signs at once; the old one still verifies during the overlap.
    clock.advance(Duration::from_secs(60));
    let (rotated, _new_secret) = ring.rotate(clock.now_ms(), true, "example")?;
    println!(
        "rotated: {} active, {:?} retiring",
        rotated.new_id, rotated.retired
    );
    ensure!(ring.signing_key().map(|(id, _)| id) == Some(rotated.new_id.clone()));
    let policy = TokenPolicy::from_config(&cfg);
    let claims = token::verify(&jwt, &ring, clock.now_ms(), &policy)?;
    println!(
        "verified: sub={} iss={} (a token minted before the rotation)",
        claims.sub, claims.iss
    );

    // Access rights, with LiveKit's grant names.
    ensure!(validate_access_rights(&claims.grants.video, &["roomList"]).is_ok());
    let denied = validate_access_rights(&claims.grants.video, &["roomAdmin", "roomCreate"])
        .err()
        .context("not an admin")?;
    ensure!(token::can_watch_all(&claims) && !token::is_admin(&claims));
    println!("access: may watch every room; admin refused ({denied})");

    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
