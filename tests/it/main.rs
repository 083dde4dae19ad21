//! Warden's integration tests: one binary, real servers on 127.0.0.1:0.

mod support;

mod agents;
mod audit;
mod bench;
mod cli;
mod client_identity;
mod cluster;
mod config;
mod dashboard;
mod deploy;
mod hostile;
mod http;
mod keep_alive;
mod keys;
mod logging;
mod metrics;
mod operator;
mod personal;
mod proxies;
mod reconcile;
mod restart;
mod security;
mod sse;
mod tls;
mod token;
mod webhook;
