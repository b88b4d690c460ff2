//! `certroll ca extend NAME`: re-issue the current CA certificate with its own key, same
//! subject and key identifiers, and a new validity (docs/operations.md#an-expiring-ca).
//! The decisions are the library's ([`crate::pki::extend`], [`crate::extension`]); this
//! command takes the run lock, reads the fleet, refuses or writes, and says what next.

use std::path::PathBuf;

use anyhow::Context;
use time::OffsetDateTime;

use super::{keys, select_ca, CommandError};
use crate::exit;
use crate::transport::HostKeyPolicy;

/// Arguments of `certroll ca extend`.
#[derive(Debug, Clone)]
pub struct ExtendArgs {
    pub inventory: PathBuf,
    /// The `[ca.NAME]` to extend.
    pub ca: String,
    /// Nodes read at once (to check the leaves' authority key identifiers).
    pub parallel: usize,
    pub accept_new_host_keys: bool,
}

/// Runs `certroll ca extend`; returns the exit code.
pub fn extend(args: &ExtendArgs) -> Result<i32, CommandError> {
    // The CA store is the state backend's: the state directory, or this command's private
    // copy of the PostgreSQL backend's store (nothing of it is written locally).
    let (inv, state) = super::load_with_state(&args.inventory)?;
    let ca = select_ca(&inv, Some(&args.ca))?;
    let spec = &inv.cas[ca];
    let store = keys::open_store(&inv.state_dir, spec)?;
    let read = || format!("failed to read the CA store of CA {}", spec.name);
    let current = store.current(spec).with_context(read)?.ok_or_else(|| {
        CommandError::Refused(format!(
            "refusing to extend CA {}: it was never created (run `certroll apply`)",
            spec.name
        ))
    })?;
    if store.next(spec).with_context(read)?.is_some() {
        return Err(CommandError::Refused(format!(
            "refusing to extend CA {}: a rotation is in progress; finish it with `certroll apply` \
             (or `certroll apply --rollback`) first; nothing was written",
            spec.name
        )));
    }
    if let Some(why) = crate::pki::extend::refusal(&current) {
        return Err(CommandError::Refused(format!(
            "refusing to extend CA {}: {why}; nothing was written",
            spec.name
        )));
    }
    // The key must sign before anything is read from the fleet: a token that is not
    // there, a wrong passphrase, is the operator's to fix (exit 78).
    if let Err(why) = current.signer() {
        return Err(CommandError::BadInput(format!(
            "refusing to extend CA {}: cannot use the key of G{}: {why}; nothing was written",
            spec.name, current.generation
        )));
    }
    // Only now the lock (a refusal above leaves no trace, not even the lock file), and
    // under it the store and the journal again: nothing may have changed meanwhile.
    let command = format!("certroll ca extend {}", spec.name);
    let (lease, unfinished) = super::lease_for_ca(&*state, &spec.name, &command)?;
    if let Some(run) = unfinished {
        return Err(CommandError::Refused(format!(
            "refusing to extend CA {}: run {} of this CA is unfinished; nothing was written\n  \
             hint: finish it with `certroll apply` first",
            spec.name, run
        )));
    }
    let unchanged = store
        .current(spec)
        .with_context(read)?
        .is_some_and(|c| c.cert_der == current.cert_der);
    if !unchanged {
        return Err(CommandError::Incomplete(format!(
            "CA {} changed while `ca extend` checked it (another certroll ran): run it again; \
             nothing was written",
            spec.name
        )));
    }
    let connector = super::connector(
        &inv,
        HostKeyPolicy {
            accept_new: args.accept_new_host_keys,
        },
    );
    let fleet = crate::extension::check_fleet(&inv, ca, connector.as_ref(), args.parallel);
    if !fleet.bound.is_empty() {
        return Err(CommandError::Refused(format!(
            "refusing to extend CA {}: these certificates name the CA certificate's issuer and \
             serial number in their authority key identifier, so they would not chain to a \
             re-issued certificate: {}; nothing was written\n  hint: rotate instead \
             (`certroll apply --rotate --ca {}`), see docs/operations.md#an-expiring-ca",
            spec.name,
            fleet.bound.join(", "),
            spec.name
        )));
    }
    if !fleet.unread.is_empty() {
        return Err(CommandError::Incomplete(format!(
            "cannot extend CA {} yet: the leaves of these members could not be read, so their \
             authority key identifiers are unchecked: {}; nothing was written",
            spec.name,
            fleet.unread.join("; ")
        )));
    }
    let extended = crate::pki::extend::extend(spec, &current, OffsetDateTime::now_utc())
        .with_context(|| format!("failed to extend CA {}", spec.name))?;
    store
        .extend_current(spec, &extended)
        .with_context(|| format!("failed to record the extension of CA {}", spec.name))?;
    // Fenced by the lease: a run whose lock was broken meanwhile writes nothing back.
    state.save_store(&*lease)?;
    let until = crate::verify::report::rfc3339(extended.not_after);
    crate::outln!(
        "extended CA {} G{}: same key, subject and key identifiers, valid until {until}",
        spec.name,
        extended.generation
    );
    crate::outln!(
        "  next: `certroll apply --ca {}` installs the new certificate in every trust bundle; \
         `certroll verify` shows the bundles still to do",
        spec.name
    );
    Ok(exit::OK)
}
