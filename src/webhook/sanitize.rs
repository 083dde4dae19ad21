//! Text that is safe to show: what every string on the stream goes through.
//!
//! Invariants of [`text`]'s output, whatever the input:
//! - no control character (C0 incl. CR/LF/TAB/ESC, DEL, C1), no line or
//!   paragraph separator, and no default-ignorable code point: bidi
//!   overrides/isolates/marks, zero-width characters and BOM, soft hyphen,
//!   Hangul fillers, variation selectors, tag characters (they spoof what a
//!   name looks like, or carry hidden text);
//! - no `<` directly followed by a letter, `/`, `!` or `?`, so nothing in it can
//!   open an HTML tag, comment or processing instruction, even if a consumer
//!   forgets to render it as text;
//! - at most `max_chars` characters, cut on a character boundary.
//!
//! Markup is removed rather than escaped: the dashboard renders text, and an
//! escaped `&lt;script&gt;` is noise to an operator.

/// Longest display text (room, participant name, identity when not hashed).
pub const MAX_TEXT_CHARS: usize = 256;

/// Longest LiveKit id (`RM_…`, `PA_…`, `TR_…`, `EG_…`, `IN_…`, `EV_…`).
pub const MAX_ID_CHARS: usize = 64;

/// True for characters that never survive: controls, separators, bidi and invisible formatting.
fn is_forbidden(c: char) -> bool {
    c.is_control()
        || is_default_ignorable(c)
        || matches!(
            c,
            '\u{2028}' | '\u{2029}'   // line / paragraph separator
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation controls
        )
}

/// Unicode's `Default_Ignorable_Code_Point` (DerivedCoreProperties.txt,
/// Unicode 15.1): characters a renderer shows as nothing, so they can make
/// two names look alike or hide text (tag characters smuggle whole strings).
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'                    // soft hyphen
        | '\u{034F}'                  // combining grapheme joiner
        | '\u{061C}'                  // Arabic letter mark
        | '\u{115F}' | '\u{1160}'     // Hangul choseong / jungseong fillers
        | '\u{17B4}' | '\u{17B5}'     // Khmer inherent vowels
        | '\u{180B}'..='\u{180F}'     // Mongolian variation selectors, vowel separator
        | '\u{200B}'..='\u{200F}'     // zero-width space/joiners, LRM, RLM
        | '\u{202A}'..='\u{202E}'     // bidi embeddings and overrides
        | '\u{2060}'..='\u{206F}'     // word joiner, invisible operators, bidi isolates, deprecated format
        | '\u{3164}'                  // Hangul filler
        | '\u{FE00}'..='\u{FE0F}'     // variation selectors
        | '\u{FEFF}'                  // BOM / zero-width no-break space
        | '\u{FFA0}'                  // halfwidth Hangul filler
        | '\u{FFF0}'..='\u{FFF8}'     // reserved specials
        | '\u{1BCA0}'..='\u{1BCA3}'   // shorthand format controls
        | '\u{1D173}'..='\u{1D17A}'   // musical symbol format controls
        | '\u{E0000}'..='\u{E0FFF}'   // tags (U+E0000–E007F), variation selectors 17–256, reserved
    )
}

/// True when `c` after a `<` would start markup.
fn opens_markup(c: char) -> bool {
    c.is_alphabetic() || matches!(c, '/' | '!' | '?')
}

/// Sanitised display text, at most `max_chars` characters (see the module invariants).
pub fn text(input: &str, max_chars: usize) -> String {
    if is_plain(input, max_chars) {
        return input.to_owned();
    }
    text_every_pass(input, max_chars)
}

/// [`text`] without the plain-ASCII shortcut: every character goes through
/// every pass.
fn text_every_pass(input: &str, max_chars: usize) -> String {
    let visible: Vec<char> = input.chars().filter(|c| !is_forbidden(*c)).collect();
    let without_tags = strip_tags(&visible);
    let safe = drop_markup_openers(&without_tags);
    safe.trim()
        .chars()
        .take(max_chars)
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// True when [`text`] would return `input` unchanged: printable ASCII
/// without `<`, no space at either end, at most `max_chars` long. Real names
/// and ids are like this, and skip the per-character passes.
fn is_plain(input: &str, max_chars: usize) -> bool {
    let b = input.as_bytes();
    b.len() <= max_chars
        && b.first() != Some(&b' ')
        && b.last() != Some(&b' ')
        && b.iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'<')
}

