//! One raw value with the key it was read from, and the checks that turn it
//! into a typed value. Every refusal starts with that key's dotted path.
//!
//! Sections build fields with `field!(raw.name)`, which takes
//! the key's name from the raw struct's own field (`stringify!`), so a key in
//! an error cannot drift from the key in the file.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;

use super::ConfigError;
use crate::redact::Secret;

/// Largest value of any count, size or rate.
pub const MAX_LIMIT: i64 = 1_000_000_000;

/// A raw value and where it came from (`section.name`).
pub(super) struct Field<T> {
    section: &'static str,
    name: &'static str,
    pub(super) value: T,
}

/// `field!(raw.name)`: the raw struct's `name` field as a [`Field`] of the
/// section named by the `SECTION` constant in scope.
macro_rules! field {
    ($raw:ident . $name:ident) => {
        $crate::config::field::Field::new(SECTION, stringify!($name), $raw.$name)
    };
}
pub(super) use field;

impl<T> Field<T> {
    pub(super) fn new(section: &'static str, name: &'static str, value: T) -> Self {
        Self {
            section,
            name,
            value,
        }
    }

    /// The dotted key, e.g. `realtime.heartbeat_seconds`.
    pub(super) fn key(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }

    /// `s` as a socket address like `127.0.0.1:8080`.
    fn socket_addr(&self, s: &str) -> Result<SocketAddr, ConfigError> {
        s.trim()
            .parse()
            .map_err(|_| self.invalid(format!("`{s}` is not an address like 127.0.0.1:8080")))
    }

    /// A refusal of this key.
    pub(super) fn invalid(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::invalid(self.key(), message)
    }
}

impl Field<i64> {
    /// A whole number in `lo..=hi`, as the type the setting is used as.
    pub(super) fn range<T: TryFrom<i64>>(&self, lo: i64, hi: i64) -> Result<T, ConfigError> {
        let refused = || self.invalid(format!("must be {lo}..={hi}"));
        if !(lo..=hi).contains(&self.value) {
            return Err(refused());
        }
        // Only bounds wider than `T` could fail here; they are refused the same way.
        T::try_from(self.value).map_err(|_| refused())
    }

    /// A count, size or rate: `1..=MAX_LIMIT`.
    pub(super) fn count<T: TryFrom<i64>>(&self) -> Result<T, ConfigError> {
        self.range(1, MAX_LIMIT)
    }

    /// A duration written in milliseconds, `lo..=hi` of them.
    pub(super) fn millis(&self, lo: i64, hi: i64) -> Result<Duration, ConfigError> {
        self.range(lo, hi).map(Duration::from_millis)
    }

    /// A duration written in seconds, `lo..=hi` of them.
    pub(super) fn secs(&self, lo: i64, hi: i64) -> Result<Duration, ConfigError> {
        self.range(lo, hi).map(Duration::from_secs)
    }

    /// A duration written in minutes, `lo..=hi` of them.
    pub(super) fn minutes(&self, lo: i64, hi: i64) -> Result<Duration, ConfigError> {
        self.range(lo, hi).map(|m: u64| Duration::from_secs(m * 60))
    }

    /// A duration written in hours, `lo..=hi` of them.
    pub(super) fn hours(&self, lo: i64, hi: i64) -> Result<Duration, ConfigError> {
        self.range(lo, hi)
            .map(|h: u64| Duration::from_secs(h * 3600))
    }
}

impl Field<String> {
    /// A socket address like `127.0.0.1:8080`.
    pub(super) fn addr(&self) -> Result<SocketAddr, ConfigError> {
        self.socket_addr(&self.value)
    }

    /// The value trimmed and in lower case, for names chosen from a list.
    pub(super) fn word(&self) -> String {
        self.value.trim().to_ascii_lowercase()
    }
}

impl Field<Vec<String>> {
    /// A list of CIDRs or bare addresses (host bits cleared).
    pub(super) fn nets(&self) -> Result<Vec<IpNet>, ConfigError> {
        self.value
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| self.invalid(format!("`{s}` is not a CIDR or an IP address")))
            })
            .collect()
    }
}

impl Field<Option<String>> {
    /// A socket address, or none when absent.
    pub(super) fn addr(&self) -> Result<Option<SocketAddr>, ConfigError> {
        self.value
            .as_deref()
            .map(|s| self.socket_addr(s))
            .transpose()
    }

    /// An absolute URL, or none when absent or blank.
    pub(super) fn url(&self) -> Result<Option<String>, ConfigError> {
        match self.text() {
            None => Ok(None),
            Some(u) if u.contains("://") && !u.contains(char::is_whitespace) => {
                Ok(Some(u.to_owned()))
            }
            Some(_) => Err(self.invalid("must be an absolute URL like https://host")),
        }
    }

    /// A secret, or none when absent or empty (kept as written, untrimmed).
    pub(super) fn secret(&self) -> Option<Secret> {
        self.value
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| Secret::new(s.clone()))
    }

    /// The value trimmed, or none when absent or blank.
    pub(super) fn text(&self) -> Option<&str> {
        self.value
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}
