//! Logging: tracing with one masking layer in front of every output.
//!
//! All log output, from Warden and from every dependency, is formatted by
//! `tracing-subscriber` into a per-event buffer ([`MaskingWriter`]); when the
//! event is complete the buffer goes through [`Masker::mask`] and only then
//! to stderr. No code path writes a log line around it. Text on a terminal,
//! JSON lines otherwise (or as `logging.format` says). Request logs record the
//! matched route, never the URI (query strings may carry tokens), and never
//! the `Authorization` or `Cookie` headers (see `http`).

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, Logging};
use crate::redact::Masker;

/// Where masked log lines go.
#[derive(Clone)]
pub enum Sink {
    /// Standard error (the default).
    Stderr,
    /// An in-memory buffer (tests).
    Buffer(Arc<Mutex<Vec<u8>>>),
}

/// A `MakeWriter` whose writers mask the whole event before writing it.
#[derive(Clone)]
pub struct MaskingMakeWriter {
    masker: Masker,
    mask: bool,
    sink: Sink,
}

impl MaskingMakeWriter {
    /// Masks with `masker` (unless `mask` is false) and writes to `sink`.
    pub fn new(masker: Masker, mask: bool, sink: Sink) -> Self {
        Self { masker, mask, sink }
    }
}

/// Buffers one log event; masks and writes it when dropped.
pub struct MaskingWriter {
    buf: Vec<u8>,
    make: MaskingMakeWriter,
}

impl Write for MaskingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MaskingWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let masked = if self.make.mask {
            self.make.masker.mask(&text)
        } else {
            text
        };
        match &self.make.sink {
            Sink::Stderr => {
                let _ = io::stderr().lock().write_all(masked.as_bytes());
            }
            Sink::Buffer(b) => {
                if let Ok(mut b) = b.lock() {
                    b.extend_from_slice(masked.as_bytes());
                }
            }
        }
    }
}

impl<'a> MakeWriter<'a> for MaskingMakeWriter {
    type Writer = MaskingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        MaskingWriter {
            buf: Vec::with_capacity(256),
            make: self.clone(),
        }
    }
}

/// Installs the global subscriber for `warden serve`. `RUST_LOG` refines the
/// configured level (e.g. `RUST_LOG=warden=debug`). Safe to call twice (the
/// second call is a no-op).
pub fn init(logging: &Logging, masker: &Masker, sink: Sink) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{},hyper=warn,h2=warn,rustls=warn",
            logging.log_level
        ))
    });
    let json = match logging.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !(matches!(sink, Sink::Stderr) && io::stderr().is_terminal()),
    };
    let writer = MaskingMakeWriter::new(masker.clone(), logging.mask_sensitive_data, sink);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(true);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder.with_ansi(io::stderr().is_terminal()).try_init()
    };
    // Already installed (tests start several servers in one process): keep the first.
    let _ = result;
}

/// Milliseconds, rounded to two decimals for the log (`duration_ms=0.09`).
pub fn rounded_ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Secret;

    #[test]
    fn lines_are_masked_before_they_reach_the_sink() {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let masker = Masker::new();
        masker.set_known_secrets([&Secret::new("known-secret-value-123")]);
        let make = MaskingMakeWriter::new(masker, true, Sink::Buffer(buf.clone()));
        {
            let mut w = make.make_writer();
            w.write_all(b"a token=abc.def.ghi and known-secret-value-123 ")
                .expect("write");
            w.write_all(b"in two writes\n").expect("write");
        }
        let out = String::from_utf8(buf.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(out, "a token=***MASKED*** and ***MASKED*** in two writes\n");
    }
}
