//! `warden unblock IP` and `warden ingestion pause|resume`: admin actions on
//! the running instance (found as [`super::instance`] says), recorded in its
//! audit log as the API's are.
//!
//! Lockouts and the kill switch live in the running server (and in Redis
//! when several nodes share it), so with no server answering there is
//! nothing to change: the command says so and exits 1.

use std::net::IpAddr;

use serde_json::json;

use super::instance::{AskError, Instance};
use super::{Ctx, IngestionAction};
use crate::keys::KeyRing;

pub(super) fn unblock(ip: IpAddr, url: Option<String>, ctx: &Ctx) -> anyhow::Result<()> {
    let instance = Instance::new(url, ctx, &KeyRing::open(&ctx.config, &ctx.clock)?)?;
    let answer = instance
        .post("/api/security/unblock", &json!({"ip": ip.to_string()}))
        .map_err(|e| failed(&instance, ctx, &e))?;
    if answer["unblocked"] == true {
        println!("unblocked {ip}");
    } else {
        println!("{ip} was not locked out (nothing to lift)");
    }
    Ok(())
}

pub(super) fn ingestion(
    action: IngestionAction,
    url: Option<String>,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let instance = Instance::new(url, ctx, &KeyRing::open(&ctx.config, &ctx.clock)?)?;
    let enabled = matches!(action, IngestionAction::Resume);
    instance
        .post("/api/security/ingestion", &json!({"enabled": enabled}))
        .map_err(|e| failed(&instance, ctx, &e))?;
    if enabled {
        println!("ingestion resumed: webhooks are processed");
    } else {
        println!(
            "ingestion paused: webhooks are answered 503 (LiveKit retries them for about 30 s) until `warden ingestion resume`"
        );
    }
    Ok(())
}

fn failed(instance: &Instance, ctx: &Ctx, e: &AskError) -> anyhow::Error {
    match e {
        AskError::Unreachable(_) => anyhow::anyhow!(
            "no instance answered at {} (found via {}): {e}; lockouts and the kill switch live in the running server",
            instance.base,
            instance.via.describe(ctx)
        ),
        AskError::Refused { .. } => anyhow::anyhow!("{}: {e}", instance.base),
    }
}
