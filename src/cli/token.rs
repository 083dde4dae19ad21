//! `warden token …`

use clap::Subcommand;

use super::Ctx;

/// Access token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Mint a LiveKit access token with the active key.
    Create {
        /// Identity (`sub`).
        #[arg(long)]
        identity: String,
        /// Room (`video.room`).
        #[arg(long)]
        room: Option<String>,
        /// Grants, comma-separated LiveKit names (roomJoin, roomList, roomAdmin, roomCreate, canPublish, …).
        #[arg(long, value_delimiter = ',')]
        grant: Vec<String>,
        /// Lifetime, e.g. 30m, 1h, 6h (default 6h).
        #[arg(long, default_value = "6h")]
        ttl: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Verify a token and print its claims (exit 1 if invalid).
    Inspect {
        /// The token.
        token: String,
    },
}

pub(super) fn run(cmd: TokenCmd, ctx: &Ctx) -> anyhow::Result<()> {
    let _ = (cmd, ctx);
    anyhow::bail!("token commands are not available yet")
}
