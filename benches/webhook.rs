//! Webhook verification + decode + normalisation (`webhook::Receiver::receive`)
//! and the in-memory dedupe that follows it in `ingest` (`ReplayStore::check`)
//! on a real LiveKit `participant_joined` body: the per-request cost of ingest.
//! Every iteration gets a body with a fresh event id (made outside the timed
//! part), so the replay store never turns it into a cheap duplicate.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use warden::audit::Audit;
use warden::clock::Clock;
use warden::config::Config;
use warden::keys::KeyRing;
use warden::pepper::Pepper;
use warden::redact::Secret;
use warden::webhook::{
    Outcome, Receiver, ReceiverSettings, ReplayStore, Seen, emit, replay, verify,
};

const KEY: &str = "APIbenchKey2345";
const SECRET: &str = "Xk3vP9qLmT2wR7yB4nH6jD8fG5sA1cZ0eU3iO7pQ2rW";
const NOW_MS: i64 = 1_700_000_000_000;

fn signed() -> (Vec<u8>, String) {
    let body = emit::livekit_body("participant_joined", "demo-room", "alice", NOW_MS);
    let auth = verify::sign_as_livekit(&body, KEY, SECRET, NOW_MS / 1000).expect("HS256 signs");
    (body, auth)
}

fn receive(c: &mut Criterion) {
    let rx = Receiver::new(
        KeyRing::from_keys([(KEY.to_owned(), Secret::new(SECRET))]),
        Pepper::new("0123456789abcdef0123456789abcdef"),
        Audit::in_memory(),
        Clock::manual(NOW_MS),
        ReceiverSettings::from_config(&Config::defaults()),
    );
    let seen = ReplayStore::memory(100_000);
    let window = rx.replay_window();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (body, auth) = signed();
    let first = rx.receive(ip, &[auth.as_str()], &body);
    assert!(matches!(first, Ok(Outcome::Event(..))), "{first:?}");
    c.bench_function("webhook receive (verify + decode + normalise)", |b| {
        b.iter_batched(
            signed,
            |(body, auth)| match rx.receive(ip, &[auth.as_str()], black_box(&body)) {
                Ok(Outcome::Event(event, digest)) => {
                    seen.check(&event.id, digest, NOW_MS, window) == Seen::New
                }
                _ => false,
            },
            BatchSize::SmallInput,
        )
    });
}

/// `ReplayStore::check` of a new id on the SQLite-backed store Warden runs
/// with: the request's share of replay protection (the write itself happens
/// behind, in batches, on the writer thread).
fn replay_check(c: &mut Criterion) {
    let store = ReplayStore::sqlite(
        warden::store::Sqlite::in_memory().expect("in-memory SQLite"),
        1_000_000,
    )
    .expect("replay store");
    let window = std::time::Duration::from_secs(600);
    let digest = replay::digest(b"body");
    let mut n = 0u64;
    c.bench_function("replay check, new id (SQLite write-behind)", |b| {
        b.iter_batched(
            || {
                n += 1;
                format!("EV_bench{n}")
            },
            |id| store.check(black_box(&id), digest, NOW_MS, window),
            BatchSize::SmallInput,
        )
    });
    store.flush();
}

criterion_group!(benches, receive, replay_check);
criterion_main!(benches);
