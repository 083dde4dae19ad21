//! The scenarios other than fan-out: webhook ingest (flood), idle
//! connections (memory per connection), connection storm (connects per
//! second). Each takes a freshly started server and returns its figures.
//!
//! Invariant: every request's outcome is counted (status or error kind);
//! server CPU comes from `/proc/<pid>/stat` around the measured phase only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::watch;

use crate::conns::{self, Shared, TokenMode, read_stream, unix_now};
use crate::fanout::exchange;
use crate::http;
use crate::report::{Better, Figs, pct_ms, status_counts};
use crate::server::{Server, own_cpu};
use crate::sign::Keys;

/// What a scenario runs against.
pub struct Ctx<'a> {
    /// The fresh server.
    pub server: &'a Server,
    /// Credentials.
    pub keys: &'a Keys,
    /// This run's event-id tag.
    pub tag: String,
    /// How SSE tokens are passed.
    pub mode: TokenMode,
    /// Connects in flight at once.
    pub inflight: usize,
}

/// Signed unique webhooks from `concurrency` keep-alive connections for `duration`.
pub async fn flood(ctx: &Ctx<'_>, concurrency: usize, duration: Duration) -> Result<Figs> {
    let counter = AtomicU64::new(0);
    let (s0, gen0) = (ctx.server.stats(), own_cpu());
    let start = Instant::now();
    let deadline = start + duration;
    let workers = (0..concurrency).map(|_| async {
        let mut conn = None;
        let mut lat = Vec::new();
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        while Instant::now() < deadline {
            let seq = counter.fetch_add(1, Ordering::Relaxed);
            let now = unix_now();
            let body = crate::sign::webhook_body(&ctx.tag, seq, now);
            let auth = ctx.keys.webhook_auth(body.as_bytes(), now);
            let req = http::post(ctx.server.addr, "/webhooks/livekit", &auth, body.as_bytes());
            let t = Instant::now();
            let status = exchange(&mut conn, ctx, &req).await;
            lat.push(t.elapsed().as_micros() as u64);
            if status.starts_with("error") {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            *statuses.entry(status).or_default() += 1;
        }
        (lat, statuses)
    });
    let results = futures_util::future::join_all(workers).await;
    let elapsed = start.elapsed().as_secs_f64();
    let (s1, gen_cpu) = (ctx.server.stats(), own_cpu() - gen0);
    let mut lat = Vec::new();
    let mut statuses = BTreeMap::new();
    for (l, s) in results {
        lat.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    lat.sort_unstable();
    let ok: u64 = statuses
        .iter()
        .filter(|(k, _)| k.starts_with('2'))
        .map(|(_, v)| v)
        .sum();
    let cpu = s1.cpu_s - s0.cpu_s;
    let mut figs = Figs::default();
    figs.num(
        "accepted webhooks/s (2xx)",
        ok as f64 / elapsed,
        0,
        Better::Higher,
    );
    figs.text("statuses", status_counts(&statuses));
    figs.num("latency p50 ms", pct_ms(&lat, 50.0), 2, Better::Lower);
    figs.num("latency p99 ms", pct_ms(&lat, 99.0), 2, Better::Lower);
    figs.num("latency max ms", pct_ms(&lat, 100.0), 2, Better::Lower);
    figs.num(
        "server CPU µs per accepted webhook",
        cpu * 1e6 / ok.max(1) as f64,
        1,
        Better::Lower,
    );
    figs.num(
        "server CPU % of one core",
        cpu * 100.0 / elapsed,
        0,
        Better::Neither,
    );
    figs.num("server RSS end MB", s1.rss as f64 / 1e6, 1, Better::Lower);
    figs.num("server peak RSS MB", s1.hwm as f64 / 1e6, 1, Better::Lower);
    figs.num(
        "generator CPU % of one core",
        gen_cpu * 100.0 / elapsed,
        0,
        Better::Neither,
    );
    Ok(figs)
}

/// `n` idle subscribers held for `hold`: server memory per connection.
pub async fn idle(ctx: &Ctx<'_>, n: usize, hold: Duration) -> Result<Figs> {
    let s0 = ctx.server.stats();
    let opened = conns::open_many(
        ctx.server.target,
        ctx.keys,
        ctx.server.addr,
        n,
        ctx.inflight,
        ctx.mode,
    )
    .await;
    let s1 = ctx.server.stats();
    let ok = opened.ok.len();
    let shared = Shared::new(crate::sign::marker(&ctx.tag), 0, 1, ok);
    let (stop, rx) = watch::channel(false);
    let tasks: Vec<_> = opened
        .ok
        .into_iter()
        .map(|est| tokio::spawn(read_stream(est, shared.clone(), rx.clone())))
        .collect();
    tokio::time::sleep(hold).await;
    let s2 = ctx.server.stats();
    let _ = stop.send(true);
    let mut alive = 0;
    for t in tasks {
        if t.await.is_ok_and(|r| !r.closed) {
            alive += 1;
        }
    }
    let per = |s: u64| (s.saturating_sub(s0.rss)) as f64 / ok.max(1) as f64;
    let mut figs = Figs::default();
    figs.text("established / asked", format!("{ok} / {n}"));
    figs.text("connect statuses", status_counts(&opened.statuses));
    figs.text("still open at end of hold", format!("{alive} / {ok}"));
    figs.num(
        "connections/s while connecting",
        ok as f64 / opened.elapsed.as_secs_f64(),
        0,
        Better::Higher,
    );
    figs.num(
        "server RSS before MB",
        s0.rss as f64 / 1e6,
        1,
        Better::Lower,
    );
    figs.num(
        "server RSS connected MB",
        s1.rss as f64 / 1e6,
        1,
        Better::Lower,
    );
    figs.num(
        "server RSS end of hold MB",
        s2.rss as f64 / 1e6,
        1,
        Better::Lower,
    );
    figs.num(
        "bytes per connection, connected",
        per(s1.rss),
        0,
        Better::Lower,
    );
    figs.num(
        "bytes per connection, end of hold",
        per(s2.rss),
        0,
        Better::Lower,
    );
    figs.num(
        "server CPU s connecting",
        s1.cpu_s - s0.cpu_s,
        2,
        Better::Lower,
    );
    figs.num(
        "server CPU % while holding",
        (s2.cpu_s - s1.cpu_s) * 100.0 / hold.as_secs_f64(),
        2,
        Better::Lower,
    );
    Ok(figs)
}

/// `n` authenticated SSE connects, `ctx.inflight` at once, all kept open until the end.
pub async fn storm(ctx: &Ctx<'_>, n: usize) -> Result<Figs> {
    let (s0, gen0) = (ctx.server.stats(), own_cpu());
    let opened = conns::open_many(
        ctx.server.target,
        ctx.keys,
        ctx.server.addr,
        n,
        ctx.inflight,
        ctx.mode,
    )
    .await;
    let s1 = ctx.server.stats();
    let ok = opened.ok.len();
    let secs = opened.elapsed.as_secs_f64();
    let mut figs = Figs::default();
    figs.text(
        "established / asked",
        format!("{ok} / {n} ({} in flight)", ctx.inflight),
    );
    figs.text("statuses", status_counts(&opened.statuses));
    figs.num("connections/s", ok as f64 / secs, 0, Better::Higher);
    figs.num(
        "connect p50 ms",
        pct_ms(&opened.latencies_us, 50.0),
        2,
        Better::Lower,
    );
    figs.num(
        "connect p99 ms",
        pct_ms(&opened.latencies_us, 99.0),
        2,
        Better::Lower,
    );
    figs.num(
        "server CPU µs per connection",
        (s1.cpu_s - s0.cpu_s) * 1e6 / ok.max(1) as f64,
        0,
        Better::Lower,
    );
    figs.num("generator CPU s", own_cpu() - gen0, 2, Better::Neither);
    drop(opened);
    Ok(figs)
}
