//! One simulated order of a plan's steps: the files each step leaves on its node, and a
//! real handshake over every link after each step (cached by what each end has applied),
//! so that a link that was up never goes down and a link that must come up does.

use std::collections::{HashMap, HashSet};

use super::start::Files;
use super::{complete, count_certs, ders, CheckError, Prepared};
use crate::inventory::{Inventory, Link, NodeId};
use crate::plan::{Mode, Plan, StepId};
use crate::tls::{handshake, Endpoint, HandshakeError};

/// Handshake cache key: the link and the sequence of steps applied to each end.
pub(super) type CacheKey = (usize, Vec<StepId>, Vec<StepId>);

pub(super) struct Sim<'a> {
    pub(super) inv: &'a Inventory,
    pub(super) plan: &'a Plan,
    pub(super) prepared: &'a Prepared,
    pub(super) links: &'a [Link],
    pub(super) cache: HashMap<CacheKey, Result<(), HandshakeError>>,
    /// Per link, whether it has been up in the current order.
    pub(super) up: Vec<bool>,
}

impl Sim<'_> {
    pub(super) fn run(&mut self, order: &[StepId]) -> Result<(), CheckError> {
        let mut files = self.prepared.initial.clone();
        let mut applied: Vec<Vec<StepId>> = vec![Vec::new(); self.inv.nodes.len()];
        // A fleet that starts broken (a takeover's missing files, a routine plan's repairs):
        // a link that is down must come up, and a link that is up must never go down.
        let may_start_down = self.prepared.may_start_down || self.plan.mode == Mode::Renew;
        self.up = vec![!may_start_down; self.links.len()];
        self.check_links(&files, &applied, None, order, None)?;
        for &s in order {
            let node = self.plan.steps[s].node;
            for (path, data) in &self.prepared.changes[s] {
                match data {
                    Some(d) => files[node].insert(path.clone(), d.clone()),
                    None => files[node].remove(path),
                };
            }
            applied[node].push(s);
            self.check_links(&files, &applied, Some(node), order, Some(s))?;
        }
        if self.prepared.may_start_down && self.plan.mode == Mode::Rotate {
            // Every link must be up at the end, including those that started down.
            self.up = vec![true; self.links.len()];
            self.check_links(&files, &applied, None, order, order.last().copied())?;
        }
        self.check_repaired(&files, &applied)?;
        self.check_final(&files)
    }

    /// Handshakes the links touching `changed` (all links when `None`).
    /// After a routine plan, every link is up unless a node on it is excused.
    fn check_repaired(
        &mut self,
        files: &[Files],
        applied: &[Vec<StepId>],
    ) -> Result<(), CheckError> {
        if self.plan.mode != Mode::Renew {
            return Ok(());
        }
        let links = self.links;
        for (i, l) in links.iter().enumerate() {
            let p = self.prepared;
            let excused = p.excused[l.client]
                || p.excused[l.server]
                || p.untrusting[l.client]
                || (l.mutual && p.untrusting[l.server]);
            if self.up[i] || excused {
                continue;
            }
            if let Err(error) = self.cached_handshake(i, l, files, applied) {
                let name = |n: NodeId| self.inv.nodes[n].name.clone();
                return Err(CheckError::NotRepaired {
                    client: name(l.client),
                    server: name(l.server),
                    error,
                });
            }
        }
        Ok(())
    }

    fn cached_handshake(
        &mut self,
        i: usize,
        l: &Link,
        files: &[Files],
        applied: &[Vec<StepId>],
    ) -> Result<(), HandshakeError> {
        let key = (i, applied[l.client].clone(), applied[l.server].clone());
        match self.cache.get(&key) {
            Some(r) => r.clone(),
            None => {
                let r = self.handshake(l, files);
                self.cache.insert(key, r.clone());
                r
            }
        }
    }

    fn check_links(
        &mut self,
        files: &[Files],
        applied: &[Vec<StepId>],
        changed: Option<NodeId>,
        order: &[StepId],
        after_step: Option<StepId>,
    ) -> Result<(), CheckError> {
        let links = self.links;
        for (i, l) in links.iter().enumerate() {
            if changed.is_some_and(|c| c != l.client && c != l.server) {
                continue;
            }
            if self.prepared.bootstrap
                && !(complete(self.inv, self.plan, l.client, &files[l.client])
                    && complete(self.inv, self.plan, l.server, &files[l.server]))
            {
                continue; // during bootstrap a link is expected up once both ends are installed
            }
            let result = self.cached_handshake(i, l, files, applied);
            if result.is_ok() {
                self.up[i] = true;
            } else if !self.up[i] {
                continue; // down since the start: it must come up, it cannot break
            }
            if let Err(error) = result {
                let name = |n: NodeId| self.inv.nodes[n].name.clone();
                let order = order
                    .iter()
                    .map(|s| format!("#{s}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                return Err(CheckError::Broken {
                    client: name(l.client),
                    server: name(l.server),
                    mutual: l.mutual,
                    after_step,
                    order,
                    error,
                });
            }
        }
        Ok(())
    }

    fn handshake(&self, l: &Link, files: &[Files]) -> Result<(), HandshakeError> {
        let ca = &self.inv.cas[self.plan.ca].name;
        // What the node's software loads: its stores where it has them, else its PEM files.
        let endpoint = |n: NodeId| {
            let node = &self.inv.nodes[n];
            let p = node.paths(ca);
            crate::materials::forms::served(node, &p, &|path| files[n].get(path).cloned())
        };
        let (cb, cc, ck) = endpoint(l.client);
        let (sb, sc, sk) = endpoint(l.server);
        let server_name = self.inv.nodes[l.server].server_name();
        handshake(
            Endpoint {
                bundle_pem: &cb,
                chain_pem: &cc,
                key_pem: &ck,
            },
            Endpoint {
                bundle_pem: &sb,
                chain_pem: &sc,
                key_pem: &sk,
            },
            server_name,
            l.mutual,
            None,
        )
    }

    /// After a rotation, every member trusts only the new root and presents a new leaf.
    /// After a rollback, every member trusts only the old anchor (and its foreign ones) and
    /// no longer presents a new-generation leaf. After either, no chain carries the cross
    /// certificate.
    fn check_final(&self, files: &[Files]) -> Result<(), CheckError> {
        let rollback = self.plan.mode == Mode::Rollback;
        if self.plan.mode != Mode::Rotate && !rollback {
            return Ok(());
        }
        let ca = &self.inv.cas[self.plan.ca].name;
        let touched: HashSet<NodeId> = self.plan.steps.iter().map(|s| s.node).collect();
        for n in self.inv.members(self.plan.ca) {
            let node = &self.inv.nodes[n];
            let untouched_ok = rollback && files[n] == self.prepared.initial[n];
            if !touched.contains(&n) && !untouched_ok {
                return Err(CheckError::Incomplete {
                    node: node.name.clone(),
                    what: "the plan never visits it".into(),
                });
            }
            let p = node.paths(ca);
            let bundle = files[n].get(&p.trust_bundle);
            if !self.prepared.expect.holds(n, bundle) {
                let roots = bundle.map(|b| count_certs(b)).unwrap_or(0);
                let which = if rollback { "old" } else { "new" };
                let what = format!(
                    "its trust bundle holds {roots} certificate(s) but not exactly the {which} \
                     anchor and the foreign ones it started with, in order"
                );
                return Err(CheckError::Incomplete {
                    node: node.name.clone(),
                    what,
                });
            }
            if let Some(cross) = &self.prepared.cross {
                // The certificate file, and the chain its stores hold (what is served).
                let (_, served, _) =
                    crate::materials::forms::served(node, &p, &|path| files[n].get(path).cloned());
                let chains = [files[n].get(&p.cert).cloned().unwrap_or_default(), served];
                if chains.iter().any(|c| ders(c).contains(cross)) {
                    return Err(CheckError::Incomplete {
                        node: node.name.clone(),
                        what: format!(
                            "its chain {} (or a store of it) still carries the cross \
                             certificate, which no verifier needs once the run is over (one \
                             of its generations retires)",
                            p.cert
                        ),
                    });
                }
            }
            let must_change = !rollback || self.prepared.starts_swapped[n];
            if must_change && files[n].get(&p.cert) == self.prepared.initial[n].get(&p.cert) {
                let what = if rollback {
                    "it still presents its new-generation certificate"
                } else {
                    "it still presents its old certificate"
                }
                .to_string();
                return Err(CheckError::Incomplete {
                    node: node.name.clone(),
                    what,
                });
            }
        }
        Ok(())
    }
}