/// A LiveKit id reduced to `[A-Za-z0-9_-]`, at most [`MAX_ID_CHARS`].
pub fn id(input: &str) -> String {
    if input.len() <= MAX_ID_CHARS
        && input
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
    {
        return input.to_owned();
    }
    input
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .take(MAX_ID_CHARS)
        .collect()
}

/// The id of a LiveKit event as Warden keeps it and deduplicates it: the id
/// LiveKit sent when it is already a clean id (every real one, `EV_…`),
/// else `EVX_` and 32 hex characters of its SHA-256. Unlike [`id`], which
/// drops characters, this never maps two different ids to one, so two
/// events whose ids differ only in a character [`id`] would drop are two
/// events, not a replay of one.
pub fn event_id(raw: &str) -> String {
    if id(raw) == raw {
        return raw.to_owned();
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(raw.as_bytes());
    format!("EVX_{}", hex::encode(&digest[..16]))
}

/// Removes `<x…>` spans (x opening markup); an unterminated one loses only its `<`.
fn strip_tags(chars: &[char]) -> Vec<char> {
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '<'
            && chars.get(i + 1).copied().is_some_and(opens_markup)
            && let Some(end) = chars[i + 1..].iter().position(|&x| x == '>')
        {
            i += end + 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Drops every `<` whose next *kept* character opens markup.
///
/// Walking right to left makes the decision against the character that will
/// really follow in the output, so removing one `<` can never create a new
/// `<a` pair (`<<a` loses both).
fn drop_markup_openers(chars: &[char]) -> String {
    let mut kept: Vec<char> = Vec::with_capacity(chars.len());
    for &c in chars.iter().rev() {
        if c == '<' && kept.last().copied().is_some_and(opens_markup) {
            continue;
        }
        kept.push(c);
    }
    kept.iter().rev().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The invariant every output must meet.
    pub(crate) fn assert_safe(s: &str) {
        let chars: Vec<char> = s.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            assert!(!is_forbidden(c), "forbidden {c:?} survived in {s:?}");
            if c == '<' {
                assert!(
                    !chars.get(i + 1).copied().is_some_and(opens_markup),
                    "markup opener survived in {s:?}"
                );
            }
        }
    }

    #[test]
    fn tags_controls_and_bidi_are_removed() {
        assert_eq!(text("<b>Alice</b>", 64), "Alice");
        assert_eq!(text("<img src=x onerror=alert(1)>Bob", 64), "Bob");
        assert_eq!(text("Eve\r\n\u{1b}[31mred\u{7}", 64), "Eve[31mred");
        assert_eq!(text("abc\u{202E}gnp.exe", 64), "abcgnp.exe");
        assert_eq!(
            text("a\u{2066}b\u{2069}c\u{200E}d\u{061C}e\u{85}f", 64),
            "abcdef"
        );
        assert_eq!(text("<!-- x -->ok", 64), "ok");
    }

    #[test]
    fn default_ignorable_code_points_are_removed() {
        // Tag characters spell hidden text ("hi" in tags), invisible to a reader.
        assert_eq!(text("Bob\u{E0001}\u{E0068}\u{E0069}\u{E007F}", 64), "Bob");
        assert_eq!(text("Al\u{AD}ice", 64), "Alice");
        assert_eq!(
            text("a\u{180E}b\u{115F}c\u{1160}d\u{3164}e\u{FFA0}f", 64),
            "abcdef"
        );
        assert_eq!(
            text("x\u{34F}y\u{FE0F}z\u{E0100}w\u{1BCA1}v\u{1D175}u", 64),
            "xyzwvu"
        );
        assert_eq!(
            text("\u{3164}\u{3164}", 64),
            "",
            "a name of fillers is empty"
        );
        // Visible neighbours of those ranges survive.
        for kept in [
            "\u{AC}",
            "\u{1161}",
            "\u{3165}",
            "\u{FFA1}",
            "\u{E1000}",
            "\u{1D172}",
            "\u{FE10}",
        ] {
            assert_eq!(
                text(&format!("a{kept}b"), 64),
                format!("a{kept}b"),
                "{kept:?}"
            );
        }
    }

    /// The list above is Unicode's property exactly, as the regex crate's
    /// tables have it (checked over every code point).
    #[test]
    fn the_ignorable_list_is_the_unicode_property() {
        let re = regex::Regex::new(r"^\p{Default_Ignorable_Code_Point}$").expect("regex");
        let mut buf = [0u8; 4];
        let differ: Vec<char> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|&c| is_default_ignorable(c) != re.is_match(c.encode_utf8(&mut buf)))
            .collect();
        assert!(differ.is_empty(), "differ from Unicode: {differ:?}");
    }

    #[test]
    fn harmless_angle_brackets_survive() {
        assert_eq!(text("a < b > c", 64), "a < b > c");
        assert_eq!(text("<3 you", 64), "<3 you");
        assert_eq!(text("x<", 64), "x<");
    }

    #[test]
    fn removing_one_opener_never_creates_another() {
        for input in [
            "<<a",
            "<<<script",
            "<<a>b",
            "<\u{202E}script>",
            "<\u{0}/x",
            "<<<//",
        ] {
            let out = text(input, 64);
            assert_safe(&out);
        }
        assert_eq!(text("<<a>b", 64), "b");
        assert_eq!(text("<\u{202E}script>x", 64), "x");
    }

    #[test]
    fn the_plain_ascii_shortcut_changes_nothing() {
        for input in [
            "",
            "Alice",
            "demo-room",
            " lead",
            "trail ",
            "a  b",
            "x<",
            "a<b",
            "tab\there",
            "~!@#$%^&*()_+{}|:\"?>",
            "\u{7f}del",
            "caf\u{e9}",
            "abcdefgh",
        ] {
            for max in [0, 3, 8, 64] {
                let plain = is_plain(input, max);
                assert_eq!(
                    text(input, max),
                    text_every_pass(input, max),
                    "{input:?} max {max}"
                );
                if plain {
                    assert_eq!(text(input, max), input, "{input:?} max {max}");
                }
            }
        }
        assert!(is_plain("Alice", 64));
        assert!(!is_plain("Alice", 3), "longer than the limit");
        assert!(!is_plain("a<b", 64));
        assert!(!is_plain(" a", 64));
        assert_eq!(id("RM_abc-1"), "RM_abc-1");
        assert_eq!(id("RM_a.b"), "RM_ab");
    }

    #[test]
    fn event_ids_are_kept_or_hashed_never_merged() {
        assert_eq!(event_id("EV_abc-1"), "EV_abc-1");
        assert_eq!(event_id(""), "");
        let spoof = event_id("EV_abc\u{200B}");
        assert!(spoof.starts_with("EVX_") && spoof.len() == 36, "{spoof}");
        assert_eq!(id(&spoof), spoof, "a hashed id is a clean id");
        assert_ne!(spoof, event_id("EV_abc"));
        assert_ne!(spoof, event_id("EV_abc\u{200C}"));
        let long = format!("EV_{}", "a".repeat(80));
        assert_ne!(
            event_id(&long),
            event_id(&format!("{long}b")),
            "no truncation"
        );
        assert_eq!(event_id(&long), event_id(&long), "stable");
    }

    #[test]
    fn length_is_clamped_on_char_boundaries() {
        let s = "é".repeat(1000);
        let out = text(&s, MAX_TEXT_CHARS);
        assert_eq!(out.chars().count(), MAX_TEXT_CHARS);
        assert_eq!(id(&format!("RM_{}", "a".repeat(200))).len(), MAX_ID_CHARS);
        assert_eq!(id("RM_ab\u{0}<c>\n"), "RM_abc");
    }
}
