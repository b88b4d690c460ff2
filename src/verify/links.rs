//! Proving each link: a real in-memory TLS handshake on the files the two nodes hold,
//! and, during a rotation, which rollover step ran too early when one fails.
//!
//! The invariant (docs/design.md#invariant) is that every link handshakes; that alone
//! decides whether the fleet is safe. The order check adds an explanation: a node
//! presenting a leaf from the next generation to a verifier that does not trust it yet (a
//! leaf swap before the verifier's trust-add), or a verifier that dropped the current
//! generation while a peer still presents it (a prune before the peer's leaf swap). Each
//! such violation also breaks the handshake unless a cross-signed chain bridges it, so it
//! is implied by the invariant; it is named to tell the operator which step to undo or
//! finish.

use super::collect::CaFiles;
use super::generations::Known;
use super::node::Parsed;
use super::report::{Generation, LinkReport, LinkResult};
use crate::inventory::{Inventory, Link};
use crate::tls::{handshake, Endpoint};

/// A node's side of a link: its files, if they could be read, and what was parsed.
#[derive(Clone, Copy)]
pub struct SideState<'a> {
    /// `Err` names why the node's files are unknown (unreachable, unreadable).
    pub files: Result<&'a CaFiles, &'a str>,
    pub parsed: Option<&'a Parsed>,
}

/// Handshakes one link at `now` (seconds since the epoch).
pub fn check_link(
    inv: &Inventory,
    link: &Link,
    client: SideState<'_>,
    server: SideState<'_>,
    known: &Known,
    now: u64,
) -> LinkReport {
    let (c, s) = (&inv.nodes[link.client], &inv.nodes[link.server]);
    let tls_name = s.server_name().to_string();
    let result = match (client.files, server.files) {
        (Err(why), _) => LinkResult::Skipped {
            reason: format!("files of client {} unknown: {why}", c.name),
        },
        (_, Err(why)) => LinkResult::Skipped {
            reason: format!("files of server {} unknown: {why}", s.name),
        },
        (Ok(cf), Ok(sf)) => match handshake(
            endpoint(cf),
            endpoint(sf),
            &tls_name,
            link.mutual,
            Some(now),
        ) {
            Ok(()) => LinkResult::Ok,
            Err(e) => LinkResult::Failed {
                side: e.side,
                kind: e.kind,
                detail: e.detail,
            },
        },
    };
    let mut order_violations = Vec::new();
    if known.get(Generation::Next).is_some() {
        let (cn, sn) = (c.name.as_str(), s.name.as_str());
        order_violations.extend(violation(known, sn, server.parsed, cn, client.parsed));
        if link.mutual {
            order_violations.extend(violation(known, cn, client.parsed, sn, server.parsed));
        }
    }
    LinkReport {
        client: link.client,
        server: link.server,
        client_name: c.name.clone(),
        server_name: s.name.clone(),
        tls_name,
        mutual: link.mutual,
        result,
        order_violations,
        live: None,
    }
}

fn endpoint(f: &CaFiles) -> Endpoint<'_> {
    Endpoint {
        bundle_pem: f.bundle.bytes(),
        chain_pem: f.cert.bytes(),
        key_pem: match &f.key {
            // Checked on its node (`key_source = "node"`): the chains are what is left.
            crate::collect::FileState::PublicKey(spki) if !spki.is_empty() => {
                crate::tls::KEY_ON_NODE
            }
            k => k.bytes(),
        },
    }
}

/// The rollover mistake, if any, of `presenter` showing its chain to `verifier`.
fn violation(
    known: &Known,
    presenter: &str,
    shown: Option<&Parsed>,
    verifier: &str,
    checks: Option<&Parsed>,
) -> Option<String> {
    let (shown, checks) = (shown?, checks?);
    let (leaf, trusts) = (shown.leaf_gen?, checks.trusts.as_ref()?);
    let (cur, next) = (
        known.name(Generation::Current),
        known.name(Generation::Next),
    );
    let bridged = shown.chain.iter().skip(1).any(|c| {
        let (issuer, _) = Known::label(known.issuer_of(c));
        trusts.contains(&issuer)
    });
    if leaf == Generation::Next && !trusts.contains(&Generation::Next) && !bridged {
        return Some(format!(
            "leaf swap too early: {presenter} presents a {next} leaf but {verifier} does not trust {next} yet"
        ));
    }
    if leaf == Generation::Current && !trusts.contains(&Generation::Current) {
        return Some(format!(
            "prune too early: {verifier} no longer trusts {cur} but {presenter} still presents a {cur} leaf"
        ));
    }
    None
}
