//! The PostgreSQL state backend (`[certroll] state = "postgres://…"` or `state_env`):
//! journal, lease and CA store of a fleet in one database, so that any control host can
//! see, lock and resume any run. Built on the synchronous `postgres` crate (rust-postgres,
//! see docs/state.md for why).
//!
//! The CA store is kept as files in `certroll_files` (public material, encrypted PKCS#8
//! keys, PKCS#11 references — never a plain key: `key_store = "file"` is refused). A
//! command works on a private copy unpacked in a fresh 0700 directory (memory-backed where
//! the system has one), removed when the command ends; what a run changed in it is saved
//! back, fenced by the lease, before the run goes on. Nothing is written to `state_dir`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use postgres::Config;

use super::pg_conn::{Conn, CONNECT_TIMEOUT};
use super::pg_journal::PgSink;
use super::{pg_journal, pg_lease, pg_schema};
use super::{Broken, Lease, Snapshot, StateBackend, StateError, StoreFile};
use crate::inventory::{check_url, redact, Inventory, UrlSource};
use crate::journal::{Journal, JournalError, LockState, RunState};

/// A fleet's state in PostgreSQL, opened for one command.
pub struct PgState {
    place: String,
    config: Config,
    conn: Mutex<Conn>,
    ttl: Duration,
    cas: Vec<String>,
    root: PrivateDir,
    /// The store's files as last read from or saved to the database.
    saved: Mutex<Vec<StoreFile>>,
}

impl std::fmt::Debug for PgState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgState({})", self.place)
    }
}

/// The connection string, from the inventory or its variable.
fn url(source: &UrlSource) -> Result<String, StateError> {
    match source {
        UrlSource::Inline(url) => Ok(url.clone()),
        UrlSource::Env(var) => match std::env::var(var) {
            Ok(url) if !url.trim().is_empty() => {
                // A password is fine here: the variable is not the shared inventory.
                match check_url(&url) {
                    Err(m) if m.contains("no database") || m.contains("not a PostgreSQL") => Err(
                        StateError::Config(format!("{m} (from ${var}); nothing was written")),
                    ),
                    _ => Ok(url),
                }
            }
            _ => Err(StateError::Config(format!(
                "the inventory's state_env names {var}, which is not set; nothing was written\n  \
                 hint: export {var}=postgres://USER@HOST:PORT/DATABASE"
            ))),
        },
    }
}

/// Parses the connection string and fills in what libpq would: the user and password from
/// the environment, timeouts and keepalives that notice a dead network in seconds.
fn config(url: &str, place: &str) -> Result<Config, StateError> {
    let mut config: Config = url.parse().map_err(|e: postgres::Error| {
        StateError::Config(format!(
            "cannot use the state backend {place}: {e}; nothing was written"
        ))
    })?;
    if config.get_dbname().is_none() {
        return Err(StateError::Config(format!(
            "the state backend {place} names no database; nothing was written"
        )));
    }
    if config.get_user().is_none() {
        let user = ["PGUSER", "USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "postgres".to_string());
        config.user(&user);
    }
    if config.get_password().is_none() {
        if let Ok(pw) = std::env::var("PGPASSWORD") {
            config.password(pw.as_bytes());
        }
    }
    config
        .application_name("certroll")
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(5))
        .keepalives_interval(Duration::from_secs(2))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(15));
    Ok(config)
}

impl PgState {
    /// Connects, creates or checks the schema, checks the fleet, unpacks the CA store.
    pub fn open(inv: &Inventory, source: &UrlSource, ttl: Duration) -> Result<Self, StateError> {
        let url = url(source)?;
        let place = format!("PostgreSQL {}", redact(&url));
        let config = config(&url, &place)?;
        let mut conn = Conn::connect(&config, &place)?;
        pg_schema::ensure(&mut conn, &place)?;
        let cas: Vec<String> = inv.cas.iter().map(|c| c.name.clone()).collect();
        pg_schema::check_fleet(&mut conn, &place, &cas)?;
        let files = read_files(&mut conn)?;
        let root = PrivateDir::create()?;
        Snapshot {
            journal: Vec::new(),
            files: files.clone(),
        }
        .write_store(root.path())?;
        Ok(PgState {
            place,
            config,
            conn: Mutex::new(conn),
            ttl,
            cas,
            root,
            saved: Mutex::new(files),
        })
    }

