//! `warden keys …`: the key store from the command line.
//!
//! New secrets (`create`, `rotate`) are printed once, on stdout, and nowhere
//! else; everything else shows key ids and fingerprints only. A running
//! server picks the changes up from the files within seconds.

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use crate::clock::rfc3339_ms;
use crate::keys::meta::{KeyMeta, OwnedKeys};
use crate::keys::{KeyInfo, KeyRing, KeySource, KeyState};
use crate::redact::Secret;

/// Key store commands.
#[derive(Debug, Subcommand)]
pub enum KeysCmd {
    /// Key ids, created, expires and state (active / retiring / revoked); never secrets.
    List {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a new active key; prints its id and secret once, on stdout.
    Create,
    /// Rotate when due (else exit 1 saying when); the old key keeps verifying for the overlap.
    Rotate {
        /// Rotate now, even if not due.
        #[arg(long)]
        force: bool,
    },
    /// Revoke a key now.
    Revoke {
        /// The key id.
        id: String,
    },
    /// Print the active and retiring keys.
    Export {
        /// As livekit-server's key_file (`key: secret` map).
        #[arg(long)]
        livekit: bool,
    },
}

pub(super) fn run(cmd: KeysCmd, ctx: &Ctx) -> anyhow::Result<()> {
    let now = ctx.clock.now_ms();
    let ring = KeyRing::open_for_admin(&ctx.config, &ctx.clock)?;
    ctx.masker.set_known_secrets(ring.all_secrets().iter());
    for w in ring.warnings() {
        eprintln!("warden: warning: {w}");
    }
    let key_file = ctx.config.livekit.keys_file.display().to_string();
    match cmd {
        KeysCmd::List { json } => list(&ring, now, json, &ctx.key_sources()),
        KeysCmd::Create => {
            record_first(ctx, "create", None)?;
            let (id, secret) = ring.create_key(now, "cli")?;
            print_new_key(&id, &secret);
            eprintln!("created key {id} in {key_file}; the secret above is shown only once");
            Ok(())
        }
        KeysCmd::Rotate { force } => {
            record_first(ctx, if force { "rotate --force" } else { "rotate" }, None)?;
            let (r, secret) = ring.rotate(now, force, "cli")?;
            print_new_key(&r.new_id, &secret);
            eprintln!(
                "rotated: {} is active; {} retiring until {} (saved in {key_file})",
                r.new_id,
                if r.retired.is_empty() {
                    "no key".to_owned()
                } else {
                    r.retired.join(", ")
                },
                rfc3339_ms(r.until_ms)
            );
            Ok(())
        }
        KeysCmd::Revoke { id } => {
            anyhow::ensure!(
                ring.key_infos(now).iter().any(|k| k.id == id),
                "unknown key id {id}"
            );
            record_first(ctx, "revoke", Some(&id))?;
            ring.revoke(&id, now, "cli")?;
            println!("revoked {id}");
            Ok(())
        }
        KeysCmd::Export { livekit } => {
            anyhow::ensure!(livekit, "choose an export format: --livekit");
            export_livekit(&ring, now)
        }
    }
}

/// Records the requested change in the audit log before it happens: key
/// management fails closed when the audit store cannot write.
fn record_first(ctx: &Ctx, action: &str, key: Option<&str>) -> anyhow::Result<()> {
    use crate::audit::{Audit, EventType, NewEvent, Severity};
    let refuse = |e: &dyn std::fmt::Display| {
        anyhow::anyhow!("refused: the audit log cannot record this key change ({e})")
    };
    let db = crate::store::Sqlite::open(&ctx.config.storage.path).map_err(|e| refuse(&e))?;
    let metrics = crate::metrics::Metrics::new();
    let (audit, _worker) = Audit::open(
        &ctx.config,
        db,
        ctx.clock.clone(),
        ctx.masker.clone(),
        metrics,
    )
    .map_err(|e| refuse(&e))?;
    let mut event = NewEvent::new(EventType::KeyRotation, Severity::Medium)
        .detail("action", action)
        .detail("stage", "requested")
        .detail("by", "cli");
    if let Some(k) = key {
        event = event.key(k);
    }
    audit
        .record_durable_blocking(event)
        .map_err(|e| refuse(&e))?;
    Ok(())
}

fn print_new_key(id: &str, secret: &Secret) {
    println!("api_key: {id}");
    println!("api_secret: {}", secret.expose());
}

/// The active and retiring keys (inside their window) as a bare `key: secret` map.
fn export_livekit(ring: &KeyRing, now: i64) -> anyhow::Result<()> {
    let mut out = String::new();
    for info in ring.key_infos(now) {
        let Some(secret) = ring.verifying_secret(&info.id, now) else {
            continue;
        };
        out.push_str(&format!(
            "{}: {}\n",
            crate::keys::file::yaml_scalar(&info.id),
            crate::keys::file::yaml_scalar(secret.expose())
        ));
    }
    anyhow::ensure!(!out.is_empty(), "no active or retiring key to export");
    print!("{out}");
    Ok(())
}

fn list(ring: &KeyRing, now: i64, as_json: bool, ctx_sources: &str) -> anyhow::Result<()> {
    let owned = match ring.files() {
        Some(f) => f.read(now).context("reading the key store")?,
        None => OwnedKeys::default(),
    };
    let rows: Vec<serde_json::Value> = ring
        .key_infos(now)
        .iter()
        .map(|info| {
            row(
                info,
                owned.keys.iter().find(|k| k.id == info.id).map(|k| &k.meta),
            )
        })
        .collect();
    if as_json {
        let doc = json!({ "keys": rows, "history": owned.history });
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("serialising")?
        );
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("warden: no keys: {}", ctx_sources);
    }
    println!(
        "{:<24} {:<9} {:<6} {:<25} {:<40} FINGERPRINT",
        "ID", "STATE", "SOURCE", "CREATED", "EXPIRES"
    );
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
        println!(
            "{:<24} {:<9} {:<6} {:<25} {:<40} {}",
            s("id"),
            s("state"),
            s("source"),
            s("created"),
            match (r["expires"].as_str(), r["expires_because"].as_str()) {
                (Some(at), Some(why)) => format!("{at} ({})", why.replace('_', " ")),
                _ => "-".to_owned(),
            },
            s("fingerprint")
        );
    }
    if !owned.history.is_empty() {
        println!("\nrotation history (oldest first):");
        for e in &owned.history {
            let mut line = format!(
                "  {} {} {} by {}",
                rfc3339_ms(e.at_ms),
                e.action.name(),
                e.key_id,
                e.by
            );
            if !e.retired.is_empty() {
                line.push_str(&format!("; retired {}", e.retired.join(", ")));
            }
            if let Some(u) = e.until_ms {
                line.push_str(&format!(" until {}", rfc3339_ms(u)));
            }
            println!("{line}");
        }
    }
    Ok(())
}

