//! Warden's integration tests: one binary, a module per component.

mod webhook;
