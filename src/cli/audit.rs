//! `warden audit …`

use clap::Subcommand;

use super::Ctx;

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
}

pub(super) fn run(cmd: AuditCmd, ctx: &Ctx) -> anyhow::Result<()> {
    let _ = (cmd, ctx);
    anyhow::bail!("audit commands are not available yet")
}
