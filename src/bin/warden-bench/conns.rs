//! Opening many authenticated SSE connections with a bound on those in
//! flight, and the reader task every open connection runs.
//!
//! Invariants: each connection carries its own freshly signed token (no
//! server can cache one verification for all); a refused or failed connect
//! is counted under its status or error kind; a reader records the first
//! arrival of each benchmark event (later copies count as duplicates).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

use crate::http::{self, Head, SseScanner};
use crate::server::Target;
use crate::sign::Keys;
use crate::stream::Stream;

/// How the SSE token is passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenMode {
    /// `?token=`
    Query,
    /// `Authorization: Bearer`
    Header,
}

/// An SSE response whose head said 200.
pub struct Established {
    stream: Stream,
    head: Head,
    /// Body bytes that arrived with the head.
    leftover: Vec<u8>,
}

/// What opening a batch of connections gave.
#[derive(Default)]
pub struct Opened {
    /// The open streams.
    pub ok: Vec<Established>,
    /// Status (or error kind) → count, 200s included.
    pub statuses: BTreeMap<String, u64>,
    /// Time to a 200 head for each success, µs, sorted.
    pub latencies_us: Vec<u64>,
    /// Wall time of the whole batch.
    pub elapsed: Duration,
}

/// The request that opens stream number `i` on `target`.
pub fn sse_request(
    target: Target,
    keys: &Keys,
    addr: SocketAddr,
    i: usize,
    mode: TokenMode,
) -> Vec<u8> {
    let now = unix_now();
    let sub = format!("bench-{i}");
    let token = match target {
        Target::Warden => keys.warden_token(&sub, now),
        Target::Node => keys.node_token(&sub, now),
        // The floor checks nothing; the same request costs it the same to read.
        Target::Floor => keys.warden_token(&sub, now),
    };
    match mode {
        TokenMode::Query => http::get(addr, &format!("/api/events?token={token}"), None),
        TokenMode::Header => http::get(addr, "/api/events", Some(&token)),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Opens `n` streams, at most `inflight` connecting at once, over TLS when
/// `tls` is given.
pub async fn open_many(
    target: Target,
    keys: &Keys,
    (addr, tls): (SocketAddr, Option<&TlsConnector>),
    n: usize,
    inflight: usize,
    mode: TokenMode,
) -> Opened {
    let start = Instant::now();
    let results: Vec<_> = futures_util::stream::iter(0..n)
        .map(|i| {
            let req = sse_request(target, keys, addr, i, mode);
            async move {
                let t = Instant::now();
                let r = open_one(addr, tls, &req).await;
                (r, t.elapsed())
            }
        })
        .buffer_unordered(inflight.max(1))
        .collect()
        .await;
    let mut out = Opened {
        elapsed: start.elapsed(),
        ..Opened::default()
    };
    for (r, took) in results {
        let key = match r {
            Ok(est) if est.head.status == 200 => {
                out.latencies_us.push(took.as_micros() as u64);
                out.ok.push(est);
                "200".to_owned()
            }
            Ok(est) => est.head.status.to_string(),
            Err(e) => format!("error {:?}", e.kind()),
        };
        *out.statuses.entry(key).or_default() += 1;
    }
    out.latencies_us.sort_unstable();
    out
}

/// Connects (TLS included), sends the request, reads the head.
pub async fn open_one(
    addr: SocketAddr,
    tls: Option<&TlsConnector>,
    req: &[u8],
) -> std::io::Result<Established> {
    let mut stream = crate::stream::connect(addr, tls).await?;
    let (head, leftover) = http::send_for_head(&mut stream, req).await?;
    Ok(Established {
        stream,
        head,
        leftover,
    })
}

/// What every reader shares: the time base and the deliveries still awaited.
pub struct Shared {
    /// Times are µs since this instant.
    pub base: Instant,
    /// The run's id marker.
    pub marker: String,
    /// Events per phase.
    pub phase_len: usize,
    /// Deliveries still missing, per phase.
    pub remaining: Vec<AtomicUsize>,
}

impl Shared {
    /// Sequence numbers `0..phase_len * phases`, `subs` readers.
    pub fn new(marker: String, phase_len: usize, phases: usize, subs: usize) -> Arc<Self> {
        Arc::new(Self {
            base: Instant::now(),
            marker,
            phase_len,
            remaining: (0..phases)
                .map(|_| AtomicUsize::new(phase_len * subs))
                .collect(),
        })
    }

    /// µs since the base.
    pub fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    /// Deliveries still missing in `phase`.
    pub fn missing(&self, phase: usize) -> usize {
        self.remaining[phase].load(Ordering::Acquire)
    }
}

/// One reader's record.
pub struct Received {
    /// Arrival time of each sequence number, µs since the base (`u64::MAX`: never).
    pub at_us: Vec<u64>,
    /// Copies of an event already received.
    pub duplicates: u64,
    /// The server ended the stream (EOF, reset or end of body) before stop.
    pub closed: bool,
    /// Bytes read.
    pub bytes: u64,
}

/// Reads one stream until `stop` says so or the server ends it.
pub async fn read_stream(
    est: Established,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Received {
    let total = shared.phase_len * shared.remaining.len();
    let mut rec = Received {
        at_us: vec![u64::MAX; total],
        duplicates: 0,
        closed: false,
        bytes: 0,
    };
    let Established {
        mut stream,
        head,
        leftover,
    } = est;
    let mut scan = SseScanner::new(&head, &shared.marker);
    let mut buf = leftover;
    loop {
        if !buf.is_empty() {
            rec.bytes += buf.len() as u64;
            let now = shared.now_us();
            let fed = scan.feed(&buf, |seq| note(&mut rec, &shared, seq as usize, now));
            buf.clear();
            if fed.is_err() || scan.ended {
                rec.closed = true;
                break;
            }
        }
        if buf.capacity() < 4096 {
            buf.reserve(4096);
        }
        tokio::select! {
            r = stream.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => { rec.closed = true; break; }
                Ok(_) => {}
            },
            _ = stop.changed() => break,
        }
    }
    rec
}

fn note(rec: &mut Received, shared: &Shared, seq: usize, now: u64) {
    let Some(slot) = rec.at_us.get_mut(seq) else {
        return;
    };
    if *slot == u64::MAX {
        *slot = now;
        shared.remaining[seq / shared.phase_len].fetch_sub(1, Ordering::AcqRel);
    } else {
        rec.duplicates += 1;
    }
}
