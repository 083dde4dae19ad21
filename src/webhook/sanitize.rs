//! Text that is safe to show: what every string on the stream goes through.
//!
//! Invariants of [`text`]'s output, whatever the input:
//! - no control character (C0 incl. CR/LF/TAB/ESC, DEL, C1), no line or
//!   paragraph separator, no bidi override/isolate/mark, no zero-width or BOM
//!   character (they spoof what a name looks like);
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
        || matches!(
            c,
            '\u{200B}'..='\u{200F}'     // zero-width space/joiners, LRM, RLM
            | '\u{2028}' | '\u{2029}'   // line / paragraph separator
            | '\u{202A}'..='\u{202E}'   // bidi embeddings and overrides
            | '\u{2060}'..='\u{2069}'   // word joiner, invisible operators, bidi isolates
            | '\u{061C}'                // Arabic letter mark
            | '\u{FEFF}'                // BOM / zero-width no-break space
            | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotation controls
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
    fn length_is_clamped_on_char_boundaries() {
        let s = "é".repeat(1000);
        let out = text(&s, MAX_TEXT_CHARS);
        assert_eq!(out.chars().count(), MAX_TEXT_CHARS);
        assert_eq!(id(&format!("RM_{}", "a".repeat(200))).len(), MAX_ID_CHARS);
        assert_eq!(id("RM_ab\u{0}<c>\n"), "RM_abc");
    }
}
