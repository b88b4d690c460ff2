//! `certroll verify`: read every node's real files, prove every link, print a report and
//! return the monitoring exit code (0 OK, 1 warning, 2 critical, 3 unknown).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::{select_ca, CommandError};
use crate::inventory::{CaId, Inventory};
use crate::output::verify::{json, text};
use crate::output::{unless_reader_left, Format, Style};
use crate::pki::CaStore;
use crate::transport::{Connector, HostKeyPolicy};
use crate::verify::{verify, CaInput, Known, Report, VerifyOptions};

/// Arguments of `certroll verify`.
#[derive(Debug, Clone)]
pub struct VerifyArgs {
    pub inventory: PathBuf,
    /// Verify only this CA; every CA of the inventory when `None`.
    pub ca: Option<String>,
    pub format: Format,
    /// Warn about certificates expiring within this; default each CA's `renew_before`.
    pub warn_within: Option<Duration>,
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
    let (inv, _state) = super::load_with_state(&args.inventory)?;
    let connector = super::connector(
        &inv,
        HostKeyPolicy {
            accept_new: args.accept_new_host_keys,
        },
    );
    let report = check(&inv, args, connector)?;
    let rendered = match args.format {
        Format::Json => json(&report),
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
/// the inventory's CA store. Separate from [`run`] so that any connector can be used.
pub fn check(
    inv: &Inventory,
    args: &VerifyArgs,
    connector: Arc<dyn Connector>,
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
            },
            Err(e) => CaInput {
                ca,
                known: Known::default(),
                store_error: Some(e),
            },
        })
        .collect();
    let opts = VerifyOptions {
        warn_within: args.warn_within,
        live: args.live,
        probe_timeout: args.probe_timeout,
        threads: args.parallel.max(1),
        ..VerifyOptions::default()
    };
    Ok(verify(inv, &inputs, connector.as_ref(), &opts))
}
