//! `warden subject export|erase --identity I` (SPEC "Personal data").
//!
//! With a server running, the command goes through its admin API
//! (`POST /api/security/subjects/…`, with a 60 s admin token minted from the
//! local key store, as `warden status` does): only the server can erase what
//! it holds in memory (the resume history, the live room state). When no
//! instance answers, the command works on the files directly.

use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{Value, json};

use super::Ctx;
use crate::keys::KeyRing;
use crate::subject::{self, SubjectError};

/// `warden subject …`.
#[derive(Debug, Subcommand)]
pub enum SubjectCmd {
    /// Print, as one JSON document, every record held about a participant identity.
    Export {
        /// The participant identity (plain, as LiveKit knows it).
        #[arg(long)]
        identity: String,
        /// Base URL of the running instance (default: the configured listen address).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Erase a participant identity (and its hash) from every store and file.
    Erase {
        /// The participant identity (plain, as LiveKit knows it).
        #[arg(long)]
        identity: String,
        /// Base URL of the running instance (default: the configured listen address).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

pub(super) fn run(cmd: SubjectCmd, ctx: &Ctx) -> anyhow::Result<()> {
    let (action, identity, url) = match cmd {
        SubjectCmd::Export { identity, url } => ("export", identity, url),
        SubjectCmd::Erase { identity, url } => ("erase", identity, url),
    };
    subject::validate(&identity).map_err(|e| anyhow::anyhow!("{e}"))?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scheme = if ctx.config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let base = url.unwrap_or_else(|| format!("{scheme}://{}", ctx.config.server.listen));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let doc = match rt.block_on(ask(&base, action, &identity, ctx))? {
        Some(doc) => doc,
        None => {
            eprintln!("warden: no instance answered at {base}; working on the files directly");
            offline(action, &identity, ctx).map_err(|e| anyhow::anyhow!("{e}"))?
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).context("encoding")?
    );
    if doc["erased"]["database_scrubbed"] == false {
        anyhow::bail!(
            "erased, but the database stayed busy and could not be vacuumed: free pages or the WAL may still hold copies; run the erase again"
        );
    }
    Ok(())
}

fn offline(action: &str, identity: &str, ctx: &Ctx) -> Result<Value, SubjectError> {
    if action == "export" {
        subject::offline::export(&ctx.config, &ctx.clock, &ctx.masker, identity)
    } else {
        let erasure = subject::offline::erase(&ctx.config, &ctx.clock, &ctx.masker, identity)?;
        Ok(json!({"erased": erasure}))
    }
}

/// The server's answer; `None` when nothing listens there (then the files are used).
async fn ask(base: &str, action: &str, identity: &str, ctx: &Ctx) -> anyhow::Result<Option<Value>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .build()
        .context("HTTP client")?;
    let url = format!(
        "{}/api/security/subjects/{action}",
        base.trim_end_matches('/')
    );
    // Is anything there? A refused connection means no server: use the files.
    match client
        .get(format!("{}/health", base.trim_end_matches('/')))
        .send()
        .await
    {
        Err(e) if e.is_connect() => return Ok(None),
        _ => {}
    }
    let ring = KeyRing::open(&ctx.config, &ctx.clock)?;
    let video = json!({"roomAdmin": true, "roomCreate": true});
    let token = crate::token::mint_service(&ring, "warden-cli", video, ctx.clock.now_ms())?;
    let resp = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({"identity": identity}))
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!("the instance at {base} did not answer: {}", e.without_url())
        })?;
    let status = resp.status();
    let body: Value = resp.json().await.map_err(|e| {
        anyhow::anyhow!("the instance at {base} answered badly: {}", e.without_url())
    })?;
    if status.is_success() {
        Ok(Some(body))
    } else {
        anyhow::bail!(
            "refused by the instance at {base} (HTTP {}): {}",
            status.as_u16(),
            body["message"].as_str().unwrap_or("")
        )
    }
}
