//! The JSON-lines security log (`logging.security_log_file`).
//!
//! One stored event per line, serialised by `serde_json` (control characters
//! escaped, so a CR/LF or ANSI escape inside a detail can never start a line of
//! its own). The file is rotated when the next line would pass
//! `security_log_max_bytes`, or when an event falls on a new UTC day; the old
//! file becomes `<file>.<YYYY-MM-DD>` (`.1`, `.2`… when that name is taken).
//! Files are created 0600 in a 0700 directory. Rotated files older than
//! `logging.security_log_retention_days` are deleted ([`sweep`]); a subject's
//! erasure rewrites every file atomically ([`erase_files`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use time::Date;

/// Suffix of the temporary file an erasure writes before renaming it over.
const TMP_SUFFIX: &str = ".erase-tmp";

/// Appender for the security log.
#[derive(Debug)]
pub struct SecurityLog {
    path: PathBuf,
    max_bytes: u64,
    file: Option<File>,
    size: u64,
    day: Option<Date>,
}

impl SecurityLog {
    /// A log at `path`, rotated past `max_bytes`. Nothing is opened until the first line.
    pub fn new(path: PathBuf, max_bytes: u64) -> Self {
        Self {
            path,
            max_bytes,
            file: None,
            size: 0,
            day: None,
        }
    }

    /// Appends `line` (one JSON document, no newline) for an event of UTC `day`.
    pub fn append(&mut self, line: &str, day: Date) -> io::Result<()> {
        if self.file.is_none() {
            self.open()?;
        }
        let needed = line.len() as u64 + 1;
        let new_day = self.day.is_some_and(|d| d != day);
        if self.size > 0 && (new_day || self.size + needed > self.max_bytes) {
            self.rotate()?;
            self.open()?;
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("security log not open"))?;
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        // One write call per line: with O_APPEND, lines from two processes never interleave.
        let res = file.write_all(&buf);
        if res.is_err() {
            self.file = None;
        }
        res?;
        self.size += needed;
        self.day = Some(day);
        Ok(())
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the log and its rotations without the subject (see
    /// [`erase_files`]); the next line reopens the new file.
    pub fn erase(&mut self, needles: &[String]) -> io::Result<u64> {
        self.file = None;
        erase_files(&self.path, needles)
    }

    fn open(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::store::create_private_dir(dir).map_err(io::Error::other)?;
        }
        let mut opts = OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts.open(&self.path)?;
        let meta = file.metadata()?;
        self.size = meta.len();
        if self.day.is_none() && self.size > 0 {
            self.day = meta
                .modified()
                .ok()
                .map(|t| time::OffsetDateTime::from(t).date());
        }
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let day = self
            .day
            .map_or_else(|| "undated".to_owned(), |d| d.to_string());
        let base = format!("{}.{day}", self.path.display());
        let mut target = PathBuf::from(&base);
        let mut n = 0u32;
        while target.exists() {
            n += 1;
            target = PathBuf::from(format!("{base}.{n}"));
        }
        std::fs::rename(&self.path, &target)?;
        self.size = 0;
        self.day = None;
        Ok(())
    }
}

/// The log file and its rotations (`<file>.<date>[.n]`), those that exist.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if path.is_file() {
        out.push(path.to_path_buf());
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return out;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{name}.");
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut rotated: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.starts_with(&prefix) && !n.ends_with(TMP_SUFFIX))
            })
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        rotated.sort();
        out.extend(rotated);
    }
    out
}

fn mentions(line: &str, needles: &[String]) -> bool {
    needles
        .iter()
        .any(|n| !n.is_empty() && line.contains(n.as_str()))
}

/// As [`mentions`], for needles long enough to be looked for inside other text
/// (see `crate::hub::erase::MIN_SUBSTRING`).
fn mentions_long(line: &str, needles: &[String]) -> bool {
    needles
        .iter()
        .any(|n| n.len() >= crate::hub::erase::MIN_SUBSTRING && line.contains(n.as_str()))
}

fn is_about(v: &Value, needles: &[String]) -> bool {
    v.get("identity")
        .and_then(Value::as_str)
        .is_some_and(|i| needles.iter().any(|n| n == i))
}

