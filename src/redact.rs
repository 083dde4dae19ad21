//! Secrets and masking.
//!
//! [`Secret`] holds key material: its `Debug` and `Display` print
//! `[redacted]`, comparison is constant time and the bytes are zeroised on
//! drop. [`Masker`] is the "secure logger": every log line, from any crate,
//! passes through [`Masker::mask`] before it is written (see `telemetry`), and
//! `warden redact` applies the same function to stdin. It masks JWTs,
//! `Bearer …`/`Basic …` credentials, the values of secret-looking keys
//! (`api_key=`, `"secret": "…"`, `token=`, `access_token=`, `password=`,
//! `sig=` …, quoted or not), PEM private keys, URL passwords, webhook URLs
//! whose path is the credential (Slack, Discord, Teams, `…/hooks/<token>`:
//! the host stays), tokens known by their prefix (`whsec_`, GitHub, GitLab,
//! Slack, Stripe-style, AWS access key ids) and — by exact match — every
//! secret Warden knows.
//!
//! Both ways matter: Warden's own diagnostics must come out as written
//! (`invalid webhook signature: unknown key`), so in a sentence a key's value
//! is masked only when it looks like a credential, and look-alikes stay (a
//! 40-hex git sha, a UUID, a room name, `region=eu`, `tokens: 5`). The cases
//! are in `redact/corpus.txt`; `redact/own_messages.rs` checks every message
//! of the source. Cost: one pass of one combined regex, plus an Aho–Corasick
//! scan for the known secrets.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, LazyLock};

use aho_corasick::AhoCorasick;
use arc_swap::ArcSwap;
use regex::{Captures, Match, Regex};
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
const KEY_NAMES: &str = r"(?:[A-Za-z0-9_.-]*?(?:api[_-]?key|api[_-]?secret|secret|secret[_-]?key|secret[_-]?access[_-]?key|token|access[_-]?token|refresh[_-]?token|id[_-]?token|password|passwd|pwd|private[_-]?key|credential|credentials|signature|sig|warden_token))";

/// Every pattern in one regex: a clean line costs one scan.
static PATTERN: LazyLock<Regex> = LazyLock::new(|| {
    let pem = r"(?P<pem>-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[\s\S]*))";
    let jwt = r"(?P<jwt>\beyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*)";
    let bearer = r"(?P<scheme>\b(?i:bearer|basic)\s+)(?P<cred>[A-Za-z0-9._~+/=-]{4,})";
    // Tokens recognisable by their prefix: signing secrets (`whsec_`),
    // GitHub, GitLab, Slack, Stripe-style and AWS access key ids.
    let prefixed = r"(?P<prefixed>\b(?:whsec_[A-Za-z0-9+/=_-]{8,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|gl(?:pat|ptt|dt|rt|soat)-[A-Za-z0-9_-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|[rs]k_(?:live|test)_[A-Za-z0-9]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}\b))";
    // Webhook URLs whose path is the credential: scheme, host and the fixed
    // route stay (which sink it is), the rest goes.
    let hook = r"(?P<hook>\bhttps?://(?:hooks\.slack\.com/(?:services|workflows|triggers)/|(?:[a-z]+\.)?discord(?:app)?\.com/api/(?:v[0-9]+/)?webhooks/|[A-Za-z0-9-]+\.webhook\.office\.com/webhookb2/|outlook\.office(?:365)?\.com/webhook/))(?P<hooksec>[A-Za-z0-9_@%.~+=/-]{8,})";
    // Any other `https://host/…/hooks/<token>` (Mattermost, Rocket.Chat, …):
    // only when the segment looks generated (see `looks_generated`).
    let generic_hook = r"(?P<ghook>\bhttps?://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9_.~-]+)*?/hooks/)(?P<ghooksec>[A-Za-z0-9_-]{16,}(?:/[A-Za-z0-9_-]+)*)";
    // `scheme://user:password@host`: the password goes, the rest stays. The
    // last `@` before the path ends it (passwords with an unescaped `@`).
    let userinfo = r#"(?P<userinfo>\b[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<upw>[^\s/"'<>]+)@"#;
    // `"key": "value"`, `key="value"`, `key=value`, `key: value`; the key
    // must end the word (so `tokens: 5` and `token_count=3` stay).
    let kv = format!(
        r#"(?P<kv>(?i:\b{KEY_NAMES})\b["']?\s*[:=]\s*)(?P<q>["']?)(?P<val>[^"'\s,;&}}\]]+)"#
    );
    // ASCII word boundaries: a Unicode `\b` makes the fast (DFA) engines
    // give up on the first non-ASCII byte, so a line with `é` in a room name
    // would be scanned by the slow one (about 100 times slower).
    let all = format!("{pem}|{jwt}|{prefixed}|{hook}|{generic_hook}|{userinfo}|{bearer}|{kv}");
    Regex::new(&all.replace(r"\b", r"(?-u:\b)")).expect("masking pattern is valid")
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
            Cow::Borrowed(t) => mask_patterns(t),
            Cow::Owned(t) => Cow::Owned(mask_patterns(&t).into_owned()),
        }
    }
}

