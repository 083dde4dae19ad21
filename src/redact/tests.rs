//! The masking corpus: lines whose secrets must go, and look-alikes that must stay.

use super::*;

/// One case of `corpus.txt`.
enum Case {
    /// `secret` must be gone; when given, the output is exactly `expected`.
    Mask {
        input: String,
        secret: String,
        expected: Option<String>,
    },
    /// The output is the input.
    Keep(String),
}

/// The corpus file: its exact secrets and its cases (see the file's header).
fn corpus() -> (Vec<Secret>, Vec<Case>) {
    let mut known = Vec::new();
    let mut cases = Vec::new();
    for (n, line) in include_str!("corpus.txt").lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<String> = line.split('\t').map(unescape).collect();
        match (fields[0].as_str(), fields.len()) {
            ("KNOWN", 2) => known.push(Secret::new(fields[1].clone())),
            ("KEEP", 2) => cases.push(Case::Keep(fields[1].clone())),
            ("MASK", 3 | 4) => cases.push(Case::Mask {
                input: fields[1].clone(),
                secret: fields[2].clone(),
                expected: fields.get(3).cloned(),
            }),
            _ => panic!("corpus.txt line {}: {line:?} is no case", n + 1),
        }
    }
    (known, cases)
}

/// `\n`, `\t` and `\\` in a corpus field.
fn unescape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn masker() -> Masker {
    let m = Masker::new();
    m.set_known_secrets(corpus().0.iter());
    m
}

fn must_mask() -> Vec<(String, String)> {
    corpus()
        .1
        .into_iter()
        .filter_map(|c| match c {
            Case::Mask { input, secret, .. } => Some((input, secret)),
            Case::Keep(_) => None,
        })
        .collect()
}

fn must_keep() -> Vec<String> {
    corpus()
        .1
        .into_iter()
        .filter_map(|c| match c {
            Case::Keep(input) => Some(input),
            Case::Mask { .. } => None,
        })
        .collect()
}

#[test]
fn corpus_has_120_lines_half_of_them_look_alikes() {
    let (mask, keep) = (must_mask().len(), must_keep().len());
    assert!(mask + keep >= 120, "{mask} + {keep} cases");
    assert!(
        keep * 2 >= mask + keep,
        "{keep} look-alikes of {}",
        mask + keep
    );
}

#[test]
fn secrets_are_masked() {
    let m = masker();
    for (line, secret) in must_mask() {
        let out = m.mask(&line);
        assert!(
            !out.contains(&secret),
            "{line:?} -> {out:?} still holds {secret:?}"
        );
        assert!(out.contains(MASK), "{line:?} -> {out:?} has no mask marker");
    }
}

#[test]
fn masks_have_their_documented_shape() {
    let m = masker();
    let mut checked = 0;
    for case in corpus().1 {
        if let Case::Mask {
            input,
            expected: Some(expected),
            ..
        } = case
        {
            assert_eq!(m.mask(&input), expected, "{input:?}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} cases give their output");
}

#[test]
fn look_alikes_are_kept() {
    let m = masker();
    for line in must_keep() {
        assert_eq!(m.mask(&line), line, "{line:?} was changed");
    }
}

#[test]
fn clean_text_is_borrowed() {
    let m = masker();
    for line in must_keep() {
        assert!(matches!(m.mask(&line), Cow::Borrowed(_)), "{line:?}");
    }
}

#[test]
fn masking_keeps_the_surrounding_text() {
    let m = masker();
    assert_eq!(
        m.mask("api_key=sk-secret123456789 region=eu"),
        "api_key=***MASKED*** region=eu"
    );
    assert_eq!(
        m.mask("{\"secret\": \"abc12345\", \"room\": \"a\"}"),
        "{\"secret\": \"***MASKED***\", \"room\": \"a\"}"
    );
    assert_eq!(
        m.mask("Authorization: Bearer abcdefgh"),
        "Authorization: Bearer ***MASKED***"
    );
}

#[test]
fn masking_is_idempotent() {
    let m = masker();
    for (line, _) in must_mask() {
        let once = m.mask(&line).into_owned();
        assert_eq!(m.mask(&once), once);
    }
}

#[test]
fn known_secrets_can_be_replaced() {
    let m = Masker::new();
    let a = Secret::new("first-secret-value-0001");
    m.set_known_secrets([&a]);
    assert_eq!(m.mask("x first-secret-value-0001 y"), "x ***MASKED*** y");
    m.set_known_secrets([]);
    assert_eq!(
        m.mask("x first-secret-value-0001 y"),
        "x first-secret-value-0001 y"
    );
}

#[test]
fn secret_never_prints() {
    let s = Secret::new("do-not-print-me");
    assert_eq!(format!("{s}"), "[redacted]");
    assert_eq!(format!("{s:?}"), "[redacted]");
    assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
    assert_eq!(s, Secret::new("do-not-print-me"));
    assert_ne!(s, Secret::new("do-not-print-mE"));
}
