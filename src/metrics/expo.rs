//! The two text expositions Prometheus reads, and the choice between them.
//!
//! - Prometheus text format 0.0.4: `# HELP`/`# TYPE` name the sample name,
//!   so a counter is declared as `x_total`.
//! - OpenMetrics 1.0.0: a counter family is declared without its `_total`
//!   suffix (its samples keep it), and the exposition ends with `# EOF`.
//!
//! Everything else (sample lines, histogram `_bucket`/`_sum`/`_count`, `le`
//! written as `1.0`) is the same in both.

use std::fmt::Write as _;

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (curl, `promtool check metrics`).
    Text,
    /// OpenMetrics 1.0.0 (what Prometheus asks for first).
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format an `Accept` header prefers: OpenMetrics when it is
    /// acceptable (version 1.0.0 or unversioned) with a higher quality than
    /// plain text; text otherwise, and when there is no header, `*/*`, or a
    /// tie (the format every scraper reads).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Text;
        };
        let (mut om, mut text) = (0.0_f32, 0.0_f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let (mut q, mut version) = (1.0_f32, None);
            for p in parts {
                match p.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some((k, v)) if k.eq_ignore_ascii_case("q") => {
                        q = v.parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0);
                    }
                    Some((k, v)) if k.eq_ignore_ascii_case("version") => {
                        version = Some(v.trim_matches('"'));
                    }
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text" if matches!(version, None | Some("1.0.0")) => {
                    om = om.max(q);
                }
                "text/plain" if matches!(version, None | Some("0.0.4")) => text = text.max(q),
                "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if om > 0.0 && om > text {
            Self::OpenMetrics
        } else {
            Self::Text
        }
    }
}

/// What a family is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A sample value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Value {
    Int(u64),
    Signed(i64),
    Float(f64),
}

/// Writes one exposition.
pub(super) struct Writer {
    out: String,
    format: Format,
}

impl Writer {
    pub(super) fn new(format: Format) -> Self {
        Self {
            out: String::with_capacity(32 * 1024),
            format,
        }
    }

    /// Declares a family (`name` without `_total`): `# HELP` and `# TYPE`.
    pub(super) fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let suffix = match (kind, self.format) {
            (Kind::Counter, Format::Text) => "_total",
            _ => "",
        };
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let help = escape(help, self.format == Format::OpenMetrics);
        let _ = writeln!(self.out, "# HELP {name}{suffix} {help}");
        let _ = writeln!(self.out, "# TYPE {name}{suffix} {kind}");
    }

    /// One sample: `name` + `suffix` (`_total`, `_bucket`, …), its labels, its value.
    pub(super) fn sample(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        value: Value,
    ) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v, true));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        let _ = match value {
            Value::Int(n) => write!(self.out, "{n}"),
            Value::Signed(n) => write!(self.out, "{n}"),
            Value::Float(f) => write!(self.out, "{}", float(f)),
        };
        self.out.push('\n');
    }

    /// One histogram series: its buckets (with `le` after `labels`), sum and count.
    pub(super) fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        reading: &super::family::HistogramReading,
    ) {
        let mut with_le: Vec<(&str, &str)> = Vec::with_capacity(labels.len() + 1);
        with_le.extend_from_slice(labels);
        with_le.push(("le", ""));
        for &(le, n) in &reading.cumulative {
            if let Some(last) = with_le.last_mut() {
                last.1 = le;
            }
            self.sample(name, "_bucket", &with_le, Value::Int(n));
        }
        self.sample(name, "_sum", labels, Value::Float(reading.sum_seconds));
        self.sample(name, "_count", labels, Value::Int(reading.count));
    }

    /// The text, with OpenMetrics' `# EOF`.
    pub(super) fn finish(mut self) -> String {
        if self.format == Format::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

/// A float as both formats write it (`+Inf`, `-Inf`, `NaN`).
fn float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        f.to_string()
    }
}

/// Escapes `\` and newlines (both formats' HELP and label values), and `"`
/// (label values, and OpenMetrics' HELP).
fn escape(s: &str, quotes: bool) -> std::borrow::Cow<'_, str> {
    if !(s.contains(['\\', '\n']) || (quotes && s.contains('"'))) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_quality_and_defaults_to_text() {
        let om = Format::OpenMetrics;
        let text = Format::Text;
        // What Prometheus 2.x sends.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), om);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text")), om);
        assert_eq!(
            Format::negotiate(Some("Application/OpenMetrics-Text; Version=1.0.0")),
            om
        );
        for accept in [
            None,
            Some(""),
            Some("*/*"),
            Some("text/plain"),
            Some("text/plain;version=0.0.4"),
            Some("application/json"),
            // A version we do not write.
            Some("application/openmetrics-text;version=0.0.1"),
            // Text preferred, or a tie.
            Some("application/openmetrics-text;q=0.5,text/plain"),
            Some("application/openmetrics-text,text/plain"),
            Some("application/openmetrics-text;q=0"),
            Some("application/openmetrics-text;q=bogus"),
        ] {
            assert_eq!(Format::negotiate(accept), text, "{accept:?}");
        }
    }

    #[test]
    fn families_are_declared_as_each_format_says() {
        for (format, declared) in [
            (Format::Text, "# TYPE c_total counter"),
            (Format::OpenMetrics, "# TYPE c counter"),
        ] {
            let mut w = Writer::new(format);
            w.family("c", Kind::Counter, "A \"count\" \\ of\nthings");
            w.sample("c", "_total", &[("k", "a\"b")], Value::Int(3));
            w.family("g", Kind::Gauge, "A gauge");
            w.sample("g", "", &[], Value::Float(f64::INFINITY));
            let text = w.finish();
            assert!(text.contains(declared), "{text}");
            assert!(text.contains("c_total{k=\"a\\\"b\"} 3\n"), "{text}");
            assert!(text.contains("g +Inf\n"), "{text}");
            assert!(text.contains("of\\nthings"), "{text}");
            assert_eq!(text.ends_with("# EOF\n"), format == Format::OpenMetrics);
        }
    }
}
