//! `warden keys …`

use clap::Subcommand;

use super::Ctx;

/// Key store commands.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Key ids, created, expires and state (active / retiring / revoked); never secrets.
    List,
    /// Create a new active key; prints its id and secret once, on stdout.
    Create,
    /// Rotate when due (else exit 1 saying when); the old key keeps verifying for the overlap.
    Rotate {
        /// Rotate now, even if not due.
        #[arg(long)]
        force: bool,
    },
    /// Revoke a key now.
    Revoke {
        /// The key id.
        id: String,
    },
    /// Print the active and retiring keys.
    Export {
        /// As livekit-server's key_file (`key: secret` map).
        #[arg(long)]
        livekit: bool,
    },
}

pub(super) fn run(cmd: KeysCmd, ctx: &Ctx) -> anyhow::Result<()> {
    let _ = (cmd, ctx);
    anyhow::bail!("keys commands are not available yet")
}
