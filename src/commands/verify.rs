//! `certroll verify`: read every node's real files, prove every link, print a report and
//! return the monitoring exit code (0 OK, 1 warning, 2 critical, 3 unknown).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::{select_ca, CommandError};
use crate::inventory::{CaId, Inventory};
use crate::output::prometheus;
use crate::output::textfile::Textfile;
use crate::output::verify::{json, text};
use crate::output::{unless_reader_left, Format, Style};
use crate::pki::CaStore;
use crate::state::StateBackend;
use crate::transport::{Connector, HostKeyPolicy};
use crate::verify::{check_windows, verify, CaInput, Known, Report, VerifyOptions};

/// Arguments of `certroll verify`.
#[derive(Debug, Clone)]
pub struct VerifyArgs {
    pub inventory: PathBuf,
    /// Verify only this CA; every CA of the inventory when `None`.
    pub ca: Option<String>,
    pub format: Format,
    /// Warn about certificates expiring within this; default `[verify] warn_within`, else
    /// each CA's `renew_before`.
    pub warn_within: Option<Duration>,
    /// Certificates expiring within this are critical; default `[verify]
    /// critical_within`, else 7 days (see [`crate::verify::thresholds`]).
    pub critical_within: Option<Duration>,
    /// Also write the metrics to DIR/certroll.prom for node_exporter's textfile collector.
    pub textfile_dir: Option<PathBuf>,
    /// Also run each client's `probe` command against its servers.
    pub live: bool,
    /// Time limit of one probe.
    pub probe_timeout: Duration,
    /// Nodes read at once.
    pub parallel: usize,
    pub accept_new_host_keys: bool,
}

impl Default for VerifyArgs {
    fn default() -> Self {
        VerifyArgs {
            inventory: PathBuf::from("certroll.toml"),
            ca: None,
            format: Format::Text,
            warn_within: None,
            critical_within: None,
            textfile_dir: None,
            live: false,
            probe_timeout: Duration::from_secs(30),
            parallel: 32,
            accept_new_host_keys: false,
        }
    }
}

/// Runs `certroll verify`, prints the report on standard output, returns the exit code.
pub fn run(args: &VerifyArgs) -> Result<i32, CommandError> {
    run_to(args, &mut std::io::stdout().lock(), Style::stdout())
}

/// Runs `certroll verify` and writes the report to `out` (text styled with `style`).
pub fn run_to(args: &VerifyArgs, out: &mut dyn Write, style: Style) -> Result<i32, CommandError> {
    let (inv, state) = super::load_with_state(&args.inventory)?;
    // Refused before any node is contacted: a textfile directory that cannot take the
    // file, thresholds in the wrong order.
    let textfile = args
        .textfile_dir
        .as_deref()
        .map(Textfile::open)
        .transpose()
        .map_err(|e| CommandError::CantCreate(crate::error::chain(&e)))?;
    let connector = super::connector(
        &inv,
        HostKeyPolicy {
            accept_new: args.accept_new_host_keys,
        },
    );
    let report = check_in(&inv, args, connector, &*state)?;
    if let Some(file) = textfile {
        let carried = file.previous_last_success();
        file.commit(&prometheus::render(&report, &inv, &carried))
            .map_err(|e| CommandError::CantCreate(crate::error::chain(&e)))?;
    }
    let rendered = match args.format {
        Format::Json => json(&report),
        Format::Prometheus => prometheus::render(&report, &inv, &BTreeMap::new()),
        Format::Text | Format::Dot => text(&report, style),
    };
    unless_reader_left(
        out.write_all(rendered.as_bytes())
            .and_then(|()| out.flush()),
    )
    .context("failed to write the verify report to standard output")?;
    Ok(report.exit_code())
}

/// Verifies the selected CAs of `inv` through `connector`, reading the generations from
/// the inventory's CA store and the restarts left pending from the journal of its local
/// state directory. Separate from [`run`] so that any connector can be used.
pub fn check(
    inv: &Inventory,
    args: &VerifyArgs,
    connector: Arc<dyn Connector>,
) -> Result<Report, CommandError> {
    check_in(inv, args, connector, &crate::state::open_local(inv))
}

/// [`check`], reading the restarts left pending from `state`'s journal (a PostgreSQL
/// backend's journal is not in the inventory's state directory).
pub fn check_in(
    inv: &Inventory,
    args: &VerifyArgs,
    connector: Arc<dyn Connector>,
    state: &dyn StateBackend,
) -> Result<Report, CommandError> {
    let cas: Vec<CaId> = match &args.ca {
        Some(name) => vec![select_ca(inv, Some(name))?],
        None => (0..inv.cas.len()).collect(),
    };
    let store = CaStore::new(&inv.state_dir);
    let inputs: Vec<CaInput> = cas
        .into_iter()
        .map(|ca| match Known::from_store(&store, &inv.cas[ca]) {
            Ok(known) => CaInput {
                ca,
                known,
                store_error: None,
                issuers: if args.live {
                    issuers(&store, &inv.cas[ca])
                } else {
                    Vec::new()
                },
            },
            Err(e) => CaInput {
                ca,
                known: Known::default(),
                store_error: Some(e),
                issuers: Vec::new(),
            },
        })
        .collect();
    let opts = VerifyOptions {
        warn_within: args.warn_within,
        critical_within: args.critical_within,
        live: args.live,
        probe_timeout: args.probe_timeout,
        threads: args.parallel.max(1),
        ..VerifyOptions::default()
    };
    let ids: Vec<CaId> = inputs.iter().map(|i| i.ca).collect();
    check_windows(inv, &ids, &opts).map_err(CommandError::Usage)?;
    let mut report = verify(inv, &inputs, connector.as_ref(), &opts);
    // The journal is the state backend's (a PostgreSQL backend's is not in the store copy).
    crate::verify::restart_pending(&mut report, |ca| state.read_last_run(Some(ca)));
    Ok(report)
}

/// The current and next generations of `spec`, with their keys as the store loads them
/// without unlocking anything: a `file` key can sign throwaway client certificates for
/// `--live`; an `encrypted` or `pkcs11` one stays locked (verify never asks for a secret),
/// and the finding says that its generation could not be tested. A generation that does
/// not load is left out (the store's problem is reported by the rest of verify).
fn issuers(store: &CaStore, spec: &crate::inventory::CaSpec) -> Vec<crate::pki::CaCert> {
    [store.current(spec), store.next(spec)]
        .into_iter()
        .filter_map(|g| g.ok().flatten())
        .collect()
}
