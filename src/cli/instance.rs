//! Finding and asking the running server: `status`, `unblock`, `ingestion`.
//!
//! The server is found, in order: `--url`; the runtime file in the data
//! directory (`warden.run.json`, written by `warden serve` with the address
//! it is bound to, so `--listen` and port 0 are followed); `server.listen` of
//! the configuration. It is asked with a 60 s admin token minted from the
//! local key store (the CLI runs where the keys are), so no token is pasted
//! on a command line. The token goes only over https or to a loopback address
//! (never in clear across a network) and never follows a redirect.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Ctx;
use crate::keys::KeyRing;
use crate::runfile::{self, Found};

/// How the address was found (said in outputs, so a wrong guess is visible).
#[derive(Clone, Debug)]
pub(super) enum Via {
    /// `--url`.
    Url,
    /// The runtime file of a live server.
    RunFile { pid: u32 },
    /// The configuration's `server.listen` (no runtime file, or a stale one).
    Config { stale_pid: Option<u32> },
}

impl Via {
    pub(super) fn describe(&self, ctx: &Ctx) -> String {
        let file = runfile::path(&ctx.config.data_dir());
        match self {
            Self::Url => "--url".to_owned(),
            Self::RunFile { pid } => format!("{} (pid {pid})", file.display()),
            Self::Config { stale_pid: None } => format!(
                "server.listen; there is no {}: is the server running with this configuration?",
                file.display()
            ),
            Self::Config {
                stale_pid: Some(pid),
            } => format!(
                "server.listen; {} names pid {pid}, which is not running",
                file.display()
            ),
        }
    }
}

/// The running server to ask.
pub(super) struct Instance {
    pub base: String,
    pub via: Via,
    pub pid: Option<u32>,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    token: String,
}

/// Why a request got no usable answer.
#[derive(Debug)]
pub(super) enum AskError {
    /// Nothing answered (not running, wrong address, timeout).
    Unreachable(String),
    /// The server answered with an error.
    Refused { status: u16, message: String },
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "no answer ({why})"),
            Self::Refused { status, message } => write!(f, "HTTP {status}: {message}"),
        }
    }
}

/// Where the running server should be, from `--url`, the runtime file or the configuration.
pub(super) fn locate(url: Option<String>, ctx: &Ctx) -> (String, Via, Option<u32>) {
    if let Some(url) = url {
        return (url.trim_end_matches('/').to_owned(), Via::Url, None);
    }
    let configured = || {
        let scheme = if ctx.config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!(
            "{scheme}://{}",
            runfile::loopback_for(ctx.config.server.listen)
        )
    };
    match runfile::find(&ctx.config.data_dir()) {
        Found::Running(info) => (
            info.base_url(),
            Via::RunFile { pid: info.pid },
            Some(info.pid),
        ),
        Found::Stale(info) => (
            configured(),
            Via::Config {
                stale_pid: Some(info.pid),
            },
            None,
        ),
        Found::None => (configured(), Via::Config { stale_pid: None }, None),
    }
}

impl Instance {
    /// Locates the server and prepares an admin token for it, signed with a key of `ring`.
    pub(super) fn new(url: Option<String>, ctx: &Ctx, ring: &KeyRing) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (base, via, pid) = locate(url, ctx);
        check_transport(&base)?;
        let video = json!({"roomAdmin": true, "roomCreate": true});
        let token = crate::token::mint_service(ring, "warden-cli", video, ctx.clock.now_ms())
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot mint an admin token to ask the server: {e}: {}",
                    ctx.key_sources()
                )
            })?;
        let loopback = is_local(&base);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            // A certificate names the public host, never 127.0.0.1: on
            // loopback the runtime file says which process this is.
            .danger_accept_invalid_certs(loopback && base.starts_with("https:"))
            .build()
            .context("building the HTTP client")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?;
        Ok(Self {
            base,
            via,
            pid,
            rt,
            client,
            token,
        })
    }

    /// `GET path` as an administrator.
    pub(super) fn get(&self, path: &str) -> Result<Value, AskError> {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req)
    }

    /// `POST path` with a JSON body as an administrator.
    pub(super) fn post(&self, path: &str, body: &Value) -> Result<Value, AskError> {
        let req = self.client.post(format!("{}{path}", self.base)).json(body);
        self.send(req)
    }

    fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, AskError> {
        self.rt.block_on(async {
            let resp = req
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| AskError::Unreachable(root_cause(&e)))?;
            let status = resp.status();
            let body: Value = resp
                .json()
                .await
                .map_err(|e| AskError::Unreachable(e.without_url().to_string()))?;
            if status.is_success() {
                Ok(body)
            } else {
                Err(AskError::Refused {
                    status: status.as_u16(),
                    message: body["message"].as_str().unwrap_or("").to_owned(),
                })
            }
        })
    }
}

/// The innermost cause ("Connection refused"), not reqwest's "error sending request".
fn root_cause(e: &reqwest::Error) -> String {
    let mut inner: &dyn std::error::Error = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    inner.to_string()
}

/// Whether `base` names this host: a loopback or unspecified address, or `localhost`.
pub(super) fn is_local(base: &str) -> bool {
    let Ok(url) = url::Url::parse(base) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Refuses a URL the admin token must not be sent to: plain HTTP to
/// anything but this host (a loopback or unspecified address, `localhost`).
pub(super) fn check_transport(base: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(base).map_err(|_| anyhow::anyhow!("--url {base}: not a URL"))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_local(base) => Ok(()),
        "http" => anyhow::bail!(
            "refusing to send an admin token over plain http to {}: use https:// or a loopback address",
            url.host_str().unwrap_or("?")
        ),
        other => anyhow::bail!(
            "--url {base}: the scheme must be https (or http to a loopback address), not {other}"
        ),
    }
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
