//! `warden-bench`: Warden and the Node peer (`peers/node-sse`) side by side,
//! driven by the same load generator, on 127.0.0.1 only.
//!
//! For every scenario each target gets a fresh server process, run back to
//! back; the figures go into one Markdown table (stdout and `--out`) with the
//! ratio for each. It builds nothing: it starts the `warden` binary found
//! next to its own executable (`cargo build --release --bins` first, or
//! `scripts/bench.sh`). Bounded in count and time: every scenario has fixed
//! sizes and a timeout; the full run takes a few minutes, `--quick` well
//! under one.
//!
//! Module map: `sign` (LiveKit signatures and payloads), `http` (raw
//! HTTP/1.1 and SSE decoding), `stream` (a client connection, plain or
//! TLS), `server` (processes, `/proc` figures),
//! `conns` (opening and reading SSE streams), `plan` (what runs, how big), `scenario` (flood, idle,
//! storm), `fanout` (fan-out and slow consumer), `floor` (the kernel-only
//! fan-out server), `transport` (idle streams over each transport path:
//! plain fresh or kept-alive, TLS HTTP/1.1, TLS HTTP/2), `figure` (the typed figure keys:
//! label, decimals, direction), `report` (the table).

mod conns;
mod fanout;
mod figure;
mod floor;
mod http;
mod plan;
mod report;
mod scenario;
mod server;
mod sign;
mod stream;
mod transport;

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};

use crate::conns::TokenMode;
use crate::figure::{Delivery, Figure, Pct, Phases};
use crate::plan::{Plan, Step};
use crate::report::{Figs, Report};
use crate::scenario::Ctx;
use crate::server::{Launcher, Target};
use crate::sign::Keys;
use crate::transport::{Via, connector};

/// Benchmarks Warden side by side with the Node peer.
#[derive(Parser, Debug)]
#[command(name = "warden-bench")]
struct Args {
    /// Reduced sizes and durations (about a minute for both targets).
    #[arg(long)]
    quick: bool,
    /// Also hold `--max-conns` idle connections (the machine's limit).
    #[arg(long)]
    max: bool,
    /// Idle connections for `--max` (RLIMIT_NOFILE is 20 000 per process here).
    #[arg(long, default_value_t = 19_000)]
    max_conns: usize,
    /// Run one target only.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Only these scenario kinds (comma-separated): flood, fanout, idle, transport, storm, slow.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// Where the Markdown table is written.
    #[arg(long, default_value = "bench-results/latest.md")]
    out: PathBuf,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Streams in each transport step (default: 10 000; 200 with `--quick`).
    #[arg(long)]
    streams: Option<usize>,
    /// Seconds the idle connections are held.
    #[arg(long)]
    hold: Option<u64>,
    /// The `warden` binary (default: next to this executable).
    #[arg(long)]
    warden_bin: Option<PathBuf>,
    /// The Node peer's directory (default: ../shared/peers/node-sse from the repository).
    #[arg(long)]
    peer_dir: Option<PathBuf>,
    /// Load-generator threads (1 = one core, like the Node baseline's generator).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// First server port (ports stay below 32768).
    #[arg(long, default_value_t = 18_200)]
    port_base: u16,
    /// How SSE tokens are passed.
    #[arg(long, value_enum, default_value = "query")]
    token: TokenArg,
    /// Leave out the floor (the kernel-only fan-out server).
    #[arg(long)]
    no_floor: bool,
    /// Be the floor server on this address (the benchmark starts it so).
    #[arg(long, hide = true)]
    serve_floor: Option<std::net::SocketAddr>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Only {
    Warden,
    Node,
    Floor,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TokenArg {
    Query,
    Header,
}

fn main() -> Result<()> {
    let args = Args::parse();
    raise_nofile();
    if let Some(addr) = args.serve_floor {
        return floor::serve(addr);
    }
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let targets = match args.only {
        Some(Only::Warden) => vec![Target::Warden],
        Some(Only::Node) => vec![Target::Node],
        Some(Only::Floor) => vec![Target::Floor],
        None if args.no_floor => vec![Target::Warden, Target::Node],
        None => vec![Target::Warden, Target::Node, Target::Floor],
    };
    let warden_bin = find_warden(args.warden_bin.clone())?;
    let peer_dir = find_peer(args.peer_dir.clone(), targets.contains(&Target::Node))?;
    let plan = Plan::new(
        args.quick,
        args.max,
        args.max_conns,
        args.hold,
        args.streams,
        &args.scenarios,
    );
    let launcher = Launcher::new(
        warden_bin.clone(),
        peer_dir,
        Keys::generate(),
        args.port_base,
    );
    let mode = match args.token {
        TokenArg::Query => TokenMode::Query,
        TokenArg::Header => TokenMode::Header,
    };
    let started = std::time::Instant::now();
    let mut report = Report::default();
    for step in &plan.steps {
        for &target in targets.iter().filter(|t| step.runs_on(**t)) {
            eprintln!(
                "[{:>5.1}s] {} — {}",
                started.elapsed().as_secs_f64(),
                step.title(),
                target.name()
            );
            let mut figs = run_step(&launcher, step, target, mode, &plan).await;
            if let Some(twin) = step.plain_twin() {
                let p99 = Figure::Delivery(Phases::All, Delivery::Latency(Pct::P99));
                let plain = report.get(&twin.title(), target, p99);
                if let (Some(tls), Some(plain)) = (figs.get(p99), plain) {
                    figs.num(Figure::TlsOverPlainP99, tls / plain);
                }
            }
            report.add(&step.title(), target, figs);
        }
    }
    let text = render(&report, &plan, &args, &warden_bin, started.elapsed());
    println!("{text}");
    write(&args.out, &text)?;
    if let Some(path) = &args.json {
        write(path, &serde_json::to_string_pretty(&report.json())?)?;
    }
    eprintln!("table written to {}", args.out.display());
    Ok(())
}

/// One scenario against one fresh server; any failure becomes a figure.
async fn run_step(
    launcher: &Launcher,
    step: &Step,
    target: Target,
    mode: TokenMode,
    plan: &Plan,
) -> Figs {
    let mut server = match launcher.start(target, step.tls()).await {
        Ok(s) => s,
        Err(e) => {
            let mut figs = Figs::default();
            figs.text(Figure::Error, format!("{e:#}").replace('\n', " / "));
            return figs;
        }
    };
    let tls = match server.cert.as_deref().map(|c| connector(c, Via::TlsH1)) {
        None => None,
        Some(Ok(tls)) => Some(tls),
        Some(Err(e)) => {
            let mut figs = Figs::default();
            figs.text(Figure::Error, format!("TLS client: {e:#}"));
            server.stop();
            return figs;
        }
    };
    let ctx = Ctx {
        tls,
        server: &server,
        keys: &launcher.keys,
        tag: sign::run_tag(),
        mode,
        inflight: plan.inflight,
        drain: plan.drain,
    };
    let outcome = tokio::time::timeout(step.timeout(), step.run(&ctx)).await;
    let mut figs = match outcome {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => {
            let mut f = Figs::default();
            f.text(Figure::Error, format!("{e:#}"));
            f
        }
        Err(_) => {
            let mut f = Figs::default();
            f.text(
                Figure::Error,
                format!("timed out after {} s", step.timeout().as_secs()),
            );
            f
        }
    };
    if !server.alive() {
        figs.text(Figure::ServerExited, server.log_tail().replace('\n', " / "));
    }
    server.stop();
    figs
}

fn find_warden(given: Option<PathBuf>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p,
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name("warden"),
    };
    if !path.is_file() {
        bail!(
            "{} not found: build it first (`cargo build --release --bins`, or scripts/bench.sh), or pass --warden-bin",
            path.display()
        );
    }
    Ok(path)
}

fn find_peer(given: Option<PathBuf>, needed: bool) -> Result<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = match given {
        Some(p) => vec![p],
        None => vec![
            repo.join("../shared/peers/node-sse"),
            PathBuf::from("/work/shared/peers/node-sse"),
        ],
    };
    let Some(dir) = candidates
        .into_iter()
        .find(|d| d.join("server.js").is_file())
    else {
        if needed {
            bail!("the Node peer (server.js) was not found: pass --peer-dir, or --only warden");
        }
        return Ok(PathBuf::new());
    };
    if needed && !dir.join("node_modules").is_dir() {
        eprintln!(
            "installing the Node peer's dependencies (npm ci) in {}",
            dir.display()
        );
        let ok = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .context("running npm ci")?
            .success();
        anyhow::ensure!(ok, "npm ci failed in {}", dir.display());
    }
    Ok(dir)
}

