//! A tiny RFC 8941 Structured Field List parser — just the syntax the
//! `RateLimit` headers use (Items of String / Token / Integer / Boolean with
//! parameters; no inner lists, decimals or byte sequences) — strict enough
//! to catch a malformed header.

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Bare {
    Int(i64),
    Str(String),
    Token(String),
    Bool(bool),
}

pub(super) type Item = (Bare, Vec<(String, Bare)>);

struct P<'a> {
    s: &'a [u8],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }

    fn skip(&mut self, ows: bool) {
        while self.peek() == Some(b' ') || (ows && self.peek() == Some(b'\t')) {
            self.i += 1;
        }
    }

    fn bare(&mut self) -> Result<Bare, String> {
        match self.peek().ok_or("end of input")? {
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                self.eat(b'-');
                let digits = self.s[self.i..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits == 0 || digits > 15 || self.peek_at(digits) == Some(b'.') {
                    return Err(format!("bad integer at {start}"));
                }
                self.i += digits;
                let text =
                    std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                text.parse().map(Bare::Int).map_err(|e| e.to_string())
            }
            b'"' => self.string(),
            b'?' => {
                self.i += 1;
                let v = match self.peek() {
                    Some(b'0') => false,
                    Some(b'1') => true,
                    _ => return Err("bad boolean".into()),
                };
                self.i += 1;
                Ok(Bare::Bool(v))
            }
            c if c.is_ascii_alphabetic() || c == b'*' => {
                let start = self.i;
                let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(b);
                self.i += self.s[self.i..].iter().take_while(|b| tchar(b)).count();
                Ok(Bare::Token(
                    String::from_utf8_lossy(&self.s[start..self.i]).into_owned(),
                ))
            }
            c => Err(format!("unexpected {:?}", char::from(c))),
        }
    }

    fn string(&mut self) -> Result<Bare, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek().ok_or("unterminated string")? {
                b'"' => break,
                b'\\' => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => out.push(char::from(c)),
                        _ => return Err("bad escape".into()),
                    }
                }
                c @ 0x20..=0x7e => out.push(char::from(c)),
                c => return Err(format!("bad string byte {c:#x}")),
            }
            self.i += 1;
        }
        self.i += 1;
        Ok(Bare::Str(out))
    }

    fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.s.get(self.i + ahead).copied()
    }

    fn key(&mut self) -> Result<String, String> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => {}
            _ => return Err(format!("bad key at {start}")),
        }
        let kchar = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(b);
        self.i += self.s[self.i..].iter().take_while(|b| kchar(b)).count();
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn params(&mut self) -> Result<Vec<(String, Bare)>, String> {
        let mut out = Vec::new();
        while self.eat(b';') {
            self.skip(false);
            let k = self.key()?;
            let v = if self.eat(b'=') {
                self.bare()?
            } else {
                Bare::Bool(true)
            };
            out.push((k, v));
        }
        Ok(out)
    }
}

/// Parses a Structured Field List of Items.
pub(super) fn parse_list(input: &str) -> Result<Vec<Item>, String> {
    let mut p = P {
        s: input.as_bytes(),
        i: 0,
    };
    p.skip(false);
    let mut items = Vec::new();
    loop {
        let bare = p.bare()?;
        items.push((bare, p.params()?));
        p.skip(true);
        if p.peek().is_none() {
            return Ok(items);
        }
        if !p.eat(b',') {
            return Err(format!("expected ',' at {}", p.i));
        }
        p.skip(true);
        if p.peek().is_none() {
            return Err("trailing comma".into());
        }
    }
}

#[test]
fn the_checker_itself_rejects_what_it_must() {
    assert!(parse_list(r#""api";q=100;w=60"#).is_ok());
    assert!(parse_list(r#""a";q=1, "b";w=2"#).is_ok());
    for bad in [
        r#"api;q=100"#.replace("api", "\"api"),
        "\"api\";Q=1".into(),
        "\"api\";q=1,".into(),
        "\"api\" x".into(),
        "\"api\";q=1.5".into(),
    ] {
        assert!(parse_list(&bad).is_err(), "{bad}");
    }
    assert_eq!(
        parse_list("\"x\";r=0").expect("valid"),
        vec![(Bare::Str("x".into()), vec![("r".into(), Bare::Int(0))])]
    );
}
