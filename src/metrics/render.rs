//! Every family, in the order a reader meets them: the build and the
//! process, HTTP, webhooks, rooms and streams, connections, the guard, the
//! audit log and alerts, keys, the cluster. Each is written with its HELP
//! and TYPE and every series, even at zero.

use super::expo::{Kind, Value, Writer};
use super::family::{Histogram, Labelled};
use super::process::Process;
use super::{Inner, RATE_LIMIT_SCOPES, ROUTES, Readings, STATUS_CLASSES};

fn counter(w: &mut Writer, name: &str, help: &str, v: u64) {
    w.family(name, Kind::Counter, help);
    w.sample(name, "_total", &[], Value::Int(v));
}

fn gauge(w: &mut Writer, name: &str, help: &str, v: Value) {
    w.family(name, Kind::Gauge, help);
    w.sample(name, "", &[], v);
}

fn labelled(w: &mut Writer, name: &str, help: &str, l: &Labelled) {
    w.family(name, Kind::Counter, help);
    for (value, n) in l.iter() {
        w.sample(name, "_total", &[(l.label, value)], Value::Int(n));
    }
}

fn histogram(w: &mut Writer, name: &str, help: &str, h: &Histogram) {
    w.family(name, Kind::Histogram, help);
    w.histogram(name, &[], &h.read());
}

fn count(n: usize) -> Value {
    Value::Int(n as u64)
}

fn flag(b: bool) -> Value {
    Value::Int(u64::from(b))
}

/// Writes every family.
pub(super) fn all(w: &mut Writer, m: &Inner, r: &Readings, p: Option<&Process>) {
    w.family(
        "warden_build_info",
        Kind::Gauge,
        "Always 1; the version of the running Warden in its label",
    );
    w.sample(
        "warden_build_info",
        "",
        &[("version", env!("CARGO_PKG_VERSION"))],
        Value::Int(1),
    );
    if let Some(p) = p {
        process(w, p);
    }
    http(w, m);
    webhooks(w, m);
    streams(w, m, r);
    guard(w, m, r);
    audit(w, m, r);
    keys(w, r);
    cluster(w, m, r);
}

fn process(w: &mut Writer, p: &Process) {
    counter_f(
        w,
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds",
        p.cpu_seconds,
    );
    gauge(
        w,
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        Value::Int(p.resident_bytes),
    );
    gauge(
        w,
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        Value::Int(p.virtual_bytes),
    );
    gauge(
        w,
        "process_open_fds",
        "Number of open file descriptors",
        Value::Int(p.open_fds),
    );
    gauge(
        w,
        "process_max_fds",
        "Maximum number of open file descriptors (the soft limit)",
        p.max_fds.map_or(Value::Float(f64::INFINITY), Value::Int),
    );
    gauge(
        w,
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds",
        Value::Float(p.start_time_seconds),
    );
}

fn counter_f(w: &mut Writer, name: &str, help: &str, v: f64) {
    w.family(name, Kind::Counter, help);
    w.sample(name, "_total", &[], Value::Float(v));
}

fn http(w: &mut Writer, m: &Inner) {
    let name = "warden_http_requests";
    w.family(
        name,
        Kind::Counter,
        "HTTP requests by matched route template (other: no route matched) and status class",
    );
    for (route, classes) in ROUTES.iter().zip(m.http_requests.iter()) {
        for (class, c) in STATUS_CLASSES.iter().zip(classes.iter()) {
            w.sample(
                name,
                "_total",
                &[("route", route), ("status", class)],
                Value::Int(c.get()),
            );
        }
    }
    let name = "warden_http_request_duration_seconds";
    w.family(name, Kind::Histogram, "Time from a request's arrival to its response head, by route (for the SSE stream: to the stream's start)");
    for (route, h) in ROUTES.iter().zip(m.http_durations.iter()) {
        w.histogram(name, &[("route", route)], &h.read());
    }
}

fn webhooks(w: &mut Writer, m: &Inner) {
    labelled(
        w,
        "warden_webhooks",
        "Webhook requests by result: accepted, duplicate, ignored, or the error code answered",
        &m.webhooks,
    );
    histogram(
        w,
        "warden_webhook_lag_seconds",
        "Age of webhook events when they arrive (LiveKit's createdAt to receipt; LiveKit drops them at about 30 s)",
        &m.webhook_lag,
    );
    histogram(
        w,
        "warden_webhook_to_enqueue_seconds",
        "Webhook received to event stored and queued for SSE clients",
        &m.webhook_to_enqueue,
    );
}

