//! `warden health`: the liveness probe for container health checks and
//! scripts, where no `curl` exists (distroless images).
//!
//! It asks `GET /health` of the running instance found from the same
//! configuration (the runtime file the server wrote in its data directory,
//! else `server.listen`; an unspecified address such as `0.0.0.0` is asked on
//! loopback) or of `--url`, and exits 0 when it answers 200
//! `{"status":"ok"}`, 1 otherwise with one line on stderr. It sends no
//! credential, so over TLS to a loopback address it does not check the
//! certificate's name (a certificate is issued for the public name, never for
//! 127.0.0.1); anywhere else the certificate is verified as usual.

use std::time::Duration;

use anyhow::Context as _;

use super::Ctx;

/// How long the probe waits for an answer in all.
const TIMEOUT: Duration = Duration::from_secs(3);

pub(super) fn run(url: Option<String>, ctx: &Ctx) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (base, _, _) = super::instance::locate(url, ctx);
    let parsed = url::Url::parse(&base).with_context(|| format!("not a URL: {base}"))?;
    let loopback = super::instance::is_local(&base);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let target = format!("{}/health", base.trim_end_matches('/'));
    let answer = rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .no_proxy()
            .danger_accept_invalid_certs(loopback && parsed.scheme() == "https")
            .build()?;
        let resp = client.get(&target).send().await?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        Ok::<_, reqwest::Error>((status, body))
    });
    let (status, body) =
        answer.map_err(|e| anyhow::anyhow!("{target}: no answer ({})", e.without_url()))?;
    let ok = serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| v["status"] == "ok");
    if status == 200 && ok {
        println!("ok");
        Ok(())
    } else {
        anyhow::bail!("{target}: not healthy (HTTP {status})")
    }
}
