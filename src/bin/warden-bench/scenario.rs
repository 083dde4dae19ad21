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
use tokio_rustls::TlsConnector;

use crate::conns::{self, Shared, TokenMode, read_stream, unix_now};
use crate::fanout::exchange;
use crate::figure::{Figure, Pct};
use crate::http;
use crate::report::{Figs, pct_ms, status_counts};
use crate::server::{ProcStats, Server, own_cpu};
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
    /// How long deliveries may trail the last webhook before they count as lost.
    pub drain: Duration,
    /// A TLS client (HTTP/1.1) trusting the server, when it terminates TLS:
    /// subscribers and webhooks then go over TLS.
    pub tls: Option<TlsConnector>,
}

impl Ctx<'_> {
    /// Opens `n` streams to the server, `inflight` at once.
    pub async fn open(&self, n: usize) -> conns::Opened {
        let (t, a) = (self.server.target, (self.server.addr, self.tls.as_ref()));
        conns::open_many(t, self.keys, a, n, self.inflight, self.mode).await
    }
}

/// One flood connection's tally.
#[derive(Default)]
struct Tally {
    lat_us: Vec<u64>,
    statuses: BTreeMap<String, u64>,
}

/// Sends signed unique webhooks back to back on one keep-alive connection until `deadline`.
async fn flood_worker(ctx: &Ctx<'_>, counter: &AtomicU64, deadline: Instant) -> Tally {
    let mut conn = None;
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        let seq = counter.fetch_add(1, Ordering::Relaxed);
        let now = unix_now();
        let body = crate::sign::webhook_body(&ctx.tag, seq, now);
        let auth = ctx.keys.webhook_auth(body.as_bytes(), now);
        let req = http::post(ctx.server.addr, "/webhooks/livekit", &auth, body.as_bytes());
        let t = Instant::now();
        let status = exchange(&mut conn, ctx, &req).await;
        tally.lat_us.push(t.elapsed().as_micros() as u64);
        if status.starts_with("error") {
            // A refused connect must not spin: the server may be restarting its listener.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        *tally.statuses.entry(status).or_default() += 1;
    }
    tally
}

/// Signed unique webhooks from `concurrency` keep-alive connections for `duration`.
pub async fn flood(ctx: &Ctx<'_>, concurrency: usize, duration: Duration) -> Result<Figs> {
    let counter = AtomicU64::new(0);
    let (s0, gen0, start) = (ctx.server.stats(), own_cpu(), Instant::now());
    let workers = (0..concurrency).map(|_| flood_worker(ctx, &counter, start + duration));
    let results = futures_util::future::join_all(workers).await;
    let secs = start.elapsed().as_secs_f64();
    let (s1, gen_cpu) = (ctx.server.stats(), own_cpu() - gen0);
    let mut all = Tally::default();
    for t in results {
        all.lat_us.extend(t.lat_us);
        for (k, v) in t.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
    }
    all.lat_us.sort_unstable();
    let ok: u64 = all
        .statuses
        .iter()
        .filter(|(k, _)| k.starts_with('2'))
        .map(|(_, v)| v)
        .sum();
    let cpu = s1.cpu_s - s0.cpu_s;
    let mut figs = Figs::default();
    figs.num(Figure::Accepted, ok as f64 / secs);
    figs.text(Figure::Statuses, status_counts(&all.statuses));
    for p in [Pct::P50, Pct::P99, Pct::Max] {
        figs.num(Figure::Latency(p), pct_ms(&all.lat_us, p.value()));
    }
    for (fig, v) in [
        (Figure::ServerCpuPerWebhook, cpu * 1e6 / ok.max(1) as f64),
        (Figure::ServerCpuPct, cpu * 100.0 / secs),
        (Figure::ServerRssEnd, s1.rss as f64 / 1e6),
        (Figure::ServerPeakRss, s1.hwm as f64 / 1e6),
        (Figure::GeneratorCpuPct, gen_cpu * 100.0 / secs),
    ] {
        figs.num(fig, v);
    }
    Ok(figs)
}

