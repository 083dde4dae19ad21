//! The `warden` command line.
//!
//! Exit codes: 0 success, 1 a refused or invalid input (one line on stderr),
//! 2 bad usage (clap's own errors). Every command takes `--config` and finds
//! its configuration the same way (`config::load`). Commands print results on
//! stdout and errors on stderr, each error as one masked line.

mod audit;
mod health;
mod keys;
mod status;
mod subject;
mod token;
mod webhook;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
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
        /// Listen address (overrides server.listen).
        #[arg(long, value_name = "ADDR")]
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
    /// Print the security status JSON of a running (or local) instance.
    Status {
        /// Base URL of the running instance (default: the configured listen address).
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
#[allow(dead_code)] // `clock` is for the keys and token commands
pub(crate) struct Ctx {
    pub config: Config,
    pub masker: Masker,
    pub clock: Clock,
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
    let masker = Masker::new();
    match run(cli, masker.clone()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}").replace(['\n', '\r'], " ");
            let _ = writeln!(std::io::stderr(), "warden: {}", masker.mask(&line));
            ExitCode::from(1)
        }
    }
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
        Command::Redact => redact_stdin(&masker),
        command => {
            let config = load_config(cli.config.as_deref(), &masker)?;
            let ctx = Ctx {
                config,
                masker,
                clock: Clock::system(),
            };
            match command {
                Command::Serve { listen } => {
                    crate::app::serve_blocking(ctx.config, listen, ctx.masker)
                }
                Command::Keys(cmd) => keys::run(cmd, &ctx),
                Command::Token(cmd) => token::run(cmd, &ctx),
                Command::Webhook(cmd) => webhook::run(cmd, &ctx),
                Command::Audit(cmd) => audit::run(cmd, &ctx),
                Command::Subject(cmd) => subject::run(cmd, &ctx),
                Command::Status { url } => status(url, &ctx),
                Command::Health { url } => health::run(url, &ctx),
                Command::Config(_) | Command::Redact => unreachable_command(),
            }
        }
    }
}

fn unreachable_command() -> anyhow::Result<()> {
    anyhow::bail!("internal: command dispatched twice")
}

/// `warden redact`: masks stdin as a whole (so multi-line PEM blocks go too).
fn redact_stdin(masker: &Masker) -> anyhow::Result<()> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("reading stdin")?;
    let text = String::from_utf8_lossy(&input);
    let mut out = std::io::stdout().lock();
    out.write_all(masker.mask(&text).as_bytes())
        .context("writing stdout")?;
    out.flush().context("writing stdout")?;
    if std::io::stdout().is_terminal() && !text.ends_with('\n') {
        let _ = writeln!(out);
    }
    Ok(())
}

fn status(url: Option<String>, ctx: &Ctx) -> anyhow::Result<()> {
    status::run(url, ctx)
}
