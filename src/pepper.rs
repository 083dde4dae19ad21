//! The deployment pepper: a server-side secret for one-way hashes.
//!
//! Participant identities on the stream are the first 8 hex characters of
//! HMAC-SHA256(pepper, identity): stable for a deployment, useless to anyone
//! without the pepper (a plain SHA-256 of an e-mail address is reversible by
//! guessing). `hash_api_key_for_storage` uses it too. The pepper is 32 random
//! bytes kept in `<data dir>/pepper` (0600), created on first start; like
//! the key file, a pepper file that others may access is refused.

use std::io::Write;
use std::path::Path;

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
        refuse_shared(&path)?;
        match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 32 => return Ok(Self::new(s.trim())),
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{}: pepper too short",
                    path.display()
                )));
            }
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            Err(_) => {}
        }
        crate::store::create_private_dir(dir).map_err(std::io::Error::other)?;
        let pepper = Self::random();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(&path) {
            Ok(mut f) => {
                f.write_all(pepper.0.expose().as_bytes())?;
                f.sync_all()?;
                Ok(pepper)
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(dir),
            Err(e) => Err(e),
        }
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
}
