//! Persistence: the embedded SQLite database (every node) and, for several
//! nodes, Redis ([`redis`]).
//!
//! A cheap `Clone` handle over one connection behind a std `Mutex`: every
//! statement Warden runs is short (an insert, a lookup by key), so a blocking
//! lock held for microseconds is cheaper than a connection pool or a thread
//! hop. Components create their own tables with [`Sqlite::migrate`].
//!
//! With `storage.backend: redis` the SQLite database stays (each node keeps
//! its own audit chain in it) and Redis holds what the nodes share; see
//! [`crate::cluster`].

pub mod redis;

pub use self::redis::{Redis, RedisError};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or a statement failed.
    #[error("database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The directory could not be created.
    #[error("cannot create {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A previous panic poisoned the connection lock.
    #[error("database lock poisoned")]
    Poisoned,
}

/// Handle to the SQLite database.
#[derive(Clone)]
pub struct Sqlite {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("path", &self.path).finish()
    }
}

impl Sqlite {
    /// Opens (creating if needed, with a 0700 directory) the database at `path`, in WAL mode.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON;",
        )
        .map_err(err)?;
        restrict_file(path);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path.to_path_buf()),
        })
    }

    /// A private in-memory database (tests, `--ephemeral`).
    pub fn in_memory() -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Sqlite {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path),
        })
    }

    /// Runs `f` with the connection.
    pub fn with<R>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R>,
    ) -> Result<R, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&mut conn).map_err(|source| StoreError::Sqlite {
            path: (*self.path).clone(),
            source,
        })
    }

    /// Runs schema statements (idempotent `CREATE … IF NOT EXISTS`).
    pub fn migrate(&self, sql: &str) -> Result<(), StoreError> {
        self.with(|c| c.execute_batch(sql))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `dir` (and parents) with mode 0700 where it is new.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.exists() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|source| StoreError::Dir {
        path: dir.to_path_buf(),
        source,
    })
}

fn restrict_file(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_creates_and_runs_statements() {
        let dir = std::env::temp_dir().join(format!("warden-store-{}", std::process::id()));
        let db = Sqlite::open(&dir.join("sub/w.db")).expect("open");
        db.migrate("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
            .expect("migrate");
        db.with(|c| c.execute("INSERT INTO t VALUES (1)", []))
            .expect("insert");
        let n: i64 = db
            .with(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0)))
            .expect("count");
        assert_eq!(n, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
