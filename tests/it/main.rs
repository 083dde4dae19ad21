//! The integration test binary: one module per component.

mod audit;