/// `n` idle subscribers held for `hold`: server memory per connection.
pub async fn idle(ctx: &Ctx<'_>, n: usize, hold: Duration) -> Result<Figs> {
    let before = ctx.server.stats();
    let opened = ctx.open(n).await;
    let connected = ctx.server.stats();
    let ok = opened.ok.len();
    let shared = Shared::new(crate::sign::marker(&ctx.tag), 0, 1, ok);
    let (stop, rx) = watch::channel(false);
    let tasks: Vec<_> = opened
        .ok
        .into_iter()
        .map(|est| tokio::spawn(read_stream(est, shared.clone(), rx.clone())))
        .collect();
    tokio::time::sleep(hold).await;
    let end = ctx.server.stats();
    let _ = stop.send(true);
    let mut alive = 0;
    for t in tasks {
        if t.await.is_ok_and(|r| !r.closed) {
            alive += 1;
        }
    }
    let mut figs = Figs::default();
    figs.text(Figure::Established, format!("{ok} / {n}"));
    figs.text(Figure::ConnectStatuses, status_counts(&opened.statuses));
    figs.text(Figure::StillOpen, format!("{alive} / {ok}"));
    let rate = ok as f64 / opened.elapsed.as_secs_f64();
    figs.num(Figure::ConnectingRate, rate);
    memory_figs(&mut figs, ok, [before, connected, end], hold);
    Ok(figs)
}

/// A memory figure of an idle hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mem {
    /// Server RSS before connecting.
    RssBefore,
    /// Server RSS once every stream is open.
    RssConnected,
    /// Server RSS at the end of the hold.
    RssEnd,
    /// RSS growth per open stream, once connected.
    PerStreamConnected,
    /// RSS growth per open stream, at the end of the hold.
    PerStreamEnd,
    /// Server CPU spent connecting.
    CpuConnecting,
    /// Server CPU while the streams are idle.
    CpuHolding,
}

impl Mem {
    const ALL: [Mem; 7] = [
        Mem::RssBefore,
        Mem::RssConnected,
        Mem::RssEnd,
        Mem::PerStreamConnected,
        Mem::PerStreamEnd,
        Mem::CpuConnecting,
        Mem::CpuHolding,
    ];

    /// The row label.
    pub fn label(self) -> &'static str {
        match self {
            Mem::RssBefore => "server RSS before MB",
            Mem::RssConnected => "server RSS connected MB",
            Mem::RssEnd => "server RSS end of hold MB",
            Mem::PerStreamConnected => "bytes per connection, connected",
            Mem::PerStreamEnd => "bytes per connection, end of hold",
            Mem::CpuConnecting => "server CPU s connecting",
            Mem::CpuHolding => "server CPU % while holding",
        }
    }

    /// Decimals shown.
    pub fn decimals(self) -> usize {
        match self {
            Mem::RssBefore | Mem::RssConnected | Mem::RssEnd => 1,
            Mem::PerStreamConnected | Mem::PerStreamEnd => 0,
            Mem::CpuConnecting | Mem::CpuHolding => 2,
        }
    }
}

/// RSS and CPU figures of an idle hold from the stats before connecting,
/// once connected and at the end of the hold.
pub fn memory_figs(figs: &mut Figs, conns: usize, [s0, s1, s2]: [ProcStats; 3], hold: Duration) {
    let per = |s: &ProcStats| s.rss.saturating_sub(s0.rss) as f64 / conns.max(1) as f64;
    let mb = |s: &ProcStats| s.rss as f64 / 1e6;
    for fig in Mem::ALL {
        let v = match fig {
            Mem::RssBefore => mb(&s0),
            Mem::RssConnected => mb(&s1),
            Mem::RssEnd => mb(&s2),
            Mem::PerStreamConnected => per(&s1),
            Mem::PerStreamEnd => per(&s2),
            Mem::CpuConnecting => s1.cpu_s - s0.cpu_s,
            Mem::CpuHolding => (s2.cpu_s - s1.cpu_s) * 100.0 / hold.as_secs_f64(),
        };
        figs.num(Figure::Mem(fig), v);
    }
}

/// `n` authenticated SSE connects, `ctx.inflight` at once, all kept open until the end.
pub async fn storm(ctx: &Ctx<'_>, n: usize) -> Result<Figs> {
    let (s0, gen0) = (ctx.server.stats(), own_cpu());
    let opened = ctx.open(n).await;
    let s1 = ctx.server.stats();
    let ok = opened.ok.len();
    let secs = opened.elapsed.as_secs_f64();
    let mut figs = Figs::default();
    figs.text(
        Figure::Established,
        format!("{ok} / {n} ({} in flight)", ctx.inflight),
    );
    figs.text(Figure::Statuses, status_counts(&opened.statuses));
    figs.num(Figure::ConnectRate, ok as f64 / secs);
    for p in [Pct::P50, Pct::P99] {
        let v = pct_ms(&opened.latencies_us, p.value());
        figs.num(Figure::ConnectLatency(p), v);
    }
    let cpu = s1.cpu_s - s0.cpu_s;
    figs.num(Figure::ServerCpuPerConnection, cpu * 1e6 / ok.max(1) as f64);
    figs.num(Figure::GeneratorCpuS, own_cpu() - gen0);
    drop(opened);
    Ok(figs)
}
