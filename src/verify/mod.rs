//! `certroll verify`: collect every node's real files and prove every link.
//!
//! [`verify`] reads, through a [`Connector`], the trust bundle, certificate chain and key
//! of every node taking part in the chosen CAs' links (one connection per node, many
//! nodes at once), checks each node ([`node`]), handshakes each link for real in memory
//! ([`links`]), optionally runs the nodes' probes ([`live`]) and looks at the servers
//! with a `tls_address` ([`live_tls`]), and returns a [`Report`].
//! Nothing here depends on how a node is reached: SSH, local or a test fake.

use std::time::Duration as StdDuration;

use time::{Duration, OffsetDateTime};

use crate::inventory::{CaId, Inventory, NodeId};
use crate::transport::Connector;

/// Reading the nodes' files lives beside verify, which uses it most.
pub use crate::collect;
pub mod ca_certs;
pub mod check;
pub mod finding;
mod finding_message;
pub mod generations;
pub mod links;
pub mod live;
pub mod live_tls;
pub mod node;
mod pending;
pub mod proof;
pub mod report;
pub mod thresholds;

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;

pub use collect::{CaFiles, Collected, FileState};
pub use finding::Finding;
pub use generations::{Known, KnownCa};
pub use pending::restart_pending;
pub use report::{
    CaReport, CertSummary, Generation, LinkReport, LinkResult, LiveResult, NodeReport, Phase,
    Report, Severity, StoreCert,
};

use collect::collect;
use links::{check_link, SideState};
use node::{check_node, NodeContext, Parsed};

/// The start of the CA finding of a store that holds no generation: the fleet was never
/// bootstrapped (the text output adds a hint to run `certroll apply`).
pub const NEVER_CREATED: &str = "the store holds no generation of this CA: it was never created";

/// How to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The instant certificates are checked at.
    pub now: OffsetDateTime,
    /// Warn about certificates expiring within this; `None`: the inventory's `[verify]`
    /// default, else each CA's `renew_before` ([`thresholds`]).
    pub warn_within: Option<StdDuration>,
    /// Certificates expiring within this are critical; `None`: the inventory's default,
    /// else [`thresholds::DEFAULT_CRITICAL`].
    pub critical_within: Option<StdDuration>,
    /// Run each client's probe command against its servers.
    pub live: bool,
    pub probe_timeout: StdDuration,
    /// Nodes read at once.
    pub threads: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            now: OffsetDateTime::now_utc(),
            warn_within: None,
            critical_within: None,
            live: false,
            probe_timeout: StdDuration::from_secs(30),
            threads: 32,
        }
    }
}

/// A CA to verify and the generations the local store knows of it. `store_error` is set
/// when the store could not be read (generations are then unknown).
#[derive(Debug, Clone)]
pub struct CaInput {
    pub ca: CaId,
    pub known: Known,
    pub store_error: Option<String>,
    /// The current and next generations with their keys as the store loaded them without
    /// unlocking anything, for the throwaway client certificates of `--live`
    /// ([`crate::confirm::trust`]); empty when none is known.
    pub issuers: Vec<crate::pki::CaCert>,
}

/// Verifies the given CAs of `inv`, reaching nodes through `connector`.
pub fn verify(
    inv: &Inventory,
    cas: &[CaInput],
    connector: &dyn Connector,
    opts: &VerifyOptions,
) -> Report {
    let ids: Vec<CaId> = cas.iter().map(|c| c.ca).collect();
    let mut nodes: Vec<NodeId> = ids.iter().flat_map(|&ca| inv.members(ca)).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let collected = collect(inv, &nodes, &ids, connector, opts.threads);
    let by_node = |n: NodeId| nodes.binary_search(&n).ok().map(|i| &collected[i]);
    let mut reports: Vec<CaReport> = cas
        .iter()
        .map(|input| verify_ca(inv, input, &by_node, opts))
        .collect();
    if opts.live {
        for (r, input) in reports.iter_mut().zip(cas) {
            run_probes(inv, r, &by_node, opts);
            let throwaways =
                crate::confirm::Throwaways::new(&inv.cas[input.ca].name, input.issuers.clone());
            live_tls::check_servers(
                inv,
                input.ca,
                &input.known,
                &throwaways,
                r,
                &by_node,
                opts.probe_timeout,
                opts.threads,
            );
        }
    }
    Report {
        checked_at: opts.now,
        cas: reports,
    }
}

/// Checks the nodes and links of one CA from the collected files.
fn verify_ca<'a>(
    inv: &Inventory,
    input: &CaInput,
    by_node: &dyn Fn(NodeId) -> Option<&'a Collected>,
    opts: &VerifyOptions,
) -> CaReport {
    let windows = windows(inv, input.ca, opts);
    let (nodes, parsed) = check_nodes(inv, input, by_node, opts, &windows);
    let now = u64::try_from(opts.now.unix_timestamp()).unwrap_or(0);
    let side = |n: NodeId| side_state(by_node(n), input.ca, parsed[n].as_ref());
    let links = inv
        .links_of(input.ca)
        .map(|l| check_link(inv, l, side(l.client), side(l.server), &input.known, now))
        .collect();
    let k = &input.known;
    let number = |g| k.get(g).map(|c| c.number);
    let mut previous: Vec<u32> = k
        .cas
        .iter()
        .filter(|c| c.label == Generation::Previous)
        .map(|c| c.number)
        .collect();
    previous.sort_unstable();
    let (ca_certs, expiring) = ca_certs::check(k, &windows, opts.now);
    let mut findings = ca_findings(input);
    findings.extend(expiring);
    CaReport {
        ca: inv.cas[input.ca].name.clone(),
        current: number(Generation::Current),
        next: number(Generation::Next),
        previous,
        findings,
        ca_certs,
        nodes,
        links,
    }
}

