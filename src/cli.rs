//! The `warden` command line.
//!
//! Exit codes: 0 success, 1 a refused or invalid input (one line on stderr),
//! 2 bad usage (clap's own errors). Every command takes `--config` and finds
//! its configuration the same way (`config::load`). Commands print results on
//! stdout and errors on stderr, each error as one masked line.

mod admin;
mod audit;
mod health;
mod instance;
mod keys;
mod redact;
mod status;
mod subject;
mod token;
mod webhook;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::clock::Clock;
use crate::config::{self, Config, Env};
use crate::redact::Masker;

/// Warden: a security gateway for LiveKit deployments.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (else $LIVEKIT_SECURITY_CONFIG, else config/security.yaml, else defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Listen address, HOST:PORT (overrides server.listen; `localhost:8080` works).
        #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Print the commented defaults, or check a configuration file.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(keys::KeysCmd),
    /// Mint and inspect LiveKit access tokens.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Send signed webhooks as a LiveKit server would.
    #[command(subcommand)]
    Webhook(webhook::WebhookCmd),
    /// Copy stdin to stdout with every secret masked.
    Redact,
    /// Check and read the audit log.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Export or erase everything held about one participant identity.
    #[command(subcommand)]
    Subject(subject::SubjectCmd),
    /// The security status of the running instance (else of the local data); exit 1 when it does not answer or a check failed.
    Status {
        /// Base URL of the running instance (default: found from the runtime file in the data directory, else server.listen).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// JSON even on a terminal.
        #[arg(long)]
        json: bool,
    },
    /// Lift a lockout on the running instance.
    Unblock {
        /// The client address (IPv4, or IPv6: lockouts are per /64).
        ip: std::net::IpAddr,
        /// Base URL of the running instance (default: as `status` finds it).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Pause or resume webhook processing on the running instance (the kill switch).
    Ingestion {
        /// pause or resume.
        #[arg(value_enum)]
        action: IngestionAction,
        /// Base URL of the running instance (default: as `status` finds it).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Probe the running instance's /health: exit 0 when it answers ok, 1 otherwise (container health checks).
    Health {
        /// Base URL of the running instance (default: the configured listen address; 0.0.0.0 is asked on 127.0.0.1).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

/// `warden ingestion pause|resume`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum IngestionAction {
    /// Answer webhooks 503 (LiveKit retries) until resumed.
    Pause,
    /// Process webhooks again.
    Resume,
}

/// `--listen`: an address, or a host name that resolves (`localhost:8080`).
fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let mut addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(text)
        .map_err(|_| format!("{text} is not HOST:PORT (e.g. 127.0.0.1:8080 or localhost:8080)"))?
        .collect();
    // localhost resolves to ::1 and 127.0.0.1; IPv4 first, as browsers try it.
    addrs.sort_by_key(|a| !a.is_ipv4());
    addrs
        .first()
        .copied()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

/// `warden config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the commented default configuration (the reference).
    Defaults,
    /// Validate a configuration file and print the effective configuration, secrets masked.
    Check {
        /// The file (default: found as every command finds it).
        file: Option<PathBuf>,
    },
}

/// What every command gets: its configuration and the masker.
pub(crate) struct Ctx {
    pub config: Config,
    pub masker: Masker,
    pub clock: Clock,
}

impl Ctx {
    /// Where keys were looked for, for "no key" errors: a command run from
    /// the wrong directory says which file it read.
    pub(crate) fn key_sources(&self) -> String {
        format!(
            "looked in {} (livekit.keys_file{}) and LIVEKIT_KEYS / LIVEKIT_API_KEY; run it where `warden serve` runs, or pass --config",
            self.config.livekit.keys_file.display(),
            relative_to_cwd(&self.config.livekit.keys_file)
        )
    }
}

/// `, relative to DIR` for a relative path, so the reader knows where it was looked for.
pub(crate) fn relative_to_cwd(path: &std::path::Path) -> String {
    if path.is_relative()
        && let Ok(cwd) = std::env::current_dir()
    {
        return format!(", relative to {}", cwd.display());
    }
    String::new()
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if !matches!(cli.command, Command::Serve { .. }) {
        quiet_on_broken_pipe();
    }
    let masker = Masker::new();
    match run(cli, masker.clone()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = one_line(&e);
            let _ = writeln!(std::io::stderr(), "warden: {}", masker.mask(&line));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, each said once: a cause whose text
/// its parent already includes (`malformed token: X` caused by `X`) is not
/// repeated.
pub(crate) fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(text.trim()) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text.trim());
    }
    line.replace(['\n', '\r'], " ")
}

/// `warden config check | head -1`: once the reader has gone, the rest of
/// the output has nowhere to go; end quietly with 0, as `rg` and `git` do,
/// instead of the standard library's panic ("failed printing to stdout:
/// Broken pipe", exit 101). Not for `serve`, whose stdout is not its output.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn load_config(cli_config: Option<&std::path::Path>, masker: &Masker) -> anyhow::Result<Config> {
    let cfg = config::load(cli_config, &Env::from_process())?;
    let secrets: Vec<_> = cfg.env_keys.all.iter().map(|(_, s)| s.clone()).collect();
    masker.set_known_secrets(secrets.iter().chain(cfg.alerts.signing_secret.iter()));
    Ok(cfg)
}

fn run(cli: Cli, masker: Masker) -> anyhow::Result<()> {
    match cli.command {
        Command::Config(ConfigCmd::Defaults) => {
            print!("{}", config::DEFAULTS_YAML);
            Ok(())
        }
        Command::Config(ConfigCmd::Check { file }) => {
            let path = file.or(cli.config);
            let cfg = load_config(path.as_deref(), &masker)?;
            let origin = cfg
                .source
                .as_ref()
                .map_or("built-in defaults".to_owned(), |p| p.display().to_string());
            println!("# effective configuration ({origin}; environment applied; secrets masked)");
            print!("{}", cfg.to_masked_yaml(&masker));
            Ok(())
        }
        Command::Redact => redact::run(cli.config.as_deref(), &masker),
        command => {
            let config = load_config(cli.config.as_deref(), &masker)?;
            let ctx = Ctx {
                config,
                masker,
                clock: Clock::system(),
            };
            match command {
                Command::Serve { listen } => {
                    crate::server::serve_blocking(ctx.config, listen, ctx.masker)
                }
                Command::Keys(cmd) => keys::run(cmd, &ctx),
                Command::Token(cmd) => token::run(cmd, &ctx),
                Command::Webhook(cmd) => webhook::run(cmd, &ctx),
                Command::Audit(cmd) => audit::run(cmd, &ctx),
                Command::Subject(cmd) => subject::run(cmd, &ctx),
                Command::Status { url, json } => status::run(url, json, &ctx),
                Command::Unblock { ip, url } => admin::unblock(ip, url, &ctx),
                Command::Ingestion { action, url } => admin::ingestion(action, url, &ctx),
                Command::Health { url } => health::run(url, &ctx),
                Command::Config(_) | Command::Redact => unreachable_command(),
            }
        }
    }
}

fn unreachable_command() -> anyhow::Result<()> {
    anyhow::bail!("internal: command dispatched twice")
}
