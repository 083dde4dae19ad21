//! `warden token …`: mint and inspect LiveKit access tokens.

use anyhow::Context as _;
use clap::Subcommand;

use super::Ctx;
use crate::keys::KeyRing;
use crate::token::{self, ClaimGrants, TokenPolicy};

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
    let ring = KeyRing::open(&ctx.config, &ctx.clock)?;
    ctx.masker.set_known_secrets(ring.all_secrets().iter());
    let now = ctx.clock.now_ms();
    match cmd {
        TokenCmd::Create {
            identity,
            room,
            grant,
            ttl,
            name,
        } => {
            let mut grants = ClaimGrants {
                identity,
                name: name.unwrap_or_default(),
                ..ClaimGrants::default()
            };
            grants.video.room = room.filter(|r| !r.is_empty());
            for g in grant.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
                grants.video.set(g, true)?;
            }
            let ttl =
                humantime::parse_duration(ttl.trim()).with_context(|| format!("--ttl {ttl:?}"))?;
            let jwt = token::mint(&ring, &grants, Some(ttl), now).map_err(|e| match e {
                token::TokenError::NoSigningKey => anyhow::anyhow!("{e}: {}", ctx.key_sources()),
                e => e.into(),
            })?;
            println!("{jwt}");
            Ok(())
        }
        TokenCmd::Inspect { token } => {
            let claims = token::verify(
                token.trim(),
                &ring,
                now,
                &TokenPolicy::from_config(&ctx.config),
            )?;
            println!(
                "{}",
                serde_json::to_string_pretty(&claims).context("serialising the claims")?
            );
            Ok(())
        }
    }
}
