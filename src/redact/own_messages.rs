//! Warden's own messages through the masker: none may change.
//!
//! The messages are read from the source at test time: every string literal
//! of the library and the CLI (`src/**/*.rs`; test modules, the benchmark
//! binary and the masker's own patterns left out) — log messages, `bail!`,
//! `#[error("…")]`, API error texts, CLI output — with each `{…}` placeholder
//! filled in with a benign value (an id, a room, a path, a number, a word, or
//! one of the `#[error]` texts for an error that is displayed inside
//! another), plus every tracing field name in both log formats
//! (`name=value`, `"name":"value"`). A message that the masker changes is a
//! diagnostic an operator would read as `***MASKED***`.

use std::path::Path;

use super::Masker;

/// Source files whose literals are not messages: the patterns and corpus of
/// the masker itself, and the benchmark driver (a separate binary).
fn skipped(path: &Path) -> bool {
    let p = path.to_string_lossy().replace('\\', "/");
    p.ends_with("/src/redact.rs")
        || p.contains("/src/redact/")
        || p.contains("/src/bin/")
        || p.ends_with("/tests.rs")
        || p.contains("/tests/")
}

/// Literals that carry a secret on purpose (so masking them is right): the
/// signing secret being built, and `keys create` printing the new key once
/// on stdout (never logged).
const SECRET_ON_PURPOSE: [&str; 3] = ["whsec_{}", "api_key: {id}", "api_secret: {}"];

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") && !skipped(&path) {
            let text = std::fs::read_to_string(&path).expect("read source");
            // Inline test modules sit at the end of their file.
            let code = match text.find("#[cfg(test)]\nmod tests {") {
                Some(i) => text[..i].to_owned(),
                None => text,
            };
            out.push((path.display().to_string(), code));
        }
    }
}

/// The string literals of `code`, unescaped, each with its byte offset.
/// A small lexer: comments, char literals and lifetimes are skipped, raw
/// strings (`r#"…"#`) are read as written.
fn literals(code: &str) -> Vec<(usize, String)> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                i = code[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = code[i + 2..].find("*/").map_or(b.len(), |n| i + n + 4);
            }
            b'\'' => {
                // 'x', '\n', '\'' are chars; 'a (no closing quote) is a lifetime.
                if b.get(i + 1) == Some(&b'\\') {
                    i = code[i + 3..].find('\'').map_or(b.len(), |n| i + n + 4);
                } else {
                    let ch = code[i + 1..].chars().next().map_or(1, char::len_utf8);
                    i += if b.get(i + 1 + ch) == Some(&b'\'') {
                        ch + 2
                    } else {
                        1
                    };
                }
            }
            b'r' if !ident_before(b, i) && matches!(b.get(i + 1), Some(b'"' | b'#')) => {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                let open = i + 1 + hashes;
                if b.get(open) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let end = code[open + 1..]
                    .find(&close)
                    .map_or(b.len(), |n| open + 1 + n);
                out.push((i, code[open + 1..end].to_owned()));
                i = end + close.len();
            }
            b'"' => {
                let (text, end) = cooked(code, i + 1);
                out.push((i, text));
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// An ordinary string literal from `start` (after its quote): its value and
/// the offset after its closing quote.
fn cooked(code: &str, start: usize) -> (String, usize) {
    let mut text = String::new();
    let mut chars = code[start..].char_indices();
    while let Some((n, c)) = chars.next() {
        match c {
            '"' => return (text, start + n + 1),
            '\\' => match chars.next().map(|(_, e)| e) {
                Some('n') => text.push('\n'),
                Some('t') => text.push('\t'),
                Some('r') => text.push('\r'),
                Some('0') => text.push('\0'),
                Some('\n') => {
                    // A continued line: the next line's indentation goes.
                    let rest = chars.as_str();
                    let skip = rest.len() - rest.trim_start().len();
                    for _ in rest[..skip].chars() {
                        chars.next();
                    }
                }
                Some('u') => {
                    let rest = chars.as_str();
                    let end = rest.find('}').unwrap_or(0);
                    let hex = rest.get(1..end).unwrap_or("");
                    if let Some(ch) = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                        text.push(ch);
                    }
                    for _ in rest[..=end].chars() {
                        chars.next();
                    }
                }
                Some('x') => {
                    let rest = chars.as_str();
                    if let Ok(v) = u8::from_str_radix(rest.get(..2).unwrap_or(""), 16) {
                        text.push(char::from(v));
                    }
                    chars.next();
                    chars.next();
                }
                Some(other) => text.push(other),
                None => break,
            },
            c => text.push(c),
        }
    }
    (text, code.len())
}

/// The `{…}` placeholders of a format string: (byte range, argument name).
fn placeholders(s: &str) -> Vec<(std::ops::Range<usize>, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => i += 2,
            b'}' if b.get(i + 1) == Some(&b'}') => i += 2,
            b'{' => match s[i..].find('}') {
                Some(n) if !s[i + 1..i + n].contains(['{', ' ', '"', '\n']) => {
                    let inner = &s[i + 1..i + n];
                    let name = inner.split(':').next().unwrap_or("").to_owned();
                    out.push((i..i + n + 1, name));
                    i += n + 1;
                }
                _ => i += 1,
            },
            _ => i += 1,
        }
    }
    out
}

