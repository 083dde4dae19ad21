//! Verifying a LiveKit access token (`token::verify`): paid on every SSE
//! connect and every API call.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use warden::keys::KeyRing;
use warden::redact::Secret;
use warden::token::{self, ClaimGrants, TokenPolicy};

const KEY: &str = "APIbenchKey2345";
const SECRET: &str = "Xk3vP9qLmT2wR7yB4nH6jD8fG5sA1cZ0eU3iO7pQ2rW";
const NOW_MS: i64 = 1_700_000_000_000;

fn verify(c: &mut Criterion) {
    let keys = KeyRing::from_keys([(KEY.to_owned(), Secret::new(SECRET))]);
    let mut grants = ClaimGrants {
        identity: "dashboard-user".to_owned(),
        ..ClaimGrants::default()
    };
    grants.video.room_list = true;
    let tok = token::mint(&keys, &grants, None, NOW_MS).expect("the ring has a signing key");
    let policy = TokenPolicy::default();
    let claims = token::verify(&tok, &keys, NOW_MS, &policy).expect("a fresh token verifies");
    assert!(claims.grants.video.room_list);
    let mut forged = tok.clone();
    forged.pop();
    forged.push(if tok.ends_with('A') { 'B' } else { 'A' });
    assert!(token::verify(&forged, &keys, NOW_MS, &policy).is_err());
    let mut g = c.benchmark_group("token");
    g.bench_function("verify valid roomList token", |b| {
        b.iter(|| token::verify(black_box(&tok), &keys, NOW_MS, &policy).is_ok())
    });
    g.bench_function("verify forged token", |b| {
        b.iter(|| token::verify(black_box(&forged), &keys, NOW_MS, &policy).is_err())
    });
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
