//! Application state and the server's life cycle. (Foundation: in progress.)

use crate::config::Config;
use crate::redact::Masker;

/// Runs the gateway until SIGINT/SIGTERM.
pub fn serve_blocking(
    config: Config,
    listen: Option<std::net::SocketAddr>,
    masker: Masker,
) -> anyhow::Result<()> {
    let _ = (config, listen, masker);
    anyhow::bail!("serve is not available yet")
}

/// Placeholder for the library entry point.
pub async fn run() {}
