//! `logging`: level, format, masking and the security log file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::{MAX_LIMIT, field};

const SECTION: &str = "logging";

/// `logging` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogging {
    pub mask_sensitive_data: bool,
    pub log_level: String,
    pub format: String,
    pub audit_log_retention_days: i64,
    pub security_log_file: String,
    pub security_log_max_bytes: i64,
    pub security_log_retention_days: i64,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    Auto,
    /// Human-readable text.
    Text,
    /// JSON lines.
    Json,
}

/// `logging` section.
#[derive(Clone, Debug)]
pub struct Logging {
    /// Mask secrets in log lines.
    pub mask_sensitive_data: bool,
    /// Level filter directive (lower case, e.g. `info`).
    pub log_level: String,
    /// Output format.
    pub format: LogFormat,
    /// Audit retention.
    pub audit_log_retention_days: u32,
    /// JSON-lines security log.
    pub security_log_file: PathBuf,
    /// Rotation size of the security log.
    pub security_log_max_bytes: u64,
    /// Rotated security log files are deleted after this many days.
    pub security_log_retention_days: u32,
}

impl TryFrom<RawLogging> for Logging {
    type Error = ConfigError;

    fn try_from(r: RawLogging) -> Result<Self, ConfigError> {
        let level = field!(r.log_level);
        let format = field!(r.format);
        Ok(Self {
            mask_sensitive_data: r.mask_sensitive_data,
            log_level: match level.word().as_str() {
                l @ ("trace" | "debug" | "info" | "warn" | "error") => l.to_owned(),
                "warning" => "warn".to_owned(),
                _ => return Err(level.invalid("must be TRACE, DEBUG, INFO, WARN or ERROR")),
            },
            format: match format.word().as_str() {
                "auto" => LogFormat::Auto,
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(format.invalid("must be auto, text or json")),
            },
            audit_log_retention_days: field!(r.audit_log_retention_days).range(1, 36_500)?,
            security_log_file: PathBuf::from(r.security_log_file),
            security_log_max_bytes: field!(r.security_log_max_bytes).range(4096, MAX_LIMIT)?,
            security_log_retention_days: field!(r.security_log_retention_days).range(1, 36_500)?,
        })
    }
}