/// Benign values an argument of this name could have, and `errors`.
fn values_for(name: &str, errors: &[String]) -> Vec<String> {
    let n = name.to_ascii_lowercase();
    let mut v = vec!["unknown key".to_owned(), "42".to_owned()];
    let named = [
        ("room", "demo-room-42"),
        ("identity", "alice"),
        ("path", "data/keys.yaml"),
        ("file", "data/keys.yaml"),
        ("dir", "data"),
        ("url", "http://127.0.0.1:8080/webhooks/livekit"),
        ("addr", "127.0.0.1:8080"),
        ("ip", "203.0.113.7"),
        ("peer", "203.0.113.7:51234"),
        ("listen", "0.0.0.0:8080"),
        ("id", "APIabcdEFGH2345"),
        ("key", "APIabcdEFGH2345"),
        ("kind", "participant_joined"),
        ("event", "participant_joined"),
        ("ms", "1.25"),
        ("time", "2026-01-01T00:00:00Z"),
        ("at", "2026-01-01T00:00:00Z"),
        ("since", "2026-01-01T00:00:00Z"),
    ];
    for (part, value) in named {
        if n.contains(part) {
            v.push(value.to_owned());
        }
    }
    v.extend(errors.iter().cloned());
    v
}

/// `s` with its placeholders filled: each in turn takes every value it could
/// have while the others take the first.
fn renderings(s: &str, errors: &[String]) -> Vec<String> {
    let slots = placeholders(s);
    let fill = |choice: &[String]| {
        let mut out = String::new();
        let mut last = 0;
        for ((range, _), value) in slots.iter().zip(choice) {
            out.push_str(&s[last..range.start]);
            out.push_str(value);
            last = range.end;
        }
        out.push_str(&s[last..]);
        out.replace("{{", "{").replace("}}", "}")
    };
    let first: Vec<String> = slots.iter().map(|_| "unknown key".to_owned()).collect();
    let mut out = vec![fill(&first)];
    for (i, (range, name)) in slots.iter().enumerate() {
        // An error displayed inside another comes after `context: `.
        let nested = if s[..range.start].ends_with(": ") {
            errors
        } else {
            &[]
        };
        for value in values_for(name, nested) {
            let mut choice = first.clone();
            choice[i] = value;
            out.push(fill(&choice));
        }
    }
    out
}

/// The names of tracing fields (`warn!(reason = %e, key.id = …, "…")`).
fn field_names(code: &str) -> Vec<String> {
    let field =
        regex::Regex::new(r"(?:^|[(,]\s*)([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*[%?]?[A-Za-z0-9_&(\x22]")
            .expect("field pattern");
    let call =
        regex::Regex::new(r"\b(?:trace|debug|info|warn|error|event)!\s*\(").expect("call pattern");
    let mut out = Vec::new();
    for m in call.find_iter(code) {
        let mut depth = 0usize;
        let mut end = m.end();
        for (n, c) in code[m.end() - 1..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = m.end() - 1 + n;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &code[m.end()..end];
        let head = &args[..args.find('"').unwrap_or(args.len())];
        for c in field.captures_iter(head) {
            out.push(c[1].to_owned());
        }
    }
    out
}

/// Every message the code can log or return, placeholders filled.
fn messages() -> Vec<(String, String)> {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut all = Vec::new();
    let mut errors = Vec::new();
    let mut fields = Vec::new();
    for (path, code) in &files {
        for (at, text) in literals(code) {
            if SECRET_ON_PURPOSE.contains(&text.as_str()) {
                continue;
            }
            if code[..at].trim_end().ends_with("#[error(") {
                errors.push(text.clone());
            }
            all.push((format!("{path}:{at}"), text));
        }
        fields.extend(field_names(code));
    }
    let error_texts: Vec<String> = errors
        .iter()
        .map(|e| renderings(e, &[]).swap_remove(0))
        .collect();
    let mut out = Vec::new();
    for (place, text) in all {
        for r in renderings(&text, &error_texts) {
            out.push((place.clone(), r));
        }
    }
    fields.sort();
    fields.dedup();
    for f in fields {
        out.push((format!("field {f}"), format!("{f}=unknown")));
        out.push((format!("field {f}"), format!("{{\"{f}\":\"unknown key\"}}")));
    }
    out
}

#[test]
fn the_source_is_read() {
    let files = {
        let mut f = Vec::new();
        sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut f);
        f
    };
    assert!(files.len() > 50, "{} source files", files.len());
    let all = messages();
    let has = |s: &str| all.iter().any(|(_, m)| m == s);
    // The message of issue 19 and a few others, as an operator reads them.
    assert!(
        has("invalid webhook signature: unknown key"),
        "{} messages",
        all.len()
    );
    assert!(has("missing or invalid credentials"));
    assert!(
        all.iter()
            .any(|(_, m)| m.starts_with("key APIabcdEFGH2345"))
    );
    // Field names of `warn!(key.id = %id, reason = %e, "…")`, in both log formats.
    assert!(has("key.id=unknown") && has("{\"reason\":\"unknown key\"}"));
}

#[test]
fn the_lexer_reads_what_rustc_reads() {
    let code = r####"
        // "a comment"
        let c = '"'; let l: &'a str = "one \"two\"\n";
        /* "block" */ let r = r#"raw "x""#; let e = '\''; x = "cont\
            inued {{}} {n:>3}";
    "####;
    let got: Vec<String> = literals(code).into_iter().map(|(_, s)| s).collect();
    assert_eq!(got, ["one \"two\"\n", "raw \"x\"", "continued {{}} {n:>3}"]);
    assert_eq!(
        renderings("continued {{}} {n:>3}", &[])[0],
        "continued {} unknown key"
    );
}

#[test]
fn no_message_of_warden_is_masked() {
    let masker = Masker::new();
    let mut changed: Vec<String> = messages()
        .into_iter()
        .filter(|(_, m)| masker.mask(m) != m.as_str())
        .map(|(place, m)| format!("{place}: {m:?} -> {:?}", masker.mask(&m)))
        .collect();
    changed.dedup();
    assert!(
        changed.is_empty(),
        "{} messages masked:\n{}",
        changed.len(),
        changed.join("\n")
    );
}