/// Lifts this process's soft RLIMIT_NOFILE to the hard limit (the generator
/// holds every client socket). `prlimit` does it without unsafe code.
fn raise_nofile() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let Some(line) = limits.lines().find(|l| l.starts_with("Max open files")) else {
        return;
    };
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    if let [soft, hard] = nums[..]
        && soft != hard
    {
        let _ = std::process::Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={hard}:{hard}"))
            .status();
    }
}

fn write(path: &std::path::Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn render(
    report: &Report,
    plan: &Plan,
    args: &Args,
    warden: &std::path::Path,
    took: std::time::Duration,
) -> String {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "# Warden vs the Node peer\n\n{date} — {machine}\n\nCommand: `warden-bench {argv}` ({mode}, took {took:.0} s); \
         Warden: `{warden}`; Node: {node}; generator threads: {threads}, connects in flight: {inflight}.\n\
         Each scenario ran against a fresh server process per target, back to back, on 127.0.0.1.\n\
         \"Warden advantage\" is Warden ÷ Node for throughput and Node ÷ Warden for latency, memory and CPU (above 1: Warden is better).\n\
         \"floor\" is `warden-bench --serve-floor` (fan-out to N only): two threads that write each webhook body to every open socket, \
         one write per event, and do nothing else (no auth, no verification, no JSON, no HTTP library, no coalescing); \
         \"× floor\" is Warden's latency or CPU ÷ the floor's (floor ÷ Warden for throughput): how many times the kernel's own cost \
         of the same writes Warden takes. Below 1 under sustained load: Warden coalesces events while a write is pending, the floor does not.\n\n{table}",
        machine = machine(),
        argv = argv.join(" "),
        mode = if args.quick { "quick" } else { "full" },
        took = took.as_secs_f64(),
        warden = warden.display(),
        node = node_version(),
        threads = args.threads,
        inflight = plan.inflight,
        table = report.markdown(),
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0.0, |kb| kb as f64 / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), {mem:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

fn node_version() -> String {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "node not found".to_owned(), |v| v.trim().to_owned())
}
