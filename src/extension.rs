//! Whether a fleet allows `certroll ca extend`: every member's certificate chain is read
//! (as `verify` reads it), and a certificate whose Authority Key Identifier names its
//! issuer's issuer and serial number ([`crate::pki::extend::binds_issuer_serial`]) would
//! not chain to the re-issued CA certificate. A member that could not be read cannot be
//! judged: the extension waits until it can.

use crate::collect::{collect, Collected, FileState};
use crate::inventory::{CaId, Inventory};
use crate::pki::extend::binds_issuer_serial;
use crate::transport::Connector;

/// What the fleet says about extending CA `ca`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetCheck {
    /// "node app: /etc/tls/cert.pem" for each chain holding a certificate bound to the
    /// CA certificate's issuer and serial.
    pub bound: Vec<String>,
    /// "node db: why" for each member whose chain could not be read.
    pub unread: Vec<String>,
}

/// Reads every member's chain of `ca` through `connector`, `threads` nodes at a time.
pub fn check_fleet(
    inv: &Inventory,
    ca: CaId,
    connector: &dyn Connector,
    threads: usize,
) -> FleetCheck {
    let members = inv.members(ca);
    let collected = collect(inv, &members, &[ca], connector, threads);
    let spec = &inv.cas[ca];
    let mut out = FleetCheck::default();
    for (&n, c) in members.iter().zip(&collected) {
        let node = &inv.nodes[n];
        let path = node.paths(&spec.name).cert;
        let bytes = match c {
            Collected::Unreachable(e) => {
                out.unread.push(format!("node {}: {e}", node.name));
                continue;
            }
            Collected::Reached { .. } => match c.files(ca).map(|f| &f.cert) {
                Some(FileState::Present(b)) => b,
                // Nothing there yet: nothing bound to the old certificate.
                Some(FileState::Missing) => continue,
                Some(FileState::Unreadable(why)) => {
                    out.unread.push(format!("node {}: {why}", node.name));
                    continue;
                }
                _ => continue,
            },
        };
        let Ok(blocks) = pem::parse_many(bytes) else {
            continue; // not PEM: verify reports it; it chains to nothing anyway
        };
        if blocks
            .iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .any(|b| binds_issuer_serial(b.contents()))
        {
            out.bound.push(format!("node {}: {path}", node.name));
        }
    }
    out
}