/// One key as a JSON row; `expires` is when it stops being what it is now
/// (a plain RFC 3339 time) and `expires_because` why (`rotation`,
/// `rotation_due`, `retiring`, `revoked`); the table joins the two.
fn row(info: &KeyInfo, meta: Option<&KeyMeta>) -> serde_json::Value {
    let (expires, because) = match info.state {
        KeyState::Active => (
            info.rotation_due_at_ms.map(rfc3339_ms),
            info.rotation_due_at_ms.map(|_| {
                if info.rotation_due {
                    "rotation_due"
                } else {
                    "rotation"
                }
            }),
        ),
        KeyState::Retiring { until_ms } => (Some(rfc3339_ms(until_ms)), Some("retiring")),
        KeyState::Revoked => {
            let at = meta.and_then(|m| m.revoked_ms).map(rfc3339_ms);
            let why = at.as_ref().map(|_| "revoked");
            (at, why)
        }
    };
    json!({
        "id": info.id,
        "state": info.state.name(),
        "source": match info.source { KeySource::Owned => "file", KeySource::Env => "env" },
        "created": info.created_ms.map(rfc3339_ms),
        "expires": expires,
        "expires_because": because,
        "retiring_until": match info.state { KeyState::Retiring { until_ms } => Some(rfc3339_ms(until_ms)), _ => None },
        "rotation_due": info.rotation_due,
        "rotated": meta.and_then(|m| m.rotated_ms).map(rfc3339_ms),
        "replaced_by": meta.and_then(|m| m.replaced_by.clone()),
        "latest_token_exp": meta.and_then(|m| m.max_token_exp_ms).map(rfc3339_ms),
        "fingerprint": info.fingerprint,
    })
}
