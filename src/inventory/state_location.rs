//! `[certroll] state`, `state_env` and `lease_seconds`: where a fleet's run state (journal,
//! lock, CA store) lives — the local `state_dir` (the default) or a PostgreSQL database.
//!
//! The inventory is shared (in git, in CI): a connection string written in it must carry
//! no password. `state_env` names an environment variable that holds the whole connection
//! string instead, read when a command opens the backend (see `crate::state`).

use std::time::Duration;

use super::locate::ValuePath;
use super::raw::RawCertroll;
use super::validate::Problem;

/// Default time after which a lease that was not renewed (its run was killed) expires.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Bounds of `lease_seconds`: long enough for three heartbeats, short enough that a
/// killed run blocks the fleet for minutes at most.
const LEASE_RANGE: std::ops::RangeInclusive<u64> = 3..=600;

/// Where the run state of the fleet is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StateLocation {
    /// `state_dir` on this machine (journal.jsonl, lock, ca/).
    #[default]
    Local,
    /// A PostgreSQL database, by connection string (`state`) or by the environment
    /// variable that holds one (`state_env`).
    Postgres { source: UrlSource, lease: Duration },
}

/// Where the PostgreSQL connection string comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    /// Written in the inventory (without a password).
    Inline(String),
    /// The environment variable of this name.
    Env(String),
}

/// Reads `state`, `state_env` and `lease_seconds` of `[certroll]`.
pub fn build(raw: &RawCertroll) -> Result<StateLocation, Problem> {
    let at = |key: &str| ValuePath::keys(&["certroll", key]);
    let lease = match raw.lease_seconds {
        None => DEFAULT_LEASE,
        Some(s) if LEASE_RANGE.contains(&s) => Duration::from_secs(s),
        Some(s) => {
            return Err(Problem::new(
                at("lease_seconds"),
                format!("lease_seconds = {s} is out of range"),
            )
            .hint(format!(
                "a lease lasts between {} and {} seconds; the default is {}",
                LEASE_RANGE.start(),
                LEASE_RANGE.end(),
                DEFAULT_LEASE.as_secs()
            )))
        }
    };
    let source = match (&raw.state, &raw.state_env) {
        (None, None) => {
            if raw.lease_seconds.is_some() {
                return Err(Problem::new(
                    at("lease_seconds"),
                    "lease_seconds is only used with a PostgreSQL state backend",
                )
                .hint("set `state` or `state_env`, or remove lease_seconds"));
            }
            return Ok(StateLocation::Local);
        }
        (Some(_), Some(_)) => {
            return Err(Problem::new(
                at("state_env"),
                "`state` and `state_env` both name the state backend",
            )
            .hint("keep one: `state_env` names the variable that holds the connection string"))
        }
        (Some(url), None) => {
            check_url(url).map_err(|m| {
                Problem::new(at("state"), m).hint(
                    "write `state = \"postgres://USER@HOST:PORT/DATABASE\"` and give the password \
                     in ~/.pgpass or PGPASSWORD, or move the whole string to a variable named \
                     by `state_env`",
                )
            })?;
            UrlSource::Inline(url.clone())
        }
        (None, Some(var)) => {
            let plain = !var.is_empty()
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !var.starts_with(|c: char| c.is_ascii_digit());
            if !plain {
                return Err(Problem::new(
                    at("state_env"),
                    format!("{var:?} is not an environment variable name"),
                )
                .hint("e.g. state_env = \"CERTROLL_STATE_URL\""));
            }
            UrlSource::Env(var.clone())
        }
    };
    Ok(StateLocation::Postgres { source, lease })
}

/// A connection string certroll accepts: `postgres://` or `postgresql://`, naming a
/// database, without a password.
pub fn check_url(url: &str) -> Result<(), String> {
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Err(format!(
            "state {:?} is not a PostgreSQL URL (postgres://…)",
            redact(url)
        ));
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let userinfo = authority.rsplit_once('@').map(|(u, _)| u).unwrap_or("");
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
    if userinfo.contains(':') || query.split('&').any(|kv| kv.starts_with("password=")) {
        return Err(format!(
            "state {:?} carries a password; the inventory is no place for it",
            redact(url)
        ));
    }
    let database = path.split('?').next().unwrap_or("");
    if database.is_empty() && !query.split('&').any(|kv| kv.starts_with("dbname=")) {
        return Err(format!(
            "state {:?} names no database (postgres://HOST/DATABASE)",
            redact(url)
        ));
    }
    Ok(())
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, String::new()),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{name}:***@{host}"),
            None => format!("{user}@{host}"),
        },
        None => authority.to_string(),
    };
    let path = path
        .split('&')
        .map(|kv| match kv.split_once("password=") {
            Some((pre, _)) => format!("{pre}password=***"),
            None => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_a_password_or_without_a_database_are_refused() {
        assert!(check_url("postgres://certroll@db.example:5432/fleet").is_ok());
        assert!(check_url("postgresql://db/fleet?sslmode=disable").is_ok());
        let pw = check_url("postgres://certroll:s3cret@db/fleet").unwrap_err();
        assert!(pw.contains("password") && !pw.contains("s3cret"), "{pw}");
        let q = check_url("postgres://db/fleet?password=s3cret").unwrap_err();
        assert!(q.contains("password") && !q.contains("s3cret"), "{q}");
        let nodb = check_url("postgres://certroll@db:5432").unwrap_err();
        assert!(nodb.contains("no database"), "{nodb}");
        assert!(check_url("mysql://db/fleet").is_err());
    }

    #[test]
    fn redact_hides_passwords_only() {
        assert_eq!(
            redact("postgres://u:pw@h:1/d?password=x&a=b"),
            "postgres://u:***@h:1/d?password=***&a=b"
        );
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
    }
}
