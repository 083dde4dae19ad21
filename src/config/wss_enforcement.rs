//! `wss_enforcement`: secure transport for Warden and the URLs it hands out.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::field;

const SECTION: &str = "wss_enforcement";

/// `wss_enforcement` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWss {
    pub enabled: bool,
    pub allowed_protocols: Vec<String>,
    pub redirect_http_to_https: bool,
}

/// `wss_enforcement` section.
#[derive(Clone, Debug)]
pub struct WssEnforcement {
    /// Enforce secure transport.
    pub enabled: bool,
    /// Allowed outgoing schemes (lower case).
    pub allowed_protocols: Vec<String>,
    /// Redirect plain HTTP and send HSTS.
    pub redirect_http_to_https: bool,
}

impl TryFrom<RawWss> for WssEnforcement {
    type Error = ConfigError;

    fn try_from(r: RawWss) -> Result<Self, ConfigError> {
        let protocols = field!(r.allowed_protocols);
        let allowed_protocols: Vec<String> = protocols
            .value
            .iter()
            .map(|p| p.trim().to_ascii_lowercase())
            .collect();
        if let Some(bad) = allowed_protocols
            .iter()
            .find(|p| !matches!(p.as_str(), "wss" | "https" | "ws" | "http"))
        {
            return Err(protocols.invalid(format!("`{bad}` is not one of wss, https, ws, http")));
        }
        Ok(Self {
            enabled: r.enabled,
            allowed_protocols,
            redirect_http_to_https: r.redirect_http_to_https,
        })
    }
}
