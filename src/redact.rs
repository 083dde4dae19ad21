//! Secrets and masking.
//!
//! [`Secret`] holds key material: its `Debug` and `Display` print
//! `[redacted]`, comparison is constant time and the bytes are zeroised on
//! drop. [`Masker`] is the "secure logger": every log line, from any crate,
//! passes through [`Masker::mask`] before it is written (see `telemetry`), and
//! `warden redact` applies the same function to stdin. It masks JWTs,
//! `Bearer …`/`Basic …` credentials, the values of secret-looking keys
//! (`api_key=`, `"secret": "…"`, `token=`, `access_token=`, `password=` …,
//! quoted or not), PEM private keys, `whsec_…` signing secrets and — by exact
//! match — every API secret Warden knows. Look-alikes stay: a 40-hex git sha,
//! a UUID, a room name or `region=eu` are not secrets.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, LazyLock};

use aho_corasick::AhoCorasick;
use arc_swap::ArcSwap;
use regex::{Captures, Regex};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// What every masked secret is replaced with.
pub const MASK: &str = "***MASKED***";

/// A secret string (API secret, pepper, signing key). Never printed.
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: only for signing, verifying and the key file.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// Secret-looking key names whose values are masked in `k=v`, `k: v` and JSON form.
const KEY_NAMES: &str = r"(?:[A-Za-z0-9_.-]*?(?:api[_-]?key|api[_-]?secret|secret|secret[_-]?key|token|access[_-]?token|refresh[_-]?token|id[_-]?token|password|passwd|pwd|private[_-]?key|credential|credentials|signature|warden_token))";

static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    let pem = r"(?P<pem>-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[\s\S]*))";
    let jwt = r"(?P<jwt>\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*)";
    let bearer = r"(?P<scheme>\b(?i:bearer|basic)\s+)(?P<cred>[A-Za-z0-9._~+/=-]{4,})";
    let whsec = r"(?P<whsec>\bwhsec_[A-Za-z0-9+/=_-]{8,})";
    // `scheme://user:password@host`: the password goes, the rest stays.
    let userinfo = r"(?P<userinfo>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<upw>[^@\s/]+)@";
    // `"key": "value"`, `key="value"`, `key=value`, `key: value`; the key
    // must end the word (so `tokens: 5` and `token_count=3` stay).
    let kv = format!(
        r#"(?P<kv>(?i:\b{KEY_NAMES})\b["']?\s*[:=]\s*)(?P<q>["']?)(?P<val>[^"'\s,;&}}\]]+)"#
    );
    Regex::new(&format!("{pem}|{jwt}|{whsec}|{userinfo}|{bearer}|{kv}"))
        .expect("masking pattern is valid")
});

/// The masking function, with the set of exact secrets it knows.
///
/// A cheap `Clone` handle: the known-secret matcher is swapped atomically
/// when keys change, so log writers never wait on key management.
#[derive(Clone, Default)]
pub struct Masker {
    known: Arc<ArcSwap<Known>>,
}

#[derive(Default)]
struct Known {
    matcher: Option<AhoCorasick>,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker").finish_non_exhaustive()
    }
}

impl Masker {
    /// A masker that knows no exact secrets yet (patterns only).
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the set of exact secrets to mask (API secrets, the alert signing secret).
    /// Values shorter than 8 bytes are ignored: masking them would mangle ordinary text.
    pub fn set_known_secrets<'a>(&self, secrets: impl IntoIterator<Item = &'a Secret>) {
        let mut list: Vec<&str> = secrets
            .into_iter()
            .map(Secret::expose)
            .filter(|s| s.len() >= 8)
            .collect();
        list.sort_unstable_by_key(|s| std::cmp::Reverse(s.len()));
        list.dedup();
        let matcher = if list.is_empty() {
            None
        } else {
            AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(&list)
                .ok()
        };
        self.known.store(Arc::new(Known { matcher }));
    }

    /// Masks every secret in `text`. Returns the input unchanged (borrowed) when there is nothing to mask.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let known = self.known.load();
        let exact: Cow<'t, str> = match &known.matcher {
            Some(m) if m.is_match(text) => {
                Cow::Owned(m.replace_all(text, &vec![MASK; m.patterns_len()]))
            }
            _ => Cow::Borrowed(text),
        };
        match exact {
            Cow::Borrowed(t) => PATTERN.replace_all(t, replace),
            Cow::Owned(t) => Cow::Owned(PATTERN.replace_all(&t, replace).into_owned()),
        }
    }
}

fn replace(c: &Captures<'_>) -> String {
    if c.name("pem").is_some() || c.name("jwt").is_some() || c.name("whsec").is_some() {
        return MASK.to_owned();
    }
    if let Some(prefix) = c.name("userinfo") {
        return format!("{}{MASK}@", prefix.as_str());
    }
    if let Some(scheme) = c.name("scheme") {
        return format!("{}{MASK}", scheme.as_str());
    }
    let (key, quote, val) = (&c["kv"], &c["q"], &c["val"]);
    if val == MASK || val.starts_with("***") {
        return c[0].to_owned();
    }
    format!("{key}{quote}{MASK}")
}

#[cfg(test)]
mod tests;
