//! Warden: a security gateway for LiveKit deployments.
//!
//! ```text
//!  LiveKit ──signed webhook──▶ http::routes::webhook ──▶ ingest::Ingest::accept ──▶ hub ──SSE──▶ dashboards
//!                                                         │ guard, webhook::Receiver   │ history, snapshot
//!                                                         │ (verify bytes, decode,     ▼
//!                                                         │  sanitise), dedupe      http::routes::events
//!                                                         ▼                            ▲
//!                                 audit (hash-chained events, log, alerts)           │ token::verify
//!                                                                                 keys (KeyRing)
//!
//!  server (listeners, life cycle) ──▶ http (router; http/error.rs picks every status) ──▶ app::AppState
//! ```
//!
//! | module | owns |
//! | --- | --- |
//! | [`config`] | file → env (`config/env.rs`) → validated [`config::Config`]: each section checks itself, raw and typed side by side in `config/<section>.rs`; the embedded defaults are the reference |
//! | [`clock`] | time as a parameter ([`clock::Clock`]: system or manual) |
//! | [`redact`] | [`redact::Secret`] and the log-masking [`redact::Masker`] |
//! | [`telemetry`] | tracing setup; every line passes the masker |
//! | [`keys`] | the key ring: active, retiring and revoked API keys |
//! | [`livekit`] | LiveKit RoomService client; `livekit/reconcile.rs` compares the hub's rooms ([`hub::HeldRoom`]) with the server's |
//! | [`pepper`] | the deployment pepper: peppered hashes of identities and keys |
//! | [`token`] | LiveKit access tokens: claims, grants, mint, verify; single-use SSE tickets |
//! | [`event`] | the minimised, sanitised event that goes on the stream |
//! | [`webhook`] | LiveKit webhook verification, decoding and normalisation; the seen-id store |
//! | [`ingest`] | one delivery from the guard to the stream: kill switch, verification, dedupe, publishing (local or cluster) |
//! | [`hub`] | SSE fan-out: the ring (`hub/history/`: ring, waker slab), subscriptions (`subscribe.rs`), the room state (`snapshot/`: rules, rows, views), the journal (`journal/`: writer, tables), slow-consumer policy |
//! | [`guard`] | client identity, rate limits, lockouts, anomalies, SSE connection caps; refusals as kinds |
//! | [`security`] | the vocabulary of security events: [`security::EventType`], [`security::Severity`] |
//! | [`audit`] | security events: the one `record` path, hash-chained store, security log, alerts |
//! | [`metrics`] | Prometheus/OpenMetrics counters, gauges and histograms for `/metrics` |
//! | [`store`] | persistence backends: embedded SQLite, Redis |
//! | [`cluster`] | several nodes as one through Redis: shared stream and ids, dedupe, lockouts |
//! | [`tls`] | rustls termination, certificate reload |
//! | [`notify`] | systemd readiness (`READY=1` / `STOPPING=1` to `$NOTIFY_SOCKET`) |
//! | [`transport`] | outbound URL rules: `enforce_wss_connections`, `validate_connection_protocol` |
//! | [`app`] | [`app::AppState`]: cheap handles to every component, and their wiring |
//! | [`server`] | [`run`] and `warden serve`: listeners, background tasks, shutdown and drain |
//! | [`http`] | the router, its layers, extractors and handlers; `http/error.rs`, the only place that picks statuses |
//! | [`cli`] | the `warden` command line |

pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod event;
pub mod guard;
pub mod http;
pub mod hub;
pub mod ingest;
pub mod keys;
pub mod livekit;
pub mod metrics;
pub mod notify;
pub mod pepper;
pub mod redact;
pub mod runfile;
pub mod security;
pub mod server;
pub mod store;
pub mod subject;
pub mod telemetry;
pub mod tls;
pub mod token;
pub mod transport;
pub mod webhook;

pub use server::run;
