//! `warden audit …`: verify the hash chain, print recent events, print the alert signing secret.
//!
//! These read the store at `storage.path` directly (a running server may be
//! writing to it: SQLite's WAL lets both proceed). `verify` exits 1 with one
//! line naming the first broken entry.

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
    /// Print the most recent security events.
    Tail {
        /// How many.
        #[arg(short = 'n', default_value_t = 20)]
        n: usize,
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
        AuditCmd::Tail { n } => {
            let db = open_store(ctx)?;
            let (audit, _worker) = audit_on(ctx, db)?;
            let mut events = audit.recent_events(n.max(1))?;
            events.reverse();
            for e in events {
                println!(
                    "{}",
                    serde_json::to_string(&e).context("encoding an event")?
                );
            }
            Ok(())
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
