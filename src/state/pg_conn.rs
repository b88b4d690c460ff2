//! One connection to the PostgreSQL state backend, reconnected when the server goes away.
//!
//! Every statement certroll sends is either read-only or idempotent (a journal line carries
//! its lease epoch and a sequence number the table keeps unique), so a statement whose
//! answer was lost with the connection is sent again on a new one: a server restart
//! mid-run delays the run, it never makes a record twice. Retries are bounded in count
//! and time; past them the command stops with the error, resumable.
//!
//! TCP keepalives and a user timeout make a dead network fail a statement in seconds
//! instead of hanging the run.

use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};

use super::StateError;

/// How long a statement is retried on new connections before the error stands.
const RETRY_FOR: Duration = Duration::from_secs(20);
/// Pause between two attempts to reconnect.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection and the configuration to make it again.
pub struct Conn {
    config: Config,
    place: String,
    client: Option<Client>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Conn({})", self.place)
    }
}

impl Conn {
    /// Connects once; the error says whether the server is unreachable (exit 69) or the
    /// configuration is wrong (credentials, database: exit 78).
    pub fn connect(config: &Config, place: &str) -> Result<Conn, StateError> {
        let client = config
            .connect(NoTls)
            .map_err(|e| classify(&e, place, "connect to"))?;
        Ok(Conn {
            config: config.clone(),
            place: place.to_string(),
            client: Some(client),
        })
    }

    /// Runs `f`, reconnecting and running it again when the connection broke (bounded by
    /// [`RETRY_FOR`]); an error of the statement itself is returned at once.
    pub fn run<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StateError> {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let attempt = match self.client.as_mut() {
                Some(c) => f(c).map_err(Some),
                None => Err(None),
            };
            let err = match attempt {
                Ok(v) => return Ok(v),
                Err(Some(e)) if !is_connection_error(&e, self.client.as_ref()) => {
                    return Err(StateError::Other(format!(
                        "failed to {what} in the PostgreSQL state backend {}: {}",
                        self.place,
                        describe(&e)
                    )))
                }
                Err(e) => e,
            };
            self.client = None;
            if Instant::now() >= deadline {
                return Err(StateError::Unavailable(format!(
                    "failed to {what}: lost the PostgreSQL state backend {} and could not \
                     reconnect within {} s{}; the run stopped and can be resumed\n  hint: \
                     `certroll apply` resumes it once the server answers",
                    self.place,
                    RETRY_FOR.as_secs(),
                    err.map(|e| format!(" ({})", describe(&e)))
                        .unwrap_or_default()
                )));
            }
            std::thread::sleep(RETRY_PAUSE);
            self.client = self.config.connect(NoTls).ok();
        }
    }
}

impl Conn {
    /// Runs `f` once, on the current connection or one new attempt to connect (for the
    /// release of a lease at exit, which must not hold the process up).
    pub fn run_once<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, StateError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = self.config.connect(NoTls).ok();
        }
        let Some(client) = self.client.as_mut() else {
            return Err(StateError::Unavailable(format!(
                "failed to {what}: the PostgreSQL state backend {} cannot be reached",
                self.place
            )));
        };
        f(client).map_err(|e| {
            StateError::Other(format!(
                "failed to {what} in the PostgreSQL state backend {}: {}",
                self.place,
                describe(&e)
            ))
        })
    }
}

/// True when `e` is the connection failing, not the statement.
fn is_connection_error(e: &postgres::Error, client: Option<&Client>) -> bool {
    match e.as_db_error() {
        // The server going down says so before closing: admin shutdown, crash shutdown,
        // cannot connect now.
        Some(db) => matches!(db.code().code(), "57P01" | "57P02" | "57P03" | "08006"),
        None => e.is_closed() || client.is_none_or(Client::is_closed) || is_io(e),
    }
}

fn is_io(e: &postgres::Error) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The error and its causes, on one line.
pub fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => crate::error::chain(e),
    }
}

/// A failed connection: wrong credentials or database (configuration, exit 78), or no
/// server answering (exit 69).
fn classify(e: &postgres::Error, place: &str, action: &str) -> StateError {
    let code = e.as_db_error().map(|d| d.code().code().to_string());
    let msg = describe(e);
    match code.as_deref() {
        Some("28P01" | "28000") => StateError::Config(format!(
            "failed to {action} the PostgreSQL state backend {place}: the server refused the \
             credentials: {msg}; nothing was written\n  hint: give the password in PGPASSWORD \
             or in the connection string held by the variable named by state_env"
        )),
        Some("3D000") => StateError::Config(format!(
            "failed to {action} the PostgreSQL state backend {place}: {msg}; nothing was \
             written\n  hint: create the database (createdb), certroll creates its tables"
        )),
        Some(_) => StateError::Config(format!(
            "failed to {action} the PostgreSQL state backend {place}: {msg}; nothing was \
             written"
        )),
        None => StateError::Unavailable(format!(
            "failed to {action} the PostgreSQL state backend {place}: {msg}; nothing was \
             written\n  hint: check that the server runs and this host may reach it"
        )),
    }
}
