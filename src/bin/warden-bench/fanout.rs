//! Fan-out: N subscribers, signed webhooks sent at a fixed rate, the latency
//! from each webhook request's first byte to each subscriber's receipt of
//! the event; and the slow-consumer variant (the same, then again with one
//! client that connected and stopped reading).
//!
//! Invariant: expected deliveries are events × subscribers whatever the
//! servers answered, so a refused webhook shows up as missing deliveries
//! next to its status count.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::conns::{self, Received, Shared, read_stream, unix_now};
use crate::figure::{Delivery, Figure, Pct, Phases};
use crate::http::{self, Conn};
use crate::report::{Figs, pct_ms, status_counts};
use crate::scenario::Ctx;
use crate::server::own_cpu;

/// One webhook sent during a fan-out.
struct Sent {
    seq: u64,
    at_us: u64,
    status: String,
    took_us: u64,
}

/// Sends `seqs` at `rate`/s over `senders` keep-alive connections.
async fn send_events(
    ctx: &Ctx<'_>,
    shared: &Shared,
    seqs: Range<u64>,
    rate: f64,
    senders: u64,
) -> Vec<Sent> {
    let t0 = tokio::time::Instant::now() + Duration::from_millis(20);
    let first = seqs.start;
    let lanes = (0..senders).map(|lane| {
        let seqs = seqs.clone();
        async move {
            let mut out = Vec::new();
            let mut conn: Option<Conn> = None;
            for seq in seqs.filter(|s| (s - first) % senders == lane) {
                if conn.is_none() {
                    // Connect ahead of the schedule: the latency clock starts at the request.
                    conn = Conn::connect(ctx.server.addr, ctx.tls.as_ref()).await.ok();
                }
                let at = t0 + Duration::from_secs_f64((seq - first) as f64 / rate);
                tokio::time::sleep_until(at).await;
                let now = unix_now();
                let body = crate::sign::webhook_body(&ctx.tag, seq, now);
                let auth = ctx.keys.webhook_auth(body.as_bytes(), now);
                let req = http::post(ctx.server.addr, "/webhooks/livekit", &auth, body.as_bytes());
                let at_us = shared.now_us();
                let status = exchange(&mut conn, ctx, &req).await;
                out.push(Sent {
                    seq,
                    at_us,
                    status,
                    took_us: shared.now_us() - at_us,
                });
            }
            out
        }
    });
    futures_util::future::join_all(lanes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// One request on a kept-alive connection (reconnecting when needed); the
/// status, or the error kind.
pub async fn exchange(conn: &mut Option<Conn>, ctx: &Ctx<'_>, req: &[u8]) -> String {
    if conn.is_none() {
        match Conn::connect(ctx.server.addr, ctx.tls.as_ref()).await {
            Ok(c) => *conn = Some(c),
            Err(e) => return format!("error {:?}", e.kind()),
        }
    }
    let Some(c) = conn.as_mut() else {
        return "error NotConnected".to_owned();
    };
    match c.exchange(req).await {
        Ok((status, keep)) => {
            if !keep {
                *conn = None;
            }
            status.to_string()
        }
        Err(e) => {
            *conn = None;
            format!("error {:?}", e.kind())
        }
    }
}

/// Waits until `phase` has no missing delivery, or `ctx.drain` has passed.
async fn drain(ctx: &Ctx<'_>, shared: &Shared, phase: usize) {
    let deadline = Instant::now() + ctx.drain;
    while shared.missing(phase) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What the events `seqs` gave: webhook outcomes and delivery latencies.
struct Deliveries {
    statuses: BTreeMap<String, u64>,
    /// Webhook response times, µs, sorted.
    resp_us: Vec<u64>,
    /// Delivery latencies, µs, sorted.
    lat_us: Vec<u64>,
    /// First send to last receipt, seconds.
    span_s: f64,
    expected: usize,
    duplicates: u64,
}

/// The events of every range in `phases` pooled; the span is the sum of
/// each range's first send to last receipt.
fn deliveries(sent: &[Sent], recs: &[Received], phases: &[Range<u64>]) -> Deliveries {
    let end = phases.iter().map(|r| r.end).max().unwrap_or(0);
    let mut send_at = vec![u64::MAX; end as usize];
    let mut statuses = BTreeMap::new();
    let mut resp_us = Vec::new();
    for s in sent
        .iter()
        .filter(|s| phases.iter().any(|r| r.contains(&s.seq)))
    {
        send_at[s.seq as usize] = s.at_us;
        *statuses.entry(s.status.clone()).or_default() += 1;
        resp_us.push(s.took_us);
    }
    let mut lat_us = Vec::new();
    let mut span_us = 0;
    for seqs in phases {
        let (mut first, mut last) = (u64::MAX, 0);
        for r in recs {
            for seq in seqs.clone() {
                let (at, sent_at) = (r.at_us[seq as usize], send_at[seq as usize]);
                if at != u64::MAX && sent_at != u64::MAX {
                    lat_us.push(at.saturating_sub(sent_at));
                    first = first.min(sent_at);
                    last = last.max(at);
                }
            }
        }
        span_us += last.saturating_sub(first);
    }
    resp_us.sort_unstable();
    lat_us.sort_unstable();
    let events: u64 = phases.iter().map(|r| r.end - r.start).sum();
    Deliveries {
        statuses,
        resp_us,
        lat_us,
        span_s: span_us.max(1) as f64 / 1e6,
        expected: events as usize * recs.len(),
        duplicates: recs.iter().map(|r| r.duplicates).sum(),
    }
}

/// Delivery figures for the events of `phases`, labelled as `side`'s;
/// returns the deliveries they came from.
fn delivery_figs(
    figs: &mut Figs,
    side: Phases,
    sent: &[Sent],
    recs: &[Received],
    phases: &[Range<u64>],
) -> Deliveries {
    let d = deliveries(sent, recs, phases);
    let fig = |what| Figure::Delivery(side, what);
    let got = d.lat_us.len();
    figs.text(fig(Delivery::WebhookStatuses), status_counts(&d.statuses));
    let resp = pct_ms(&d.resp_us, 99.0);
    figs.num(fig(Delivery::WebhookResponseP99), resp);
    figs.text(
        fig(Delivery::Received),
        format!("{got} / {} ({})", d.expected, d.duplicates),
    );
    let all = if got == d.expected { "yes" } else { "NO" };
    figs.text(fig(Delivery::AllDelivered), all);
    for p in [Pct::P50, Pct::P99, Pct::Max] {
        figs.num(fig(Delivery::Latency(p)), pct_ms(&d.lat_us, p.value()));
    }
    figs.num(fig(Delivery::Rate), got as f64 / d.span_s);
    d
}

/// Subscribers connected and their readers running.
struct Subscribers {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<Received>>,
}

async fn subscribe(
    ctx: &Ctx<'_>,
    figs: &mut Figs,
    n: usize,
    phase_len: usize,
    phases: usize,
) -> Subscribers {
    let cpu0 = ctx.server.stats().cpu_s;
    let opened = ctx.open(n).await;
    let connected = format!("{} / {n}", opened.ok.len());
    figs.text(Figure::SubscribersConnected, connected);
    figs.text(Figure::ConnectStatuses, status_counts(&opened.statuses));
    figs.num(Figure::ConnectPhase, opened.elapsed.as_secs_f64());
    let cpu = ctx.server.stats().cpu_s - cpu0;
    figs.num(Figure::ServerCpuConnectPhase, cpu);
    let shared = Shared::new(
        crate::sign::marker(&ctx.tag),
        phase_len,
        phases,
        opened.ok.len(),
    );
    let (stop, rx) = watch::channel(false);
    let tasks = opened
        .ok
        .into_iter()
        .map(|est| tokio::spawn(read_stream(est, shared.clone(), rx.clone())))
        .collect();
    // Let the servers finish registering the last subscribers.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Subscribers {
        shared,
        stop,
        tasks,
    }
}

impl Subscribers {
    async fn finish(self) -> Vec<Received> {
        let _ = self.stop.send(true);
        let mut out = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            if let Ok(r) = t.await {
                out.push(r);
            }
        }
        out
    }
}

/// One event stream to `n` subscribers: `events` webhooks at `rate`/s.
pub async fn fanout(ctx: &Ctx<'_>, n: usize, events: u64, rate: f64) -> Result<Figs> {
    let mut figs = Figs::default();
    let subs = subscribe(ctx, &mut figs, n, events as usize, 1).await;
    let (cpu0, gen0, t0) = (ctx.server.stats().cpu_s, own_cpu(), Instant::now());
    let sent = send_events(ctx, &subs.shared, 0..events, rate, 4).await;
    drain(ctx, &subs.shared, 0).await;
    let (cpu, gen_cpu) = (ctx.server.stats().cpu_s - cpu0, own_cpu() - gen0);
    let secs = t0.elapsed().as_secs_f64();
    let recs = subs.finish().await;
    let offered = rate * recs.len() as f64;
    figs.num(Figure::Offered, offered);
    let all = 0..events;
    let all = std::slice::from_ref(&all);
    let _ = delivery_figs(&mut figs, Phases::All, &sent, &recs, all);
    let rss = ctx.server.stats().rss as f64 / 1e6;
    figs.num(Figure::ServerCpuEventPhase, cpu);
    figs.num(Figure::ServerRssEnd, rss);
    figs.num(Figure::GeneratorCpuEventPhase, gen_cpu * 100.0 / secs);
    Ok(figs)
}

/// Others' latency with and without one client that stopped reading, in
/// alternating phases (without, with, without, with, …) so that drift and
/// run-to-run spread fall on both sides alike; the figures pool each side
/// and list every phase's p99, the spread the difference is to be read
/// against. Before every phase `fill` unmeasured events go to everyone, so
/// in a "with" phase the stalled client (connected just before, 4 KiB
/// receive buffer, reads its head and nothing more) already has more
/// unread than its receive buffer holds: its window is closed and what the
/// server writes to it waits in the server's kernel (on loopback Linux
/// takes about 2.8 MB before refusing a write; Warden's write deadline,
/// `TCP_USER_TIMEOUT`, cuts such a peer after `write_timeout_seconds`). It
/// is closed after its phase, if the server has not cut it off first.
pub async fn slow(ctx: &Ctx<'_>, n: usize, plan: SlowPlan) -> Result<Figs> {
    let SlowPlan {
        events,
        rate,
        pairs,
        fill,
    } = plan;
    let mut figs = Figs::default();
    let phases = 2 * pairs;
    let subs = subscribe(ctx, &mut figs, n, events as usize, phases).await;
    let mut sent = Vec::new();
    // Sequence numbers past the measured ones: readers ignore them.
    let mut filler = phases as u64 * events;
    let mut cut = 0;
    let mut sides: [Vec<Range<u64>>; 2] = Default::default();
    for phase in 0..phases {
        let stalled = if phase % 2 == 1 {
            Some(
                open_stalled(ctx)
                    .await
                    .context("opening the stalled client")?,
            )
        } else {
            None
        };
        send_events(ctx, &subs.shared, filler..filler + fill, FILL_RATE, 4).await;
        filler += fill;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let seqs = phase as u64 * events..(phase as u64 + 1) * events;
        sent.extend(send_events(ctx, &subs.shared, seqs.clone(), rate, 4).await);
        drain(ctx, &subs.shared, phase).await;
        if let Some(s) = stalled
            && cut_off(s).await
        {
            cut += 1;
        }
        sides[phase % 2].push(seqs);
    }
    let recs = subs.finish().await;
    let mut p99 = [0.0; 2];
    for (side, label) in [Phases::Without, Phases::With].into_iter().enumerate() {
        let pooled = delivery_figs(&mut figs, label, &sent, &recs, &sides[side]);
        p99[side] = pct_ms(&pooled.lat_us, 99.0);
        let each: Vec<String> = sides[side]
            .iter()
            .map(|seqs| {
                let d = deliveries(&sent, &recs, std::slice::from_ref(seqs));
                format!("{:.1}", pct_ms(&d.lat_us, 99.0))
            })
            .collect();
        figs.text(Figure::PhaseP99s(label), each.join(", "));
    }
    figs.num(Figure::P99Difference, p99[1] - p99[0]);
    figs.text(Figure::StalledCut, format!("{cut} / {pairs}"));
    figs.num(Figure::ServerRssEnd, ctx.server.stats().rss as f64 / 1e6);
    Ok(figs)
}

/// Unmeasured events before every slow-consumer phase go out at this rate.
const FILL_RATE: f64 = 50.0;

/// The slow-consumer step's sizes.
#[derive(Clone, Copy, Debug)]
pub struct SlowPlan {
    /// Measured webhooks per phase.
    pub events: u64,
    /// Their rate, per second.
    pub rate: f64,
    /// Phase pairs (without, with).
    pub pairs: usize,
    /// Unmeasured webhooks before each phase.
    pub fill: u64,
}

impl SlowPlan {
    /// Seconds the phases take at most (fill, settle, events, drain).
    pub fn max_secs(&self, drain: u64) -> u64 {
        let phase = self.fill as f64 / FILL_RATE + 1.0 + self.events as f64 / self.rate;
        2 * self.pairs as u64 * (phase.ceil() as u64 + drain + 1)
    }
}

/// A subscriber with a 4 KiB receive buffer that reads its response head
/// and then nothing more.
async fn open_stalled(ctx: &Ctx<'_>) -> Result<tokio::net::TcpStream> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.set_recv_buffer_size(4096)?;
    let mut stream = sock.connect(ctx.server.addr).await?;
    let req = conns::sse_request(
        ctx.server.target,
        ctx.keys,
        ctx.server.addr,
        usize::MAX,
        ctx.mode,
    );
    stream.write_all(&req).await?;
    let mut buf = Vec::new();
    let head = http::read_head(&mut stream, &mut buf).await?;
    anyhow::ensure!(
        head.status == 200,
        "stalled client refused with {}",
        head.status
    );
    Ok(stream)
}

/// Whether the server has closed the stalled client: drains what it sent
/// and looks for the end of the stream.
async fn cut_off(mut stream: tokio::net::TcpStream) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}
