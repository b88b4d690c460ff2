//! The lock of the PostgreSQL backend: a lease, not a session lock.
//!
//! The single row of `certroll_lease` holds the epoch (the fencing token), the holder and
//! when the lease expires. Taking the lease is one transaction: the row is locked
//! (`FOR UPDATE`), a live holder refuses the taker, otherwise the epoch is bumped and the
//! taker written. A heartbeat thread renews the expiry every third of the lease while the
//! run lives; a killed run stops renewing and its lease expires by itself. Nothing depends
//! on the session staying open (no advisory lock), so a transaction-pooling pooler works.
//!
//! Every journal write carries the epoch and the database checks it in the same statement
//! (see `pg_journal.rs`): once a lease is broken or taken over, the old run cannot write.
//! When the heartbeat cannot renew before the lease would expire, it marks the lease lost
//! and the run stops at its next write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::Config;

use super::pg_conn::Conn;
use super::pg_schema::record_fleet;
use super::{Broken, Lease, StateError};
use crate::journal::{Holder, LockError, LockState};

/// The lease this process holds; the heartbeat stops and the lease is released on drop.
pub struct PgLease {
    holder: Holder,
    epoch: i64,
    /// Set when the lease could not be renewed or was found taken: no more writes.
    pub(super) lost: Arc<AtomicBool>,
    stop: Option<Sender<()>>,
    beat: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PgLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgLease(epoch {}, {})", self.epoch, self.holder)
    }
}

impl Lease for PgLease {
    fn holder(&self) -> &Holder {
        &self.holder
    }

    fn epoch(&self) -> i64 {
        self.epoch
    }

    fn lost(&self) -> Option<Arc<AtomicBool>> {
        Some(Arc::clone(&self.lost))
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        // The heartbeat releases the lease when told to stop (or when the channel closes).
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(beat) = self.beat.take() {
            let _ = beat.join();
        }
    }
}

fn user() -> Option<String> {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
}

/// Reads the holder column (JSON), tolerating a damaged one.
fn parse_holder(text: Option<String>) -> Option<Holder> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

/// Takes the lease, or says who holds it.
pub fn acquire(
    conn: &mut Conn,
    config: &Config,
    place: &str,
    command: &str,
    ttl: Duration,
    cas: &[String],
) -> Result<PgLease, StateError> {
    let mut holder = Holder {
        pid: std::process::id(),
        host: crate::journal::hostname(),
        since: crate::journal::now_rfc3339(),
        command: command.to_string(),
        user: user(),
        run: None,
        heartbeat: None,
        epoch: None,
    };
    let secs = ttl.as_secs_f64();
    let taken = conn.run("take the lease", |c| {
        let mut tx = c.transaction()?;
        let row = tx.query_one(
            "SELECT epoch, holder, heartbeat::text, coalesce(expires > now(), false)
             FROM certroll_lease WHERE id = 1 FOR UPDATE",
            &[],
        )?;
        let live: bool = row.get(3);
        let current: Option<String> = row.get(1);
        if live && current.is_some() {
            let mut h = parse_holder(current);
            if let Some(h) = h.as_mut() {
                h.heartbeat = row.get(2);
                h.epoch = Some(row.get(0));
            }
            tx.rollback()?;
            return Ok(Err(h));
        }
        let epoch: i64 = row.get::<_, i64>(0) + 1;
        let mut me = holder.clone();
        me.epoch = Some(epoch);
        let text = serde_json::to_string(&me).unwrap_or_default();
        tx.execute(
            "UPDATE certroll_lease SET epoch = $1, holder = $2, heartbeat = now(),
                 expires = now() + make_interval(secs => $3) WHERE id = 1",
            &[&epoch, &text, &secs],
        )?;
        record_fleet(&mut tx, cas)?;
        tx.commit()?;
        Ok(Ok(epoch))
    })?;
    let epoch = match taken {
        Ok(epoch) => epoch,
        Err(Some(h)) => {
            return Err(LockError::Held {
                path: place.into(),
                holder: Box::new(h),
            }
            .into())
        }
        Err(None) => {
            return Err(LockError::HeldUnknown {
                path: place.into(),
                detail: "its holder record is damaged".into(),
            }
            .into())
        }
    };
    holder.epoch = Some(epoch);
    let lost = Arc::new(AtomicBool::new(false));
    let (stop, stopped) = mpsc::channel();
    let beat_conn = Conn::connect(config, place)?;
    let flag = Arc::clone(&lost);
    let beat = std::thread::Builder::new()
        .name("lease-heartbeat".into())
        .spawn(move || heartbeat(beat_conn, epoch, ttl, &flag, &stopped))
        .map_err(|e| StateError::Other(format!("failed to start the lease heartbeat: {e}")))?;
    Ok(PgLease {
        holder,
        epoch,
        lost,
        stop: Some(stop),
        beat: Some(beat),
    })
}