/// One pass of [`PATTERN`] over `text`. A match that turns out not to be a
/// secret (prose after `signature:`, a readable `/hooks/` path) is left as it
/// is and the search goes on from inside it, so a secret it overlaps (`token:
/// Bearer …`) is still found.
fn mask_patterns(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let (mut copied, mut at) = (0, 0);
    while at <= text.len() {
        let Some(c) = PATTERN.captures_at(text, at) else {
            break;
        };
        let whole = c.get(0).expect("group 0 is the match");
        match replacement(text, &c) {
            Ok(masked) => {
                out.push_str(&text[copied..whole.start()]);
                out.push_str(&masked);
                copied = whole.end();
                at = whole.end().max(whole.start() + 1);
            }
            Err(resume) => at = resume.max(whole.start() + 1),
        }
        while !text.is_char_boundary(at.min(text.len())) {
            at += 1;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// What a match is replaced with, or `Err(where to search on)` when it is no secret.
fn replacement(text: &str, c: &Captures<'_>) -> Result<String, usize> {
    if c.name("pem").is_some() || c.name("jwt").is_some() || c.name("prefixed").is_some() {
        return Ok(MASK.to_owned());
    }
    if let Some(prefix) = c.name("hook") {
        return Ok(format!("{}{MASK}", prefix.as_str()));
    }
    if let (Some(prefix), Some(path)) = (c.name("ghook"), c.name("ghooksec")) {
        let segment = path.as_str().split('/').next().unwrap_or_default();
        if !looks_generated(segment) {
            return Err(path.start());
        }
        return Ok(format!("{}{MASK}", prefix.as_str()));
    }
    if let Some(prefix) = c.name("userinfo") {
        return Ok(format!("{}{MASK}@", prefix.as_str()));
    }
    if let (Some(scheme), Some(cred)) = (c.name("scheme"), c.name("cred")) {
        // "Basic auth is not supported", "bearer token expired": a word
        // that a sentence goes on after is no credential.
        let v = cred.as_str();
        let sentence_goes_on = text[cred.end()..]
            .strip_prefix(' ')
            .is_some_and(|r| r.starts_with(|ch: char| ch.is_ascii_alphabetic()));
        if is_words(v) && (v.len() < 8 || sentence_goes_on) {
            return Err(cred.start());
        }
        return Ok(format!("{}{MASK}", scheme.as_str()));
    }
    let (Some(key), Some(val)) = (c.name("kv"), c.name("val")) else {
        return Err(text.len());
    };
    let quote = c.name("q").map_or("", |q| q.as_str());
    // Already masked, or a placeholder in a usage text (`"token": "<access token>"`).
    if val.as_str().starts_with("***") || val.as_str().starts_with('<') {
        return Err(val.end());
    }
    if is_prose(text, key, val, quote) && !is_credential(val.as_str()) {
        return Err(val.start());
    }
    Ok(format!("{}{quote}{MASK}", key.as_str()))
}

/// `key: value` inside a sentence ("invalid webhook signature: unknown key"):
/// unquoted, a colon and a space, and not a line of its own. Such a value is
/// masked only when it looks like a credential ([`is_credential`]). `k=v`,
/// `k:v`, quoted forms and a line that is just `key: value` (`password: …`
/// in YAML, `X-Api-Key: …` in a header dump) are masked whatever the value.
fn is_prose(text: &str, key: Match<'_>, val: Match<'_>, quote: &str) -> bool {
    let k = key.as_str();
    if !quote.is_empty() || k.contains(['"', '\'', '=']) {
        return false;
    }
    let Some(colon) = k.find(':') else {
        return false;
    };
    if !k[colon + 1..].starts_with([' ', '\t']) {
        return false;
    }
    let line_start = text[..key.start()].rfind('\n').map_or(0, |i| i + 1);
    let starts_line = text[line_start..key.start()]
        .trim_start_matches([' ', '\t', '-'])
        .is_empty();
    let rest = &text[val.end()..];
    let ends_line = rest[..rest.find('\n').unwrap_or(rest.len())]
        .trim()
        .is_empty();
    !(starts_line && ends_line)
}

/// At least 8 characters and not words (letters in one case, joined by
/// `-`, `_` or `.`): a digit, a symbol or mixed case inside (`sk-live1234`,
/// `hunter2hunter2`, `AbCdEfGh`). `expired`, `unknown`, `not-yet-valid`,
/// `Mismatch`, `storage.redis_url` (`signature: alerts.webhook_url: …`) are
/// words. Quotes and sentence punctuation around it do not count.
fn is_credential(value: &str) -> bool {
    let v = value
        .trim_start_matches(['`', '('])
        .trim_end_matches(['.', ':', ')', '!', '?', '`']);
    v.len() >= 8 && !is_words(v)
}

/// Words joined by `-`, `_` or `.` (`not-yet-valid`, `storage.redis_url`), each in one case.
fn is_words(v: &str) -> bool {
    v.split(['-', '_', '.']).all(is_word)
}

fn is_word(part: &str) -> bool {
    let mut chars = part.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let rest = chars.as_str();
    first.is_ascii_alphabetic()
        && part.len() <= 24
        && (rest.bytes().all(|b| b.is_ascii_lowercase())
            || rest.bytes().all(|b| b.is_ascii_uppercase()))
}

/// A path segment that is generated rather than named: 16+ characters with a
/// digit or with upper and lower case (`b9x8kq2m4fz3nq7w1cdu6r5tye`), not
/// `warden-alerts-channel`.
fn looks_generated(segment: &str) -> bool {
    let has = |f: fn(&u8) -> bool| segment.as_bytes().iter().any(f);
    segment.len() >= 16
        && (has(u8::is_ascii_digit) || (has(u8::is_ascii_lowercase) && has(u8::is_ascii_uppercase)))
}

#[cfg(test)]
mod own_messages;
#[cfg(test)]
mod tests;