/// Checks every member of the CA; returns the reports and, per node id, what was parsed.
fn check_nodes<'a>(
    inv: &Inventory,
    input: &CaInput,
    by_node: &dyn Fn(NodeId) -> Option<&'a Collected>,
    opts: &VerifyOptions,
    windows: &thresholds::Windows,
) -> (Vec<NodeReport>, Vec<Option<Parsed>>) {
    let spec = &inv.cas[input.ca];
    let mut reports = Vec::new();
    let mut parsed: Vec<Option<Parsed>> = vec![None; inv.nodes.len()];
    for n in inv.members(input.ca) {
        let node = &inv.nodes[n];
        let files = match by_node(n) {
            Some(Collected::Reached { files, .. }) => files.get(&input.ca),
            Some(Collected::Unreachable(e)) => {
                reports.push(unreachable(n, &node.name, e.to_string()));
                continue;
            }
            None => None,
        };
        let Some(files) = files else {
            reports.push(unreachable(n, &node.name, "not collected".into()));
            continue;
        };
        let cx = NodeContext {
            id: n,
            node,
            paths: node.paths(&spec.name),
            known: &input.known,
            serves: inv.links_of(input.ca).any(|l| l.server == n),
            now: opts.now,
            warn_within: windows.warn_within,
            critical_within: windows.critical_within,
            keeps_foreign: spec.bundle_foreign == crate::inventory::BundleForeign::Keep,
        };
        let (report, p) = check_node(&cx, files);
        reports.push(report);
        parsed[n] = Some(p);
    }
    (reports, parsed)
}

/// The expiry windows of CA `ca`. The command checks them first ([`check_windows`]); a
/// pair refused there is never verified, so the fallback (warnings only) is for library
/// callers that skipped the check.
fn windows(inv: &Inventory, ca: CaId, opts: &VerifyOptions) -> thresholds::Windows {
    let asked = asked(opts);
    thresholds::windows(&asked, &inv.verify, &inv.cas[ca]).unwrap_or_else(|_| {
        let warn = opts.warn_within.unwrap_or(inv.cas[ca].renew_before);
        thresholds::Windows {
            warn_within: Duration::try_from(warn).unwrap_or(Duration::MAX),
            critical_within: Duration::ZERO,
        }
    })
}

fn asked(opts: &VerifyOptions) -> thresholds::Asked {
    thresholds::Asked {
        warn_within: opts.warn_within,
        critical_within: opts.critical_within,
    }
}

/// Refuses expiry windows in the wrong order for any of `cas` (the message names both
/// windows and where each came from).
pub fn check_windows(inv: &Inventory, cas: &[CaId], opts: &VerifyOptions) -> Result<(), String> {
    for &ca in cas {
        thresholds::windows(&asked(opts), &inv.verify, &inv.cas[ca])?;
    }
    Ok(())
}

fn ca_findings(input: &CaInput) -> Vec<Finding> {
    match (&input.store_error, input.known.is_empty()) {
        (Some(message), _) => vec![Finding::StoreUnavailable {
            message: message.clone(),
        }],
        (None, true) => vec![Finding::StoreUnavailable {
            message: format!("{NEVER_CREATED} (or state_dir points elsewhere)"),
        }],
        (None, false) => Vec::new(),
    }
}

fn unreachable(node: NodeId, name: &str, message: String) -> NodeReport {
    NodeReport {
        node,
        name: name.to_string(),
        phase: Phase::Unknown,
        anchors: Vec::new(),
        leaf: None,
        chain_extra: 0,
        key_mode: None,
        stores: Vec::new(),
        findings: vec![Finding::Unreachable { message }],
    }
}

fn side_state<'a>(c: Option<&'a Collected>, ca: CaId, parsed: Option<&'a Parsed>) -> SideState<'a> {
    let files = match c {
        Some(Collected::Reached { files, .. }) => match files.get(&ca) {
            Some(f) => match f.read_error() {
                Some(e) => Err(e),
                None => Ok(f),
            },
            None => Err("not collected"),
        },
        Some(Collected::Unreachable(_)) => Err("node unreachable"),
        None => Err("not collected"),
    };
    SideState { files, parsed }
}

/// Runs the probes of every link's client, many at once.
fn run_probes<'a>(
    inv: &Inventory,
    report: &mut CaReport,
    by_node: &(dyn Fn(NodeId) -> Option<&'a Collected> + Sync),
    opts: &VerifyOptions,
) {
    let results = collect::parallel_map(&report.links, opts.threads, |l| {
        let transport = match by_node(l.client) {
            Some(Collected::Reached { transport, .. }) => Ok(transport),
            _ => Err("no connection"),
        };
        live::probe(
            &inv.nodes[l.client],
            &inv.nodes[l.server],
            transport,
            opts.probe_timeout,
        )
    });
    for (l, r) in report.links.iter_mut().zip(results) {
        l.live = r;
    }
}
