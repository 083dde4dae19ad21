//! The start-up block: what an operator needs to wire LiveKit and a browser
//! to a freshly started Warden, in one place.
//!
//! On a terminal it is printed as aligned lines on stdout; the same facts
//! always go to the log as one `warden started` line (JSON where the log is
//! JSON), so a service manager's journal has them too. No secret is in it:
//! key ids only.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::app::AppState;
use crate::config::Backend;

/// The facts of the block.
#[derive(Debug)]
pub struct Banner {
    version: &'static str,
    config: String,
    data_dir: String,
    storage: String,
    listen: String,
    trusted_proxies: String,
    webhook_url: String,
    dashboard_url: String,
    keys: String,
}

impl Banner {
    /// Gathers the block for `state` listening on `local`.
    pub fn of(state: &AppState, local: SocketAddr) -> Self {
        let cfg = &state.config;
        let tls = cfg.server.tls.is_some();
        let scheme = if tls { "https" } else { "http" };
        let base = cfg.server.public_url.clone().map_or_else(
            || format!("{scheme}://{}", crate::runfile::loopback_for(local)),
            |u| u.trim_end_matches('/').to_owned(),
        );
        let storage = match cfg.storage.backend {
            Backend::Sqlite => format!("sqlite {}", cfg.storage.path.display()),
            // The URL may hold a password: the host is enough here.
            Backend::Redis => format!(
                "redis {} (audit in sqlite {})",
                cfg.storage
                    .redis_url
                    .as_ref()
                    .and_then(|u| url::Url::parse(u.expose()).ok())
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| "?".to_owned()),
                cfg.storage.path.display()
            ),
        };
        let proxies = if cfg.server.trusted_proxies.is_empty() {
            "none (clients are told apart by their TCP address)".to_owned()
        } else {
            cfg.server
                .trusted_proxies
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let now = state.clock.now_ms();
        let keys: Vec<String> = state
            .keys
            .key_infos(now)
            .iter()
            .filter(|k| !matches!(k.state, crate::keys::KeyState::Revoked))
            .map(|k| match k.state {
                crate::keys::KeyState::Retiring { .. } => format!("{} (retiring)", k.id),
                _ => k.id.clone(),
            })
            .collect();
        Self {
            version: env!("CARGO_PKG_VERSION"),
            config: cfg.source.as_ref().map_or_else(
                || "built-in defaults".to_owned(),
                |p| p.display().to_string(),
            ),
            data_dir: cfg.data_dir().display().to_string(),
            storage,
            listen: format!(
                "{local} ({})",
                if tls { "TLS" } else { "plain HTTP, no TLS" }
            ),
            trusted_proxies: proxies,
            webhook_url: format!("{base}/webhooks/livekit"),
            dashboard_url: format!("{base}/"),
            keys: if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.join(", ")
            },
        }
    }

    /// The aligned block for a terminal.
    pub fn text(&self) -> String {
        let rows = [
            ("version", self.version),
            ("config", self.config.as_str()),
            ("data directory", self.data_dir.as_str()),
            ("storage", self.storage.as_str()),
            ("listening on", self.listen.as_str()),
            ("trusted proxies", self.trusted_proxies.as_str()),
            ("webhook URL", self.webhook_url.as_str()),
            ("dashboard", self.dashboard_url.as_str()),
            ("API keys", self.keys.as_str()),
        ];
        let mut out = String::from("warden started\n");
        for (name, value) in rows {
            let _ = writeln!(out, "  {name:<16} {value}");
        }
        out.push_str("  (put the webhook URL in livekit-server's config: webhook.urls, with one of the API keys as webhook.api_key)\n");
        out
    }

    /// The same facts as one log line.
    pub fn log(&self) {
        tracing::info!(
            version = self.version,
            config = %self.config,
            data_dir = %self.data_dir,
            storage = %self.storage,
            listen = %self.listen,
            trusted_proxies = %self.trusted_proxies,
            webhook_url = %self.webhook_url,
            dashboard_url = %self.dashboard_url,
            keys = %self.keys,
            "warden started"
        );
    }
}