/// Every log line (in every file) whose event is about the subject.
pub fn lines_about(path: &Path, needles: &[String]) -> io::Result<Vec<Value>> {
    let mut out = Vec::new();
    for file in files(path) {
        let text = std::fs::read_to_string(&file)?;
        for line in text.lines().filter(|l| mentions(l, needles)) {
            if let Ok(v) = serde_json::from_str::<Value>(line)
                && is_about(&v, needles)
            {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// Rewrites every file of the log without the subject: a line about it keeps
/// its event with `identity` and `source_ip` set to null (as the audit store
/// keeps it); a line that still mentions it after that is dropped. Each file
/// is replaced atomically (written 0600 beside it, synced, renamed over).
/// Returns how many lines changed.
pub fn erase_files(path: &Path, needles: &[String]) -> io::Result<u64> {
    let mut changed = 0;
    for file in files(path) {
        let text = std::fs::read_to_string(&file)?;
        if !mentions(&text, needles) {
            continue;
        }
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            let parsed = serde_json::from_str::<Value>(line).ok();
            let about = parsed.as_ref().is_some_and(|v| is_about(v, needles));
            if !about && !mentions_long(line, needles) {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            changed += 1;
            let Some(mut v) = parsed else {
                continue;
            };
            if about && let Value::Object(map) = &mut v {
                map.insert("identity".into(), Value::Null);
                map.insert("source_ip".into(), Value::Null);
            }
            let redacted = v.to_string();
            if !mentions_long(&redacted, needles) {
                out.push_str(&redacted);
                out.push('\n');
            }
        }
        replace_atomically(&file, out.as_bytes())?;
    }
    Ok(changed)
}

fn replace_atomically(file: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, file)?;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Deletes rotated files (`<file>.<YYYY-MM-DD>[.n]`) whose day is more than
/// `keep_days` before `today`; the current file is never deleted. Returns how many.
pub fn sweep(path: &Path, keep_days: u32, today: Date) -> io::Result<u64> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(0);
    };
    let cutoff = today - time::Duration::days(i64::from(keep_days));
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let mut n = 0;
    for file in files(path).into_iter().skip_while(|f| f == path) {
        let Some(rest) = file
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_prefix(name))
            .and_then(|f| f.strip_prefix('.'))
        else {
            continue;
        };
        let day = rest.get(..10).and_then(|d| Date::parse(d, &fmt).ok());
        if day.is_some_and(|d| d < cutoff) {
            std::fs::remove_file(&file)?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("warden-seclog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn rotates_by_size_and_by_day_and_creates_the_directory() {
        let d = dir("rot");
        let path = d.join("nested/security.log");
        let mut log = SecurityLog::new(path.clone(), 4096);
        let line = "x".repeat(1500);
        log.append(&line, date!(2024 - 01 - 01)).expect("write 1");
        log.append(&line, date!(2024 - 01 - 01)).expect("write 2");
        // The third line would pass 4096 bytes: rotated first.
        log.append(&line, date!(2024 - 01 - 01)).expect("write 3");
        let rotated = d.join("nested/security.log.2024-01-01");
        assert_eq!(
            std::fs::read_to_string(&rotated)
                .expect("rotated")
                .lines()
                .count(),
            2
        );
        assert_eq!(
            std::fs::read_to_string(&path)
                .expect("current")
                .lines()
                .count(),
            1
        );
        // A new day rotates too, even though the file is small; the name is not reused.
        log.append("y", date!(2024 - 01 - 02)).expect("write 4");
        assert!(d.join("nested/security.log.2024-01-01.1").exists());
        assert_eq!(std::fs::read_to_string(&path).expect("current"), "y\n");
        // Retention: on 2024-01-10 with 7 days kept, the 2024-01-01 files go, the current stays.
        assert_eq!(sweep(&path, 7, date!(2024 - 01 - 08)).expect("sweep"), 0);
        assert_eq!(sweep(&path, 7, date!(2024 - 01 - 10)).expect("sweep"), 2);
        assert!(!rotated.exists() && !d.join("nested/security.log.2024-01-01.1").exists());
        assert!(path.exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn erasure_rewrites_every_file_and_keeps_other_lines() {
        let d = dir("erase");
        let path = d.join("security.log");
        let mut log = SecurityLog::new(path.clone(), 1 << 20);
        let about = r#"{"id":"evt_1","identity":"a1b2c3d4","source_ip":"192.0.2.1","details":{}}"#;
        let other = r#"{"id":"evt_2","identity":"ffffffff","source_ip":"192.0.2.2","details":{}}"#;
        let stray = r#"{"id":"evt_3","identity":null,"details":{"note":"a1b2c3d4"}}"#;
        log.append(about, date!(2024 - 01 - 01)).expect("1");
        log.append(other, date!(2024 - 01 - 02)).expect("2");
        log.append(about, date!(2024 - 01 - 02)).expect("3");
        log.append(stray, date!(2024 - 01 - 02)).expect("4");
        let needles = vec!["a1b2c3d4".to_owned()];
        assert_eq!(lines_about(&path, &needles).expect("export").len(), 2);
        assert_eq!(log.erase(&needles).expect("erase"), 3);
        let all: String = files(&path)
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("read"))
            .collect();
        assert!(
            !all.contains("a1b2c3d4") && !all.contains("192.0.2.1"),
            "{all}"
        );
        assert!(all.contains("ffffffff") && all.contains(r#""id":"evt_1""#));
        assert_eq!(
            all.lines().count(),
            3,
            "the stray mention is dropped: {all}"
        );
        // The appender reopens the new file.
        log.append("z", date!(2024 - 01 - 02)).expect("5");
        assert!(
            std::fs::read_to_string(&path)
                .expect("current")
                .ends_with("z\n")
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
