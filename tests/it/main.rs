//! Warden's integration tests: one binary, one module per area.

mod keys;
mod token;
