//! The deployment pepper: a server-side secret for one-way hashes.
//!
//! Participant identities on the stream are the first 8 hex characters of
//! HMAC-SHA256(pepper, identity): stable for a deployment, useless to anyone
//! without the pepper (a plain SHA-256 of an e-mail address is reversible by
//! guessing). `hash_api_key_for_storage` uses it too. The pepper is 32 random
//! bytes kept in `<data dir>/pepper` (0600), created on first start.
//!
//! Several nodes must hash alike, so a cluster's pepper also lives beside
//! the shared key file (`<key file>.pepper`, 0600: see [`Pepper::beside`])
//! and in Redis; [`crate::cluster`] chooses one and writes it to the other
//! places, so it survives Redis losing its data.
//! Like the key file, a pepper file that others may access is refused.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::redact::Secret;

/// The deployment's hashing secret.
#[derive(Clone, Debug)]
pub struct Pepper(Secret);

impl Pepper {
    /// A pepper from a known value (tests, shared clusters).
    pub fn new(value: impl Into<String>) -> Self {
        Self(Secret::new(value))
    }

    /// A fresh random pepper.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(Secret::new(hex::encode(bytes)))
    }

    /// Reads `<dir>/pepper`, creating it (0600) with a random value if absent.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        let path = dir.join("pepper");
        if let Some(pepper) = Self::read(&path)? {
            return Ok(pepper);
        }
        crate::store::create_private_dir(dir).map_err(std::io::Error::other)?;
        let pepper = Self::random();
        if pepper.create(&path)? {
            Ok(pepper)
        } else {
            // Another process created it first: use theirs.
            Self::load_or_create(dir)
        }
    }

    /// Where a cluster keeps its pepper beside the shared key file
    /// (`<key file>.pepper`, as `<key file>.meta.json` and `.lock`).
    pub fn beside(key_file: &Path) -> PathBuf {
        let mut s = key_file.as_os_str().to_owned();
        s.push(".pepper");
        PathBuf::from(s)
    }

    /// Reads a pepper file; `None` if there is none.
    pub fn read(path: &Path) -> std::io::Result<Option<Self>> {
        refuse_shared(path)?;
        match std::fs::read_to_string(path) {
            Ok(s) if s.trim().len() >= 32 => Ok(Some(Self::new(s.trim()))),
            Ok(_) => Err(std::io::Error::other(format!(
                "{}: pepper too short",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes this pepper to `path` (0600) unless the file exists; false if
    /// it did (the caller reads the one already there).
    pub fn create(&self, path: &Path) -> std::io::Result<bool> {
        match private_file(path) {
            Ok(mut f) => {
                f.write_all(self.0.expose().as_bytes())?;
                f.sync_all()?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Replaces `path` with this pepper atomically (temporary file in the
    /// same directory, fsync, rename): a reader sees the old or the new one.
    pub fn replace(&self, path: &Path) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".{:08x}.tmp", rand::random::<u32>()));
        let tmp = PathBuf::from(tmp);
        let written = private_file(&tmp).and_then(|mut f| {
            f.write_all(self.0.expose().as_bytes())?;
            f.sync_all()
        });
        let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
        if renamed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        renamed?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename itself is durable only once the directory is synced.
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// True when both are the same pepper.
    pub fn same_as(&self, other: &Pepper) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(
            self.0
                .expose()
                .as_bytes()
                .ct_eq(other.0.expose().as_bytes()),
        )
    }

    /// The pepper itself, to share it between the nodes of a cluster.
    pub(crate) fn secret(&self) -> &Secret {
        &self.0
    }

    /// Full hex HMAC-SHA256 of `data`.
    pub fn hmac_hex(&self, data: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(data);
        hex::encode(mac.finalize().into_bytes())
    }

    /// The 8-hex-character display hash of an identity.
    pub fn hash_identity(&self, identity: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(identity.as_bytes());
        // 8 hex characters: the first 4 bytes, the only ones encoded.
        hex::encode(&mac.finalize().into_bytes()[..4])
    }
}

/// Creates `path` for writing with mode 0600; fails if it exists.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

/// Refuses a pepper file that others may access: the key file's rule (and livekit-server's).
fn refuse_shared(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(std::io::Error::other(format!(
                "{}: mode {mode:04o} gives access to others; run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_hash_is_stable_short_and_peppered() {
        let a = Pepper::new("a".repeat(64));
        let b = Pepper::new("b".repeat(64));
        let h = a.hash_identity("alice@example.com");
        assert_eq!(h.len(), 8);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(h, a.hash_identity("alice@example.com"));
        assert_ne!(h, b.hash_identity("alice@example.com"));
    }

    #[cfg(unix)]
    #[test]
    fn a_pepper_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        Pepper::load_or_create(dir.path()).expect("create");
        let path = dir.path().join("pepper");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = Pepper::load_or_create(dir.path())
            .expect_err("refused")
            .to_string();
        assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
        assert!(!e.contains('\n'));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        Pepper::load_or_create(dir.path()).expect("group-readable is the key file's rule too");
    }

    #[test]
    fn pepper_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("warden-pepper-{}", std::process::id()));
        let p1 = Pepper::load_or_create(&dir).expect("create");
        let p2 = Pepper::load_or_create(&dir).expect("reuse");
        assert_eq!(p1.hash_identity("x"), p2.hash_identity("x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("pepper"))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pepper_beside_a_file_is_created_once_and_replaced_atomically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Pepper::beside(&dir.path().join("keys.yaml"));
        assert_eq!(path, dir.path().join("keys.yaml.pepper"));
        assert!(Pepper::read(&path).expect("read").is_none());
        let (a, b) = (Pepper::random(), Pepper::random());
        assert!(!a.same_as(&b));
        assert!(a.create(&path).expect("create"));
        assert!(!b.create(&path).expect("exists"), "the first one stays");
        assert!(Pepper::read(&path).expect("read").expect("a").same_as(&a));
        b.replace(&path).expect("replace");
        assert!(Pepper::read(&path).expect("read").expect("b").same_as(&b));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
        std::fs::write(&path, "short").expect("write");
        assert!(Pepper::read(&path).is_err(), "a short pepper is refused");
    }
}