fn streams(w: &mut Writer, m: &Inner, r: &Readings) {
    let hub = &r.hub;
    gauge(
        w,
        "warden_rooms",
        "Live rooms in the room state",
        Value::Int(hub.rooms),
    );
    gauge(
        w,
        "warden_participants",
        "Participants in live rooms",
        Value::Int(hub.participants),
    );
    gauge(
        w,
        "warden_agents",
        "Running agent jobs in live rooms",
        Value::Int(hub.agents),
    );
    gauge(
        w,
        "warden_sse_connections",
        "Open SSE connections",
        Value::Signed(m.sse_connections.get()),
    );
    labelled(
        w,
        "warden_sse_refusals",
        "SSE connections refused, by reason",
        &m.sse_refusals,
    );
    labelled(
        w,
        "warden_sse_cuts",
        "SSE streams ended by the server, by reason (revoked, stalled, expired)",
        &m.sse_cuts,
    );
    counter(
        w,
        "warden_deliveries",
        "Event frames written to SSE clients",
        hub.delivered_frames,
    );
    counter(
        w,
        "warden_slow_consumer_cuts",
        "SSE clients cut off for falling behind",
        hub.slow_consumer_cuts,
    );
    counter(
        w,
        "warden_replay_resets",
        "Reset events sent (resumes history could not serve, slow consumers, lost histories)",
        hub.resets,
    );
    counter(
        w,
        "warden_history_commits",
        "Transactions (one fsync each) that stored events in the embedded history",
        hub.history_commits,
    );
    counter(
        w,
        "warden_history_events_stored",
        "Events stored in the embedded history",
        hub.history_stored,
    );
    gauge(
        w,
        "warden_tcp_connections",
        "Open TCP connections on the listeners",
        Value::Signed(m.tcp_connections.get()),
    );
    labelled(
        w,
        "warden_tcp_refusals",
        "TCP connections closed at accept, by reason",
        &m.tcp_refusals,
    );
}

fn guard(w: &mut Writer, m: &Inner, r: &Readings) {
    let g = &r.guard;
    labelled(
        w,
        "warden_client_identity",
        "Requests whose client address was not given as expected: forwarding headers ignored from a peer outside server.trusted_proxies, or a trusted proxy naming no client",
        &m.client_identity,
    );
    let name = "warden_rate_limit_hits";
    w.family(
        name,
        Kind::Counter,
        "Requests refused by a rate limit, by scope",
    );
    for (scope, n) in RATE_LIMIT_SCOPES.iter().zip(g.rate_limited_by_policy) {
        w.sample(name, "_total", &[("scope", scope)], Value::Int(n));
    }
    counter(
        w,
        "warden_auth_failures",
        "Failed authentications (bad or missing tokens and webhook signatures)",
        g.auth_failures_total,
    );
    counter(w, "warden_lockouts", "Clients locked out", g.lockouts_total);
    gauge(
        w,
        "warden_active_lockouts",
        "Clients locked out now",
        count(g.active_lockouts),
    );
}

fn audit(w: &mut Writer, m: &Inner, r: &Readings) {
    labelled(
        w,
        "warden_security_events",
        "Security events recorded, by type",
        &m.security_events,
    );
    counter(
        w,
        "warden_audit_dropped",
        "Security events dropped because the audit queue was full",
        m.audit_dropped.get(),
    );
    counter(
        w,
        "warden_audit_write_failures",
        "Security events the audit store could not write",
        m.audit_write_failures.get(),
    );
    labelled(w, "warden_alerts", "Security alerts by outcome", &m.alerts);
    gauge(
        w,
        "warden_alert_queue_depth",
        "Alerts waiting to be delivered",
        count(r.alert_queue),
    );
}

fn keys(w: &mut Writer, r: &Readings) {
    let k = &r.keys;
    let name = "warden_keys";
    w.family(name, Kind::Gauge, "API keys by state");
    for (state, n) in ["active", "retiring", "revoked"].iter().zip(k.by_state) {
        w.sample(name, "", &[("state", state)], Value::Int(n));
    }
    w.family(
        "warden_key_age_seconds",
        Kind::Gauge,
        "Age of the oldest active key Warden owns (absent when it owns none)",
    );
    if let Some(age) = k.oldest_active_age_seconds {
        w.sample("warden_key_age_seconds", "", &[], Value::Float(age));
    }
    gauge(
        w,
        "warden_key_rotation_due",
        "1 when an active key Warden owns is past key_rotation.rotation_interval_hours",
        flag(k.rotation_due),
    );
}

fn cluster(w: &mut Writer, m: &Inner, r: &Readings) {
    w.family(
        "warden_redis_up",
        Kind::Gauge,
        "1 when Redis is reachable and this node is caught up (absent on a single node)",
    );
    if let Some(up) = r.redis_up {
        w.sample("warden_redis_up", "", &[], flag(up));
    }
    labelled(
        w,
        "warden_cluster_data_loss",
        "Times this node found that Redis lost data it had seen and started a new epoch, by what showed it",
        &m.cluster_data_loss,
    );
    counter(
        w,
        "warden_cluster_epoch_changes",
        "Times this node moved to a new cluster epoch (every SSE stream reset as history_lost)",
        m.cluster_epoch_changes.get(),
    );
    counter(
        w,
        "warden_cluster_seq_conflicts",
        "Events read from the shared stream under a seq this node had already sent with other content",
        m.cluster_seq_conflicts.get(),
    );
}
