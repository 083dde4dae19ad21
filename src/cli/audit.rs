//! `warden audit …`: verify the hash chain, print recent events, print the alert signing secret.
//!
//! These read the store at `storage.path` directly (a running server may be
//! writing to it: SQLite's WAL lets both proceed). `verify` exits 1 with one
//! line naming the first broken entry.

use std::io::{IsTerminal, Write};

use anyhow::Context as _;
use clap::Subcommand;

use super::Ctx;
use crate::audit;
use crate::metrics::Metrics;
use crate::store::Sqlite;

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain; exit 1 naming the first broken link.
    Verify,
    /// Print the most recent security events (a table on a terminal, JSON lines otherwise).
    Tail {
        /// How many.
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
        /// Keep printing new events as they are recorded (until Ctrl-C).
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only these types (repeat or comma-separate: --type UNAUTHORIZED_ACCESS,IP_BLOCKED).
        #[arg(long = "type", value_name = "TYPE", value_delimiter = ',', value_parser = parse_type)]
        types: Vec<audit::EventType>,
        /// Only events at or after this time: RFC 3339, or an age such as 15m, 2h, 1d.
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// JSON lines even on a terminal.
        #[arg(long)]
        json: bool,
    },
    /// Print the alert signing secret (whsec_…) receivers verify with; generated on first use.
    AlertSecret,
}

fn open_store(ctx: &Ctx) -> anyhow::Result<Sqlite> {
    let path = &ctx.config.storage.path;
    anyhow::ensure!(
        path.exists(),
        "no audit store at {} (storage.path{}): run it where `warden serve` runs, or pass --config",
        path.display(),
        super::relative_to_cwd(path)
    );
    Sqlite::open(path).with_context(|| format!("opening the audit store {}", path.display()))
}

pub(super) fn run(cmd: AuditCmd, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        AuditCmd::Verify => {
            let db = open_store(ctx)?;
            let report = audit::verify_chain(&db)?;
            println!(
                "audit chain intact: {} entries verified ({} purged behind the retention anchor), head {}",
                report.entries, report.purged, report.head
            );
            Ok(())
        }
        AuditCmd::Tail {
            n,
            follow,
            types,
            since,
            json,
        } => {
            let since_ms = since.as_deref().map(|w| parse_since(w, ctx)).transpose()?;
            let db = open_store(ctx)?;
            let (audit, _worker) = audit_on(ctx, db)?;
            let table = !json && std::io::stdout().is_terminal();
            tail(&audit, n.max(1), follow, &types, since_ms, table)
        }
        AuditCmd::AlertSecret => {
            let path = &ctx.config.storage.path;
            let db = Sqlite::open(path)
                .with_context(|| format!("opening the store {}", path.display()))?;
            let secret = audit::alert_signing_secret(&db, &ctx.config)?;
            println!("{}", secret.expose());
            Ok(())
        }
    }
}

fn parse_type(text: &str) -> Result<audit::EventType, String> {
    text.trim().parse::<audit::EventType>().map_err(|()| {
        let names: Vec<&str> = audit::EventType::ALL.iter().map(|t| t.as_str()).collect();
        let upper = text.trim().to_ascii_uppercase();
        match crate::config::did_you_mean(&upper, &names) {
            Some(s) => format!("unknown event type {text}; did you mean {s}?"),
            None => format!("unknown event type {text}; one of {}", names.join(", ")),
        }
    })
}

/// `--since`: an RFC 3339 time, or an age before now (`15m`, `2h`, `1d`).
fn parse_since(text: &str, ctx: &Ctx) -> anyhow::Result<i64> {
    if let Some(ms) = crate::clock::parse_rfc3339_ms(text) {
        return Ok(ms);
    }
    let age = humantime::parse_duration(text).map_err(|_| {
        anyhow::anyhow!("--since {text}: not an RFC 3339 time or an age such as 15m, 2h, 1d")
    })?;
    Ok(ctx.clock.now_ms() - i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
}

/// Prints the newest `n` matching events, then (with `follow`) new ones
/// as they are recorded, polling the store once a second.
fn tail(
    audit: &audit::Audit,
    n: usize,
    follow: bool,
    types: &[audit::EventType],
    since_ms: Option<i64>,
    table: bool,
) -> anyhow::Result<()> {
    let wanted = |e: &audit::StoredEvent| types.is_empty() || types.contains(&e.event.kind);
    let mut out = std::io::stdout().lock();
    if table {
        writeln!(
            out,
            "{:<24} {:<8} {:<26} {:<16} DETAILS",
            "TIME", "SEVERITY", "TYPE", "SOURCE"
        )?;
    }
    // With a type filter the newest n matches may lie further back.
    let window = if types.is_empty() {
        n
    } else {
        audit::MAX_LIMIT
    };
    let first = audit.tail(None, since_ms, window)?;
    let mut last = first.last().map(|(seq, _)| *seq);
    let shown: Vec<&audit::StoredEvent> =
        first.iter().map(|(_, e)| e).filter(|e| wanted(e)).collect();
    for e in &shown[shown.len().saturating_sub(n)..] {
        print_event(&mut out, e, table)?;
    }
    out.flush()?;
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let more = audit.tail(Some(last.unwrap_or(0)), since_ms, audit::MAX_LIMIT)?;
        for (seq, e) in &more {
            last = Some(*seq);
            if wanted(e) {
                print_event(&mut out, e, table)?;
            }
        }
        out.flush()?;
    }
}

fn print_event(out: &mut impl Write, e: &audit::StoredEvent, table: bool) -> anyhow::Result<()> {
    if !table {
        writeln!(
            out,
            "{}",
            serde_json::to_string(e).context("encoding an event")?
        )?;
        return Ok(());
    }
    let ev = &e.event;
    let mut details = serde_json::to_string(&ev.details).context("encoding details")?;
    if let Some(key) = &ev.key_id {
        details = format!("key={key} {details}");
    }
    writeln!(
        out,
        "{:<24} {:<8} {:<26} {:<16} {details}",
        e.timestamp,
        ev.severity.as_str(),
        ev.kind.as_str(),
        ev.source_ip
            .map_or_else(|| "-".to_owned(), |ip| ip.to_string()),
    )?;
    Ok(())
}

/// A read-only use of the audit: no alerts, nothing recorded.
fn audit_on(ctx: &Ctx, db: Sqlite) -> anyhow::Result<(audit::Audit, audit::AuditWorker)> {
    let mut cfg = ctx.config.clone();
    cfg.alerts.webhook_url = None;
    Ok(audit::Audit::open(
        &cfg,
        db,
        ctx.clock.clone(),
        ctx.masker.clone(),
        Metrics::new(),
    )?)
}
