//! The PostgreSQL backend's tables, created and migrated by certroll itself, and the check
//! that the database holds this fleet's state and not another's.
//!
//! `certroll_schema` holds one row: the schema version. A database at a newer version
//! (written by a newer certroll) is refused, never guessed at. Creation and migration run
//! in one transaction under a transaction-level advisory lock, so two first runs at once
//! do not both create the tables, and a transaction-pooling pooler is no obstacle.
//!
//! Tables (version 1): `certroll_fleet` (the CA names of the fleet), `certroll_lease` (one
//! row: epoch, holder, expiry), `certroll_journal` (one row per journal line, with the
//! epoch of the lease that wrote it), `certroll_files` (the CA store, one row per file).

use super::pg_conn::Conn;
use super::StateError;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// Key of the advisory lock taken, per transaction, while the schema is created.
const SCHEMA_LOCK: i64 = 0x6365_7274_726f_6c6c; // "certroll"

const V1: &str = "
CREATE TABLE certroll_fleet (
    id int PRIMARY KEY CHECK (id = 1),
    cas text[] NOT NULL,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE certroll_lease (
    id int PRIMARY KEY CHECK (id = 1),
    epoch bigint NOT NULL,
    holder text,
    heartbeat timestamptz,
    expires timestamptz
);
INSERT INTO certroll_lease (id, epoch) VALUES (1, 0);
CREATE TABLE certroll_journal (
    seq bigserial PRIMARY KEY,
    epoch bigint NOT NULL,
    wseq bigint NOT NULL,
    line bytea NOT NULL,
    UNIQUE (epoch, wseq)
);
CREATE TABLE certroll_files (
    path text PRIMARY KEY,
    mode int NOT NULL,
    content bytea NOT NULL
);
";

/// Creates the tables of a new database, or checks the version of an existing one.
pub fn ensure(conn: &mut Conn, place: &str) -> Result<(), StateError> {
    let found = conn.run("create or check the schema", |c| {
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS certroll_schema (
                 id int PRIMARY KEY CHECK (id = 1),
                 version int NOT NULL
             )",
        )?;
        let row = tx.query_opt("SELECT version FROM certroll_schema WHERE id = 1", &[])?;
        let version: Option<i32> = row.map(|r| r.get(0));
        if version.is_none() {
            tx.batch_execute(V1)?;
            tx.execute(
                "INSERT INTO certroll_schema (id, version) VALUES (1, $1)",
                &[&SCHEMA_VERSION],
            )?;
        }
        tx.commit()?;
        Ok(version)
    })?;
    match found {
        Some(v) if v > SCHEMA_VERSION => Err(StateError::Config(format!(
            "the PostgreSQL state backend {place} holds schema version {v}, written by a newer \
             certroll (this one knows up to {SCHEMA_VERSION}); nothing was written\n  hint: \
             run the certroll that upgraded it"
        ))),
        Some(v) if v < 1 => Err(StateError::Config(format!(
            "the PostgreSQL state backend {place} holds schema version {v}, which no certroll \
             wrote; nothing was written"
        ))),
        _ => Ok(()),
    }
}

/// Refuses a database that holds another fleet's state: none of its CA names is defined
/// by this inventory. `None` when no fleet was recorded yet.
pub fn check_fleet(conn: &mut Conn, place: &str, cas: &[String]) -> Result<(), StateError> {
    let stored: Option<Vec<String>> = conn.run("read the fleet", |c| {
        Ok(
            c.query_opt("SELECT cas FROM certroll_fleet WHERE id = 1", &[])?
                .map(|r| r.get(0)),
        )
    })?;
    match stored {
        Some(stored) if !stored.iter().any(|s| cas.contains(s)) => {
            Err(StateError::Config(format!(
                "the PostgreSQL state backend {place} holds the state of another fleet (CAs {}), \
                 and this inventory defines CAs {}; nothing was written\n  hint: give each fleet \
                 its own database (or schema, with options=-csearch_path=NAME in the URL)",
                stored.join(", "),
                cas.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

/// Records the fleet's CA names (adding new ones), inside a lease holder's transaction.
pub fn record_fleet(
    tx: &mut postgres::Transaction<'_>,
    cas: &[String],
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO certroll_fleet (id, cas) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET cas = ARRAY(
             SELECT DISTINCT unnest(certroll_fleet.cas || EXCLUDED.cas) ORDER BY 1)",
        &[&cas],
    )?;
    Ok(())
}
