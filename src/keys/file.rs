//! The key file and its metadata sidecar on disk.
//!
//! Invariants: both files are replaced atomically (temp file in the same
//! directory, fsync, rename, fsync of the directory) with mode 0600, so a
//! reader — livekit-server included — sees the old or the new content, never a
//! mix, and a crash never loses a key. Read-modify-write cycles (CLI commands,
//! the server's maintenance, token-exp recording) hold an exclusive `flock` on
//! `<key file>.lock`; readers hold a shared one, so they never see the key
//! file of one update with the metadata of another. The kernel drops the
//! lock when a process dies, so a killed writer never wedges the others.
//! A key file that grants any permission to others is refused, as
//! livekit-server refuses it. A key file that is a symbolic link (say, to
//! the file livekit-server reads) is followed: read through the link and
//! replaced at its target, so the link stays a link.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rand::RngCore;

use super::KeyError;
use super::meta::{MetaFile, OwnedKeys};
use crate::config::parse_key_lines;

/// The paths of Warden's own key store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFiles {
    /// livekit-server format `key: secret` file.
    pub key_file: PathBuf,
    /// `<key file>.meta.json`.
    pub meta_file: PathBuf,
    lock_file: PathBuf,
}

/// Modification stamps of the two files, to notice changes cheaply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stamp(Option<(SystemTime, u64)>, Option<(SystemTime, u64)>);

impl KeyFiles {
    /// The store around `key_file`.
    pub fn new(key_file: impl Into<PathBuf>) -> Self {
        let key_file = key_file.into();
        let with = |suffix: &str| {
            let mut s = key_file.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        Self {
            meta_file: with(".meta.json"),
            lock_file: with(".lock"),
            key_file,
        }
    }

    /// Reads both files (a missing file is empty) under a shared lock.
    pub fn read(&self, now_ms: i64) -> Result<OwnedKeys, KeyError> {
        let lock = self.lock(false)?;
        let keys = self.read_unlocked(now_ms);
        drop(lock);
        keys
    }

    /// Runs `f` on the current keys under the exclusive lock and writes the result
    /// when `f` returns `Ok((value, true))`.
    pub fn update<R>(
        &self,
        now_ms: i64,
        f: impl FnOnce(&mut OwnedKeys) -> Result<(R, bool), KeyError>,
    ) -> Result<R, KeyError> {
        let lock = self.lock(true)?;
        // Under the exclusive lock no write is in progress: any temp file is a killed writer's.
        if let Ok(target) = write_target(&self.key_file) {
            remove_stale_temps(&target);
        }
        if let Ok(target) = write_target(&self.meta_file) {
            remove_stale_temps(&target);
        }
        let mut keys = self.read_unlocked(now_ms)?;
        let (value, changed) = f(&mut keys)?;
        if changed {
            self.write_unlocked(&keys)?;
        }
        drop(lock);
        Ok(value)
    }

    /// Modification stamps of both files.
    pub fn stamp(&self) -> Stamp {
        let one = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        };
        Stamp(one(&self.key_file), one(&self.meta_file))
    }

    fn read_unlocked(&self, now_ms: i64) -> Result<OwnedKeys, KeyError> {
        let file_keys = match read_private(&self.key_file)? {
            Some(text) => parse_key_lines(&text).map_err(|message| KeyError::Syntax {
                path: self.key_file.clone(),
                message,
            })?,
            None => Vec::new(),
        };
        let meta = match read_private(&self.meta_file)? {
            Some(text) => {
                serde_json::from_str::<MetaFile>(&text).map_err(|e| KeyError::Syntax {
                    path: self.meta_file.clone(),
                    message: e.to_string(),
                })?
            }
            None => MetaFile::default(),
        };
        Ok(OwnedKeys::merge(file_keys, meta, now_ms))
    }

    /// Key file first, then metadata: see `meta`'s invariants for why this order.
    fn write_unlocked(&self, keys: &OwnedKeys) -> Result<(), KeyError> {
        let mut text = String::from(
            "# API keys (livekit-server key_file format). Managed by `warden keys`.\n",
        );
        for (id, secret) in keys.live() {
            text.push_str(&yaml_scalar(id));
            text.push_str(": ");
            text.push_str(&yaml_scalar(secret.expose()));
            text.push('\n');
        }
        let result = write_atomic(&self.key_file, text.as_bytes());
        zeroize::Zeroize::zeroize(&mut text);
        result?;
        let mut json = serde_json::to_string_pretty(&keys.to_meta()).expect("metadata serialises");
        json.push('\n');
        write_atomic(&self.meta_file, json.as_bytes())
    }

    fn lock(&self, exclusive: bool) -> Result<File, KeyError> {
        let io = |source| KeyError::Io {
            path: self.lock_file.clone(),
            source,
        };
        if let Some(dir) = self
            .lock_file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            crate::store::create_private_dir(dir).map_err(|e| KeyError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        }
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        private_mode(&mut opts);
        let file = opts.open(&self.lock_file).map_err(io)?;
        if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        }
        .map_err(io)?;
        Ok(file)
    }
}

/// Reads `path` if it exists, refusing a file that others may access.
fn read_private(path: &Path) -> Result<Option<String>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let _ = meta;
    std::fs::read_to_string(path).map(Some).map_err(io)
}

/// Most symbolic links followed from a key file to the file itself (as Linux's `ELOOP`).
const MAX_LINKS: usize = 40;

/// Where writes to `path` land: `path`, or for a symbolic link the file at
/// the end of its chain (created there if absent), so that the link — e.g.
/// livekit-server's `key_file` and Warden's sharing one file — stays a link.
pub fn write_target(path: &Path) -> Result<PathBuf, KeyError> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p).map_err(|source| KeyError::Io {
                    path: p.clone(),
                    source,
                })?;
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(KeyError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other("too many levels of symbolic links"),
    })
}

/// Replaces `path` atomically with `bytes`, mode 0600. A symbolic link is
/// followed: the file it points to is replaced, atomically, in its own
/// directory (see [`write_target`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let path = &write_target(path)?;
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    crate::store::create_private_dir(&dir).map_err(|e| io(std::io::Error::other(e)))?;
    let tmp = dir.join(format!(
        "{}{}.{:08x}",
        temp_prefix(path),
        std::process::id(),
        rand::rng().next_u32()
    ));
    let written = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        private_mode(&mut opts);
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory entry is.
        File::open(&dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(io)
}

/// The temp-file prefix of `path` (see [`write_atomic`]).
fn temp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.tmp.")
}

fn remove_stale_temps(path: &Path) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = temp_prefix(path);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn private_mode(opts: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let _ = opts;
}

/// A YAML scalar for a key id or secret: plain when unambiguous, else
/// double-quoted (a JSON string is a valid YAML double-quoted scalar).
pub(crate) fn yaml_scalar(s: &str) -> String {
    const WORDS: &[&str] = &[
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    let plain = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !WORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).expect("strings serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars_round_trip_through_the_key_parser() {
        for (id, secret) in [
            ("APIabc", "0123456789abcdefghijklmnopqrstuvwxyzABCD"),
            ("true", "a: \"b\" # c"),
            ("key1", "null"),
        ] {
            let text = format!("{}: {}\n", yaml_scalar(id), yaml_scalar(secret));
            let parsed = parse_key_lines(&text).expect("valid");
            assert_eq!(parsed.len(), 1, "{text}");
            assert_eq!(parsed[0].0, id);
            assert_eq!(parsed[0].1.expose(), secret);
        }
    }
}
