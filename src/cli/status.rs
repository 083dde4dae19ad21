//! `warden status`: the security status JSON of a running instance, or —
//! when none answers — a local report from the key store and the audit log.
//!
//! The running instance is asked with a 60 s admin token minted from the
//! local key store (the CLI runs where the keys are), so no token has to be
//! pasted on a command line. The token goes only over https or to a loopback
//! address (never in clear across a network), and never follows a redirect.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Ctx;
use crate::clock::rfc3339_ms;
use crate::keys::{KeyRing, KeyState};

pub(super) fn run(url: Option<String>, ctx: &Ctx) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ring = KeyRing::open(&ctx.config, &ctx.clock)?;
    let scheme = if ctx.config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let base = url.unwrap_or_else(|| format!("{scheme}://{}", ctx.config.server.listen));
    check_transport(&base)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let remote = rt.block_on(ask(&base, &ring, ctx));
    let doc = match remote {
        Ok(doc) => doc,
        Err(Unreachable(why)) => {
            eprintln!("warden: no instance answered at {base} ({why}); local status follows");
            local(&ring, ctx)?
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).context("encoding")?
    );
    Ok(())
}

struct Unreachable(String);

/// Refuses a URL the admin token must not be sent to: plain HTTP to
/// anything but this host (a loopback or unspecified address, `localhost`).
fn check_transport(base: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(base).with_context(|| format!("--url {base}: not a URL"))?;
    let local = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if local => Ok(()),
        "http" => anyhow::bail!(
            "refusing to send an admin token over plain http to {}: use https:// or a loopback address",
            url.host_str().unwrap_or("?")
        ),
        other => anyhow::bail!(
            "--url {base}: the scheme must be https (or http to a loopback address), not {other}"
        ),
    }
}

async fn ask(base: &str, ring: &KeyRing, ctx: &Ctx) -> Result<Value, Unreachable> {
    let video = json!({"roomAdmin": true, "roomCreate": true});
    let token = crate::token::mint_service(ring, "warden-cli", video, ctx.clock.now_ms())
        .map_err(|e| Unreachable(e.to_string()))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| Unreachable(e.to_string()))?;
    let resp = client
        .get(format!(
            "{}/api/security/status",
            base.trim_end_matches('/')
        ))
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| Unreachable(e.without_url().to_string()))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| Unreachable(e.without_url().to_string()))?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(Unreachable(format!(
            "HTTP {}: {}",
            status.as_u16(),
            body["message"].as_str().unwrap_or("")
        )))
    }
}

fn local(ring: &KeyRing, ctx: &Ctx) -> anyhow::Result<Value> {
    let now = ctx.clock.now_ms();
    let keys: Vec<Value> = ring
        .key_infos(now)
        .iter()
        .map(|k| {
            let state = match k.state {
                KeyState::Active => "active",
                KeyState::Retiring { .. } => "retiring",
                KeyState::Revoked => "revoked",
            };
            json!({"id": k.id, "state": state, "created": k.created_ms.map(rfc3339_ms), "rotation_due": k.rotation_due})
        })
        .collect();
    let audit = if !ctx.config.storage.path.exists() {
        json!({"status": "degraded", "detail": "no audit log yet (warden has not run here)"})
    } else {
        match crate::store::Sqlite::open(&ctx.config.storage.path) {
            Ok(db) => match crate::audit::verify_chain(&db) {
                Ok(r) => json!({"status": "healthy", "entries": r.entries, "purged": r.purged}),
                Err(e) => json!({"status": "critical", "detail": e.to_string()}),
            },
            Err(e) => json!({"status": "critical", "detail": e.to_string()}),
        }
    };
    let due = keys.iter().any(|k| k["rotation_due"] == true);
    let overall = if audit["status"] == "critical" || keys.is_empty() {
        "critical"
    } else if due {
        "degraded"
    } else {
        "healthy"
    };
    Ok(json!({"running": false, "overall_status": overall, "keys": keys, "audit": audit}))
}

#[cfg(test)]
mod tests {
    use super::check_transport;

    #[test]
    fn the_admin_token_goes_only_over_https_or_to_this_host() {
        for ok in [
            "https://warden.example.com",
            "https://192.0.2.1:8443",
            "http://127.0.0.1:8080",
            "http://127.9.9.9",
            "http://[::1]:8080",
            "http://0.0.0.0:8080",
            "http://localhost:8080",
        ] {
            assert!(check_transport(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://192.0.2.1:8080",
            "http://warden.example.com",
            "http://[2001:db8::1]",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            let e = check_transport(bad).expect_err(bad).to_string();
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