    /// After taking the lease: the CA store as the database holds it now (another run may
    /// have changed it since this command unpacked its copy).
    fn refresh(&self) -> Result<(), StateError> {
        let files = read_files(&mut self.conn())?;
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        if files == *saved {
            return Ok(());
        }
        let store = self.root.path().join(super::snapshot::STORE_DIR);
        if store.exists() {
            std::fs::remove_dir_all(&store).map_err(|e| {
                StateError::Other(format!("failed to refresh {}: {e}", store.display()))
            })?;
        }
        Snapshot {
            journal: Vec::new(),
            files: files.clone(),
        }
        .write_store(self.root.path())?;
        *saved = files;
        Ok(())
    }

    fn conn(&self) -> MutexGuard<'_, Conn> {
        // Every statement is its own transaction: a poisoned guard holds a usable connection.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn read_files(conn: &mut Conn) -> Result<Vec<StoreFile>, StateError> {
    conn.run("read the CA store", |c| {
        let rows = c.query(
            "SELECT path, mode, content FROM certroll_files ORDER BY path",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| StoreFile {
                path: r.get(0),
                mode: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0o600),
                content: r.get(2),
            })
            .collect())
    })
}

/// Refused for a lease that is no longer the current one (checked under the row lock).
fn check_epoch(tx: &mut postgres::Transaction<'_>, epoch: i64) -> Result<bool, postgres::Error> {
    let row = tx.query_opt(
        "SELECT 1 FROM certroll_lease WHERE id = 1 AND epoch = $1 AND holder IS NOT NULL
         FOR UPDATE",
        &[&epoch],
    )?;
    Ok(row.is_some())
}

impl StateBackend for PgState {
    fn describe(&self) -> String {
        self.place.clone()
    }

    fn journal_place(&self) -> String {
        format!("{} (table certroll_journal)", self.place)
    }

    fn store_root(&self) -> &Path {
        self.root.path()
    }

    fn acquire(&self, command: &str) -> Result<Box<dyn Lease>, StateError> {
        let lease = pg_lease::acquire(
            &mut self.conn(),
            &self.config,
            &self.place,
            command,
            self.ttl,
            &self.cas,
        )?;
        self.refresh()?;
        Ok(Box::new(lease))
    }

    fn lock_state(&self) -> Result<LockState, StateError> {
        pg_lease::state(&mut self.conn())
    }

    fn break_lock(&self) -> Result<Broken, StateError> {
        pg_lease::break_lease(&mut self.conn())
    }

    fn open_journal(&self, lease: &dyn Lease) -> Result<Journal, StateError> {
        let conn = Conn::connect(&self.config, &self.place)?;
        let sink = PgSink::new(conn, &self.place, lease.epoch(), lease.lost());
        Ok(Journal::with_sink(Box::new(sink)))
    }

    fn read_last_run(&self, ca: Option<&str>) -> Result<Option<RunState>, JournalError> {
        let path = PathBuf::from(format!("{} (table certroll_journal)", self.place));
        let bytes = pg_journal::read_all(&mut self.conn()).map_err(|e| JournalError::Backend {
            action: "read",
            path: path.clone(),
            message: e.to_string(),
        })?;
        let journal = Journal::with_sink(Box::new(ReadOnly {
            path,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }));
        match ca {
            Some(ca) => journal.last_run_of(ca),
            None => journal.last_run(),
        }
    }