/// Renews the lease every third of `ttl` until told to stop, then releases it.
fn heartbeat(
    mut conn: Conn,
    epoch: i64,
    ttl: Duration,
    lost: &AtomicBool,
    stopped: &mpsc::Receiver<()>,
) {
    let secs = ttl.as_secs_f64();
    let mut renewed = Instant::now();
    // Stops on a message or when the lease (the sender) is gone.
    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(ttl / 3) {
        let renew = conn.run("renew the lease", |c| {
            c.execute(
                "UPDATE certroll_lease SET heartbeat = now(),
                     expires = now() + make_interval(secs => $2)
                 WHERE id = 1 AND epoch = $1 AND holder IS NOT NULL",
                &[&epoch, &secs],
            )
        });
        match renew {
            Ok(1) => renewed = Instant::now(),
            Ok(_) => {
                // Broken or taken over: this run may no longer write.
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(_) if renewed.elapsed() >= ttl => {
                // Not renewed in time: another host may take the lease now.
                lost.store(true, Ordering::SeqCst);
            }
            Err(_) => {}
        }
    }
    // Released only if still ours, in one attempt: a failure leaves it to expire.
    let _ = conn.run_once("release the lease", |c| {
        c.execute(
            "UPDATE certroll_lease SET holder = NULL, heartbeat = NULL, expires = NULL
             WHERE id = 1 AND epoch = $1",
            &[&epoch],
        )
    });
}

/// Who holds the lease now (a holder whose lease expired holds nothing).
pub fn state(conn: &mut Conn) -> Result<LockState, StateError> {
    conn.run("read the lease", |c| {
        let row = c.query_one(
            "SELECT epoch, holder, heartbeat::text, coalesce(expires > now(), false)
             FROM certroll_lease WHERE id = 1",
            &[],
        )?;
        let live: bool = row.get(3);
        let text: Option<String> = row.get(1);
        if !live || text.is_none() {
            return Ok(LockState::Free);
        }
        let mut h = parse_holder(text);
        if let Some(h) = h.as_mut() {
            h.heartbeat = row.get(2);
            h.epoch = Some(row.get(0));
        }
        Ok(LockState::Held(h))
    })
}

/// Ends the lease, whoever holds it, and bumps the epoch.
pub fn break_lease(conn: &mut Conn) -> Result<Broken, StateError> {
    conn.run("break the lease", |c| {
        let mut tx = c.transaction()?;
        let row = tx.query_one(
            "SELECT epoch, holder, heartbeat::text, coalesce(expires > now(), false)
             FROM certroll_lease WHERE id = 1 FOR UPDATE",
            &[],
        )?;
        let live: bool = row.get(3);
        let mut holder = parse_holder(row.get(1)).filter(|_| live);
        if let Some(h) = holder.as_mut() {
            h.heartbeat = row.get(2);
            h.epoch = Some(row.get(0));
        }
        let epoch: i64 = row.get::<_, i64>(0) + 1;
        tx.execute(
            "UPDATE certroll_lease SET epoch = $1, holder = NULL, heartbeat = NULL,
                 expires = NULL WHERE id = 1",
            &[&epoch],
        )?;
        tx.commit()?;
        Ok(Broken { holder, epoch })
    })
}
