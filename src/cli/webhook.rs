//! `warden webhook send`: one webhook, built, signed and posted exactly as
//! livekit-server does (protobuf JSON body, bare HS256 JWT with the body's
//! `sha256`, `Content-Type: application/webhook+json`), so an operator can
//! drill a deployment end to end. Signs with Warden's signing key; prints the
//! receiver's status; exits 0 on 2xx, 1 otherwise.

use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;

use super::Ctx;
use crate::keys::KeyRing;
use crate::webhook::{emit, verify};

/// Longest part of the receiver's answer that is printed.
const MAX_PRINTED_BODY: usize = 2048;

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
        /// Agent name (agent_job_started / agent_job_ended).
        #[arg(long)]
        agent: Option<String>,
    },
}

pub(super) fn run(cmd: WebhookCmd, ctx: &Ctx) -> anyhow::Result<()> {
    match cmd {
        WebhookCmd::Send {
            url,
            event,
            room,
            identity,
            agent,
        } => send(
            ctx,
            &url,
            &event,
            &room,
            identity.as_deref(),
            agent.as_deref(),
        ),
    }
}

fn send(
    ctx: &Ctx,
    url: &str,
    event: &str,
    room: &str,
    identity: Option<&str>,
    agent: Option<&str>,
) -> anyhow::Result<()> {
    if event.is_empty() || !event.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        anyhow::bail!(
            "--event must be a LiveKit event name such as room_started (lowercase letters and _)"
        );
    }
    let parsed = reqwest::Url::parse(url).with_context(|| "--url is not a valid URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        anyhow::bail!("--url must be http or https");
    }
    // Signed as LiveKit would, with Warden's signing key (its own newest active key, else LIVEKIT_API_KEY).
    let (key_id, secret) = KeyRing::open(&ctx.config, &ctx.clock)?
        .signing_key()
        .context("no signing key: set LIVEKIT_API_KEY and LIVEKIT_API_SECRET (or create a key)")?;
    let now_ms = ctx.clock.now_ms();
    let body = emit::livekit_body_for_agent(
        event,
        room,
        identity.unwrap_or("warden-drill"),
        agent.unwrap_or("warden-drill-agent"),
        now_ms,
    );
    let token = verify::sign_as_livekit(&body, &key_id, secret.expose(), now_ms.div_euclid(1000))
        .context("signing the webhook")?;
    let (status, answer) = post(parsed, body, token)?;
    let answer = ctx.masker.mask(&answer).replace(['\r', '\n'], " ");
    println!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    if !answer.trim().is_empty() {
        println!("{}", answer.trim());
    }
    if !status.is_success() {
        anyhow::bail!(
            "the receiver refused the webhook with HTTP {}",
            status.as_u16()
        );
    }
    Ok(())
}

fn post(
    url: reqwest::Url,
    body: Vec<u8>,
    token: String,
) -> anyhow::Result<(reqwest::StatusCode, String)> {
    // Another part of the process may have installed it already; either way one is in place.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .user_agent("LiveKit")
            .build()
            .context("building the HTTP client")?;
        let res = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/webhook+json")
            .header(reqwest::header::AUTHORIZATION, token)
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow::Error::new(e.without_url()).context("sending the webhook"))?;
        let status = res.status();
        let bytes = res.bytes().await.unwrap_or_default();
        let text =
            String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_PRINTED_BODY)]).into_owned();
        Ok((status, text))
    })
}
