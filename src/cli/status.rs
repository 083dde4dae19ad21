//! `warden status`: the security status of the running instance (found as
//! [`super::instance`] says), or — when none answers — a local report from
//! the key store and the audit log.
//!
//! Output: a short summary on a terminal; JSON when stdout is not a terminal
//! or with `--json`. Exit 0 when the running instance answered and none of
//! its health checks is `critical` (degraded still exits 0; security events
//! never change the exit code); 1 otherwise — not running, unreachable, or a
//! check failed — with the reason as one line on stderr.

use std::fmt::Write as _;
use std::io::IsTerminal;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Ctx;
use super::instance::{AskError, Instance};
use crate::clock::rfc3339_ms;
use crate::keys::{KeyRing, KeyState};

pub(super) fn run(url: Option<String>, json_out: bool, ctx: &Ctx) -> anyhow::Result<()> {
    let ring = KeyRing::open(&ctx.config, &ctx.clock)?;
    let json_out = json_out || !std::io::stdout().is_terminal();
    let (doc, failure) = match Instance::new(url, ctx, &ring) {
        Ok(instance) => match instance.get("/api/security/status") {
            Ok(status) => answered(status, &instance, ctx),
            Err(e) => {
                let why = match &e {
                    AskError::Unreachable(_) => format!(
                        "no instance answered at {} (found via {}): {e}",
                        instance.base,
                        instance.via.describe(ctx)
                    ),
                    AskError::Refused { .. } => {
                        format!("the instance at {} refused: {e}", instance.base)
                    }
                };
                let mut doc = local(&ring, ctx)?;
                doc["instance"] = json!({"url": instance.base, "error": e.to_string()});
                (doc, Some(why))
            }
        },
        // No key to sign with, or a URL the token must not go to: the local report and why.
        Err(e) => (local(&ring, ctx)?, Some(super::one_line(&e))),
    };
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("encoding")?
        );
    } else {
        print!("{}", summary(&doc));
    }
    match failure {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
}

/// The running server's status (its `checks` included): failed when a check is critical.
fn answered(mut status: Value, instance: &Instance, ctx: &Ctx) -> (Value, Option<String>) {
    let failed: Vec<String> = status["checks"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, c)| c["status"] == "critical")
        .map(|(name, c)| format!("{name}: {}", c["detail"].as_str().unwrap_or("")))
        .collect();
    status["running"] = Value::Bool(true);
    status["instance"] = json!({
        "url": instance.base,
        "found_via": instance.via.describe(ctx),
        "pid": instance.pid,
    });
    let failure =
        (!failed.is_empty()).then(|| format!("health check failed: {}", failed.join("; ")));
    (status, failure)
}

/// The terminal summary: overall state first, then what needs attention.
fn summary(doc: &Value) -> String {
    let mut out = String::new();
    let overall = doc["overall_status"].as_str().unwrap_or("unknown");
    if doc["running"] == true {
        let _ = writeln!(
            out,
            "warden at {} (pid {}): {overall}",
            doc["instance"]["url"].as_str().unwrap_or("?"),
            doc["instance"]["pid"]
                .as_u64()
                .map_or_else(|| "?".to_owned(), |p| p.to_string())
        );
    } else {
        let _ = writeln!(out, "warden is not running here; local data: {overall}");
    }
    if let Some(checks) = doc["checks"].as_object() {
        for (name, c) in checks {
            let status = c["status"].as_str().unwrap_or("?");
            if status != "healthy" {
                let _ = writeln!(
                    out,
                    "  {status:<9} {name}: {}",
                    c["detail"].as_str().unwrap_or("")
                );
            }
        }
        let healthy = checks.values().filter(|c| c["status"] == "healthy").count();
        let _ = writeln!(out, "  {healthy} of {} checks healthy", checks.len());
    }
    if let Some(keys) = doc["keys"].as_array() {
        let list: Vec<String> = keys
            .iter()
            .map(|k| {
                let due = if k["rotation_due"] == true {
                    ", rotation due"
                } else {
                    ""
                };
                format!(
                    "{} ({}{due})",
                    k["id"].as_str().unwrap_or("?"),
                    k["state"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let _ = writeln!(out, "  keys        {}", list.join(", "));
    }
    if let Some(c) = doc.get("connections").filter(|c| c.is_object()) {
        let _ = writeln!(out, "  streams     {} of {}", c["open"], c["max"]);
    }
    if let Some(enabled) = doc["ingestion"]["enabled"].as_bool() {
        let _ = writeln!(
            out,
            "  ingestion   {}",
            if enabled { "on" } else { "PAUSED" }
        );
    }
    if let Some(blocked) = doc["blocked"].as_array() {
        let list: Vec<String> = blocked
            .iter()
            .map(|b| {
                format!(
                    "{} until {}",
                    b["ip"].as_str().unwrap_or("?"),
                    b["until"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let shown = if list.is_empty() {
            "none".to_owned()
        } else {
            list.join(", ")
        };
        let _ = writeln!(out, "  locked out  {shown}");
    }
    if let Some(day) = doc["counts"]["24h"].as_object() {
        let mut seen: Vec<String> = day
            .iter()
            .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        if seen.is_empty() {
            seen.push("none".to_owned());
        }
        let _ = writeln!(out, "  events 24 h {}", seen.join(", "));
    }
    out
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
    let path = &ctx.config.storage.path;
    let audit = if !path.exists() {
        json!({"status": "degraded", "detail": format!("no audit log at {} yet (warden has not run with this configuration here)", path.display())})
    } else {
        match crate::store::Sqlite::open(path) {
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
    Ok(
        json!({"running": false, "overall_status": overall, "keys": keys, "checks": {"audit_store": audit}}),
    )
}
