//! `warden redact`: stdin to stdout with every secret masked.
//!
//! Besides the patterns, the masker is given every secret Warden knows, from
//! every source `serve` reads: the key file, `LIVEKIT_KEYS`,
//! `LIVEKIT_API_KEY`/`LIVEKIT_API_SECRET`, the alert signing secret and the
//! Redis password. A source that cannot be read is said on stderr (one
//! warning line each) and the others are still used, so a broken
//! configuration never turns the filter off; the environment's secrets are
//! read even when the configuration refuses them (`LIVEKIT_API_SECRET`
//! without `LIVEKIT_API_KEY`). Nothing is created: a missing key file is
//! not an error here.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use anyhow::Context as _;

use crate::clock::Clock;
use crate::config::{self, Env};
use crate::keys::KeyRing;
use crate::redact::{Masker, Secret};

pub(super) fn run(cli_config: Option<&Path>, masker: &Masker) -> anyhow::Result<()> {
    let (secrets, warnings) = known_secrets(cli_config, &Env::from_process());
    for w in warnings {
        eprintln!("warden: warning: {}", masker.mask(&w));
    }
    masker.set_known_secrets(secrets.iter());
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("reading stdin")?;
    // Masked as a whole, so multi-line PEM blocks go too.
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

/// Every secret from every source, and what could not be read.
fn known_secrets(cli_config: Option<&Path>, env: &Env) -> (Vec<Secret>, Vec<String>) {
    let mut secrets = from_environment(env);
    let mut warnings = Vec::new();
    let cfg = match config::load(cli_config, env) {
        Ok(cfg) => cfg,
        Err(e) => {
            warnings.push(format!(
                "configuration not loaded ({e:#}); masking with the environment's keys only"
            ));
            return (secrets, warnings);
        }
    };
    secrets.extend(cfg.env_keys.all.iter().map(|(_, s)| s.clone()));
    secrets.extend(cfg.alerts.signing_secret.iter().cloned());
    secrets.extend(cfg.storage.redis_url.iter().flat_map(redis_password));
    if cfg.livekit.keys_file.exists() {
        match KeyRing::open_for_admin(&cfg, &Clock::system()) {
            Ok(ring) => secrets.extend(ring.all_secrets()),
            Err(e) => warnings.push(format!(
                "key file {} not read ({e:#}); its secrets are not masked",
                cfg.livekit.keys_file.display()
            )),
        }
    }
    (secrets, warnings)
}

/// `LIVEKIT_API_SECRET` and the secrets of `LIVEKIT_KEYS`, read directly:
/// a half-set pair, which the configuration refuses, is still a secret.
fn from_environment(env: &Env) -> Vec<Secret> {
    let mut out: Vec<Secret> = env
        .get("LIVEKIT_API_SECRET")
        .map(|s| Secret::new(s.trim()))
        .into_iter()
        .collect();
    if let Some(text) = env.get("LIVEKIT_KEYS")
        && let Ok(keys) = config::parse_key_lines(text)
    {
        out.extend(keys.into_iter().map(|(_, s)| s));
    }
    out
}

/// The password of a `redis://user:password@host` URL, as written and percent-decoded.
fn redis_password(url: &Secret) -> Vec<Secret> {
    let Some(raw) = url::Url::parse(url.expose())
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    else {
        return Vec::new();
    };
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = raw
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                decoded.push(b);
                i += 3;
            }
            (b, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    vec![Secret::new(decoded), Secret::new(raw)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    fn exposed(secrets: &[Secret]) -> Vec<&str> {
        secrets.iter().map(Secret::expose).collect()
    }

    #[test]
    fn a_half_set_pair_is_still_a_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("none.yaml");
        std::fs::write(&cfg, "").expect("write");
        let (secrets, warnings) = known_secrets(
            Some(&cfg),
            &env(&[("LIVEKIT_API_SECRET", "only-the-secret-is-set-0123")]),
        );
        assert!(exposed(&secrets).contains(&"only-the-secret-is-set-0123"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(!warnings[0].contains("only-the-secret"), "{warnings:?}");
    }

    #[test]
    fn the_redis_password_is_decoded() {
        let p = redis_password(&Secret::new("redis://:p%40ss+w0rd@127.0.0.1:6379/0"));
        assert_eq!(exposed(&p), ["p@ss+w0rd", "p%40ss+w0rd"]);
        assert!(redis_password(&Secret::new("redis://127.0.0.1:6379")).is_empty());
    }
}
