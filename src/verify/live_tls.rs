//! `verify --live` for nodes with `tls_address`: does the server serve its files?
//!
//! The same check as the built-in confirm of `apply` ([`crate::confirm`]), made once per
//! node through the connection verify already holds: the served chain must start with
//! the certificate on the node's disk, and a server that asks for client certificates
//! must name every anchor of the bundle on its disk and no generation of the CA the
//! bundle no longer holds. The chain counts only if the server's handshake signature
//! verified with the served leaf's key. A server that was never reloaded after its files
//! changed, or that serves the certificate without holding its key, shows up here as a
//! critical `live-tls` finding; one that proved chain and key but ended the handshake
//! before its Finished (it requires a client certificate certroll could not offer) as an
//! informational `live-tls-key-only` finding saying so.
//!
//! A server that asks for client certificates without naming any CA (Redis, MariaDB) is
//! shown a throwaway client certificate of each generation whose key `verify` can use
//! without unlocking anything (a `file` store; an `encrypted` or `pkcs11` key stays locked
//! in this read-only command): one its bundle holds must be accepted, one it no longer
//! holds refused ([`crate::confirm::trust`]). A verdict against the bundle is a critical
//! `live-tls` finding; otherwise an informational `live-tls-trust` finding says which
//! proof each generation got.

use std::time::Duration;

use super::collect::{CaFiles, Collected, FileState};
use super::finding::Finding;
use super::report::CaReport;
use super::Known;
use crate::confirm::{identity, look, trust, Expectation, Proof, Throwaways};
use crate::inventory::{CaId, Inventory, NodeId};

/// Looks at every node of `report` that has a `tls_address` and adds a finding to each
/// one whose live TLS differs from its files; a server that names no CA is shown
/// `throwaways`.
#[allow(clippy::too_many_arguments)]
pub fn check_servers<'a>(
    inv: &Inventory,
    ca: CaId,
    known: &Known,
    throwaways: &Throwaways,
    report: &mut CaReport,
    by_node: &(dyn Fn(NodeId) -> Option<&'a Collected> + Sync),
    timeout: Duration,
    threads: usize,
) {
    let generations: Vec<&[u8]> = known.cas.iter().map(|c| c.der.as_slice()).collect();
    let findings = super::collect::parallel_map(&report.nodes, threads, |r| {
        let node = &inv.nodes[r.node];
        let target = node.tls.as_ref()?;
        let Some(Collected::Reached { transport, files }) = by_node(r.node) else {
            return None;
        };
        let files = files.get(&ca)?;
        let paths = node.paths(&inv.cas[ca].name);
        let finding = |detail: String| Finding::LiveTls {
            address: target.address(),
            detail,
        };
        let expected = match expectation(files, &paths.cert, &paths.trust_bundle, &generations) {
            Ok(e) => e,
            Err(e) => {
                return Some(vec![finding(format!(
                    "cannot read what it should serve: {e}"
                ))])
            }
        };
        let me = identity(files.cert.bytes(), files.key.bytes());
        let seen = match look(transport.as_ref(), node, target, timeout, me.as_ref()) {
            Ok(seen) => seen,
            Err(e) => return Some(vec![finding(e.to_string())]),
        };
        if let Some(why) = expected.mismatch(&seen) {
            return Some(vec![finding(why)]);
        }
        let mut found = Vec::new();
        if let Proof::KeyOnly { .. } = seen.proof {
            found.push(Finding::LiveTlsKeyOnly {
                address: target.address(),
                proof: seen.proof.to_string(),
            });
        }
        if trust::names_say_nothing(&expected, seen.ca_names.as_ref()) {
            let t = transport.as_ref();
            match trust::prove(t, node, target, &expected, throwaways, &|| timeout) {
                Ok(proof) => found.push(Finding::LiveTlsTrust {
                    address: target.address(),
                    proof: proof.to_string(),
                }),
                Err(e) => return Some(vec![finding(e.to_string())]),
            }
        }
        Some(found)
    });
    for (r, f) in report.nodes.iter_mut().zip(findings) {
        r.findings.extend(f.into_iter().flatten());
    }
}

fn expectation(
    files: &CaFiles,
    cert_path: &str,
    bundle_path: &str,
    generations: &[&[u8]],
) -> Result<Expectation, String> {
    let present = |f: &FileState| match f {
        FileState::Present(b) => Some(b.clone()),
        _ => None,
    };
    let (cert, bundle) = (present(&files.cert), present(&files.bundle));
    Expectation::from_files(
        cert.as_deref().map(|c| (cert_path, c)),
        bundle.as_deref().map(|b| (bundle_path, b)),
        generations,
    )
}