    fn save_store(&self, lease: &dyn Lease) -> Result<(), StateError> {
        let now = Snapshot::read_dir(self.root.path())?.files;
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        if now == *saved {
            return Ok(());
        }
        let changed: Vec<&StoreFile> = now.iter().filter(|f| !saved.contains(f)).collect();
        let gone: Vec<&str> = saved
            .iter()
            .filter(|s| !now.iter().any(|f| f.path == s.path))
            .map(|s| s.path.as_str())
            .collect();
        let epoch = lease.epoch();
        let ok = self.conn().run("save the CA store", |c| {
            let mut tx = c.transaction()?;
            if !check_epoch(&mut tx, epoch)? {
                return Ok(false);
            }
            for f in &changed {
                let mode = i32::try_from(f.mode).unwrap_or(0o600);
                tx.execute(
                    "INSERT INTO certroll_files (path, mode, content) VALUES ($1, $2, $3)
                     ON CONFLICT (path) DO UPDATE SET mode = $2, content = $3",
                    &[&f.path, &mode, &f.content],
                )?;
            }
            for path in &gone {
                tx.execute("DELETE FROM certroll_files WHERE path = $1", &[path])?;
            }
            tx.commit()?;
            Ok(true)
        })?;
        if !ok {
            return Err(StateError::LeaseLost(format!(
                "stopped: cannot save the CA store in {}: this run no longer holds the lock \
                 (lease epoch {epoch} was ended); nothing more was written\n  hint: \
                 `certroll lock` shows who holds it now",
                self.place
            )));
        }
        *saved = now;
        Ok(())
    }

    fn export(&self) -> Result<Snapshot, StateError> {
        let mut conn = self.conn();
        Ok(Snapshot {
            journal: pg_journal::read_all(&mut conn)?,
            files: read_files(&mut conn)?,
        })
    }

    fn import(&self, snapshot: &Snapshot, lease: &dyn Lease) -> Result<(), StateError> {
        if !self.export()?.is_empty() {
            return Err(StateError::Refused(format!(
                "{} holds a journal or a CA store already; nothing was written\n  hint: push \
                 into an empty database",
                self.place
            )));
        }
        let epoch = lease.epoch();
        let lines: Vec<&[u8]> = snapshot.journal.split_inclusive(|b| *b == b'\n').collect();
        let ok = self.conn().run("push the state", |c| {
            let mut tx = c.transaction()?;
            if !check_epoch(&mut tx, epoch)? {
                return Ok(false);
            }
            for (i, line) in lines.iter().enumerate() {
                let wseq = i64::try_from(i).unwrap_or(i64::MAX);
                tx.execute(
                    "INSERT INTO certroll_journal (epoch, wseq, line) VALUES ($1, $2, $3)",
                    &[&epoch, &wseq, line],
                )?;
            }
            for f in &snapshot.files {
                let mode = i32::try_from(f.mode).unwrap_or(0o600);
                tx.execute(
                    "INSERT INTO certroll_files (path, mode, content) VALUES ($1, $2, $3)",
                    &[&f.path, &mode, &f.content],
                )?;
            }
            tx.commit()?;
            Ok(true)
        })?;
        if !ok {
            return Err(StateError::Refused(format!(
                "the lease on {} was ended during the push; nothing was written",
                self.place
            )));
        }
        Ok(())
    }
}

/// A journal text already read, for [`Journal::last_run`] without a connection.
#[derive(Debug)]
struct ReadOnly {
    path: PathBuf,
    text: String,
}

impl crate::journal::JournalSink for ReadOnly {
    fn path(&self) -> &Path {
        &self.path
    }
    fn read_all(&self) -> Result<String, JournalError> {
        Ok(self.text.clone())
    }
    fn append(&self, _line: &[u8]) -> Result<u64, JournalError> {
        Err(JournalError::Backend {
            action: "append to",
            path: self.path.clone(),
            message: "opened for reading only".into(),
        })
    }
    fn sync_to(&self, _seq: u64) -> Result<(), JournalError> {
        Ok(())
    }
    fn syncs(&self) -> u64 {
        0
    }
    fn end_torn_line(&self) -> Result<(), JournalError> {
        Ok(())
    }
}

/// A fresh 0700 directory for the command's copy of the CA store, removed on drop.
#[derive(Debug)]
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> Result<Self, StateError> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        let mut last = None;
        for _ in 0..8 {
            let dir = base.join(format!(
                "certroll-state-{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(PrivateDir(dir)),
                Err(e) => last = Some(e),
            }
        }
        Err(StateError::Other(format!(
            "failed to create a private directory for the CA store under {}: {}",
            base.display(),
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
