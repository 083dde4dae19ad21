//! `warden webhook …`

use clap::Subcommand;

use super::Ctx;

/// Webhook commands.
#[derive(Debug, Subcommand)]
pub enum WebhookCmd {
    /// Sign and send one webhook exactly as a LiveKit server would.
    Send {
        /// Receiver URL, e.g. http://127.0.0.1:8080/webhooks/livekit.
        #[arg(long)]
        url: String,
        /// Event name, e.g. room_started, participant_joined.
        #[arg(long)]
        event: String,
        /// Room name.
        #[arg(long)]
        room: String,
        /// Participant identity (participant and track events).
        #[arg(long)]
        identity: Option<String>,
    },
}

pub(super) fn run(cmd: WebhookCmd, ctx: &Ctx) -> anyhow::Result<()> {
    let _ = (cmd, ctx);
    anyhow::bail!("webhook send is not available yet")
}
