//! Masking one log line (`Masker::mask`): the cost every log line pays.
//! A clean line must stay a cheap borrowed scan; a line carrying a JWT and a
//! known API secret is the expensive path.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use warden::redact::{Masker, Secret};

const CLEAN: &str = r#"2026-01-01T12:00:00Z INFO warden::http: request finished method=POST route=/webhooks/livekit status=200 duration_ms=0.41 room.name=demo-room event=participant_joined"#;
const CLEAN_UTF8: &str = r#"2026-01-01T12:00:00Z INFO warden::http: webhook accepted event=participant_joined room="réunion-équipe-東京" lag_ms=12 duration_ms=0.09"#;
const DIAGNOSTIC: &str = r#"2026-01-01T12:00:00Z WARN warden::http: webhook refused status=401 code=invalid_signature reason="invalid webhook signature: unknown key" client=203.0.113.7"#;
const JWT_LINE: &str = r#"2026-01-01T12:00:00Z WARN warden::http: refused authorization="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUEl0ZXN0S2V5MjM0NSIsImV4cCI6MTcwMDAwMDMwMH0.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU" secret=Xk3vP9qLmT2wR7yB4nH6jD8fG5sA1cZ0eU3iO7pQ2rW room.name=demo"#;

fn masking(c: &mut Criterion) {
    let masker = Masker::new();
    let known = [Secret::new("Xk3vP9qLmT2wR7yB4nH6jD8fG5sA1cZ0eU3iO7pQ2rW")];
    masker.set_known_secrets(known.iter());
    // Not a benchmark of a broken masker: every line must come out as expected.
    assert!(matches!(masker.mask(CLEAN), std::borrow::Cow::Borrowed(_)));
    assert!(matches!(
        masker.mask(CLEAN_UTF8),
        std::borrow::Cow::Borrowed(_)
    ));
    assert!(!masker.mask(JWT_LINE).contains("eyJhbGci"));
    let mut g = c.benchmark_group("mask");
    g.bench_function("clean line", |b| {
        b.iter(|| masker.mask(black_box(CLEAN)).len())
    });
    g.bench_function("clean line, non-ASCII room name", |b| {
        b.iter(|| masker.mask(black_box(CLEAN_UTF8)).len())
    });
    g.bench_function("diagnostic line (prose after `signature:`)", |b| {
        b.iter(|| masker.mask(black_box(DIAGNOSTIC)).len())
    });
    g.bench_function("line with a JWT and a known secret", |b| {
        b.iter(|| masker.mask(black_box(JWT_LINE)).len())
    });
    g.finish();
}

criterion_group!(benches, masking);
criterion_main!(benches);
