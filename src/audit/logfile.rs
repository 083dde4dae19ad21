//! The JSON-lines security log (`logging.security_log_file`).
//!
//! One stored event per line, serialised by `serde_json` (control characters
//! escaped, so a CR/LF or ANSI escape inside a detail can never start a line of
//! its own). The file is rotated when the next line would pass
//! `security_log_max_bytes`, or when an event falls on a new UTC day; the old
//! file becomes `<file>.<YYYY-MM-DD>` (`.1`, `.2`… when that name is taken).
//! Files are created 0600 in a 0700 directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use time::Date;

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
        let _ = std::fs::remove_dir_all(&d);
    }
}
