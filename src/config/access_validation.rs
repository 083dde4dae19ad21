//! `access_validation`: how strictly tokens and URLs are checked.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::field::{MAX_LIMIT, field};

const SECTION: &str = "access_validation";

/// `access_validation` as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccess {
    pub strict_mode: bool,
    pub validate_all_grants: bool,
    pub log_access_attempts: bool,
    pub max_token_bytes: i64,
}

/// `access_validation` section.
#[derive(Clone, Debug)]
pub struct AccessValidation {
    /// Refuse weak secrets and insecure loopback URLs.
    pub strict_mode: bool,
    /// Record denials as security events.
    pub log_access_attempts: bool,
    /// Longest accepted token.
    pub max_token_bytes: usize,
}

impl TryFrom<RawAccess> for AccessValidation {
    type Error = ConfigError;

    fn try_from(r: RawAccess) -> Result<Self, ConfigError> {
        if !r.validate_all_grants {
            // Kept in the file format because the origin configuration has it;
            // turning grant checks off is not something Warden offers.
            return Err(field!(r.validate_all_grants).invalid(
                "false is not supported: Warden always checks every grant a route requires; remove the key or set it to true",
            ));
        }
        Ok(Self {
            strict_mode: r.strict_mode,
            log_access_attempts: r.log_access_attempts,
            max_token_bytes: field!(r.max_token_bytes).range(256, MAX_LIMIT)?,
        })
    }
}
