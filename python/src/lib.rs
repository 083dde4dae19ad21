//! `warden._native`: Warden's security core as a CPython extension.
//!
//! The pure-Python package `warden` (python/warden/) is the public API; this
//! module is what it calls. Every function here is the gateway's own code
//! (`warden::redact`, `warden::token`, `warden::webhook`, `warden::guard`,
//! `warden::keys`, `warden::transport`), not a re-implementation.
//!
//! Invariants at the boundary:
//! - No Rust panic crosses it: every entry point runs inside [`guarded`],
//!   which turns a panic into `warden.WardenError` (PyO3's own
//!   `PanicException` derives from `BaseException`, which `except Exception`
//!   does not catch).
//! - No secret crosses it in an error: every message raised goes through the
//!   masker first ([`Core::error`]), on top of the core's own rule that its
//!   errors never hold a token or a secret.
//! - Structured results cross as JSON text; the Python side decodes them, so
//!   this module needs no conversion layer of its own.

mod core;
mod mint;
mod receiver;

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    WardenError,
    PyException,
    "Base class of every error Warden raises."
);
create_exception!(
    _native,
    TokenError,
    WardenError,
    "A token was refused; the message says why (never the token)."
);
create_exception!(
    _native,
    WebhookError,
    WardenError,
    "A webhook delivery was refused; `code` and `status` are what the gateway answers."
);
create_exception!(
    _native,
    ConfigError,
    WardenError,
    "The configuration or the key store could not be loaded."
);

/// A panic's message, masked: it may quote data.
fn panic_text(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    warden::redact::Masker::new().mask(&what).into_owned()
}

/// Runs `f`, turning a panic into `WardenError` instead of PyO3's
/// `PanicException`.
pub(crate) fn guarded<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(WardenError::new_err(format!(
            "internal error in Warden's native core (a bug; please report it): {}",
            panic_text(payload.as_ref())
        ))),
    }
}

/// Std's default hook writes a panic's message to stderr as it is; this one
/// writes it masked, on one line. The extension links its own copy of std,
/// so the hook covers this module's panics and no one else's.
fn masked_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("warden: panic at {place}: {}", panic_text(info.payload()));
    }));
}

/// Panics with `message`: lets the test suite prove that a panic in the
/// core arrives as `WardenError` and not as a crash. Not part of the API.
#[pyfunction]
fn _panic_for_tests(message: &str) -> PyResult<()> {
    guarded(|| panic!("{message}"))
}

/// The masking function with patterns only (no known secrets): what
/// `MaskingFilter` falls back to when no `SecurityManager` can be loaded.
#[pyfunction]
fn mask_patterns(text: &str) -> PyResult<String> {
    guarded(|| Ok(warden::redact::Masker::new().mask(text).into_owned()))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    masked_panic_hook();
    let py = m.py();
    m.add("WardenError", py.get_type::<WardenError>())?;
    m.add("TokenError", py.get_type::<TokenError>())?;
    m.add("WebhookError", py.get_type::<WebhookError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("MASK", warden::redact::MASK)?;
    m.add_class::<core::Core>()?;
    m.add_class::<receiver::Receiver>()?;
    m.add_function(wrap_pyfunction!(mask_patterns, m)?)?;
    m.add_function(wrap_pyfunction!(mint::mint_with_key, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    Ok(())
}
