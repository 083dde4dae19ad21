//! Handlers only: extract, one domain call, respond.

pub mod auth;
pub mod dashboard;
pub mod events;
pub mod health;
pub mod metrics;
pub mod security;
pub mod subjects;
pub mod webhook;
