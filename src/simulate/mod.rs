//! `plan --check`: run a plan on in-memory copies of every node's files, in many orders
//! the dependencies allow, and after every step handshake every link for real (rustls).
//!
//! The files come from [`crate::materials`], the same code `apply` deploys with, signed
//! by throwaway CAs that mirror the inventory's (names, algorithms, validity): the check
//! proves the order and the file contents, not the operator's keys. [`Start`] says where
//! the fleet starts (an imported generation, foreign anchors, missing files).

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

use crate::inventory::{Inventory, Link, NodeId};
use crate::materials::{changes_for, MaterialError, NodeBase};
use crate::pki::PkiError;
use crate::plan::{Mode, Plan, StepId};
use crate::tls::HandshakeError;

mod routine;
mod sim;
mod start;
use sim::Sim;
pub use start::Start;
use start::{initial_files, Files, SimCas};

/// How thoroughly to check.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Random orders to try, besides the plan's own order and the "riskiest first" order.
    pub random_orders: usize,
    pub seed: u64,
    /// Up to this many steps, also try, for every step, an order that runs it as early as
    /// its prerequisites allow: any missing gate is then found, not just likely found.
    pub earliest_limit: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            random_orders: 64,
            seed: 0x00c3_7201,
            earliest_limit: 2_000,
        }
    }
}

/// What a successful check covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckReport {
    pub orders: usize,
    pub steps: usize,
    pub links: usize,
    /// Distinct handshakes actually performed (identical file states are cached).
    pub handshakes: usize,
}

/// Why a check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("could not make the simulation's certificates")]
    Pki(#[from] PkiError),
    #[error("could not make the simulation's files")]
    Material(#[from] MaterialError),
    /// A link failed its handshake at some point of some order.
    #[error("link {client} → {server}{} broke after step {after}: {error}\n  order: {order}",
        if *mutual { " (mutual)" } else { "" },
        after = after_step.map(|s| format!("#{s}")).unwrap_or_else(|| "none (initial state)".into()))]
    Broken {
        client: String,
        server: String,
        mutual: bool,
        after_step: Option<StepId>,
        order: String,
        error: HandshakeError,
    },
    /// A routine plan ran to the end and a link still fails that no left-alone problem explains.
    #[error("after the whole plan, link {client} → {server} still fails, and no problem left alone explains it: {error}")]
    NotRepaired {
        client: String,
        server: String,
        error: HandshakeError,
    },
    /// The plan ran to the end but left a node without the expected files.
    #[error("after the whole plan, node {node} does not hold what it should: {what}")]
    Incomplete { node: String, what: String },
}

/// Per step, the file changes it makes (computed once, replayed in every order).
struct Prepared {
    changes: Vec<Vec<(String, Option<Vec<u8>>)>>,
    initial: Vec<Files>,
    bootstrap: bool,
    /// What every bundle must hold after a rotation, checked independently of how the
    /// materials compose it: the new anchor alone of the managed certificates, and the
    /// node's initial foreign certificates, in their order.
    expect: FinalBundles,
    /// Links may be down before the plan runs; each must come up and then stay up.
    may_start_down: bool,
    /// Per node, whether it starts on a new-generation leaf (a rollback must replace it).
    starts_swapped: Vec<bool>,
    /// The cross certificate (DER): no chain may carry it once a rotation or a rollback
    /// is over, when one of its two generations retires.
    cross: Option<Vec<u8>>,
    /// Routine plans: per node, whether a link through it may stay down at the end (its
    /// bundle does not trust the current CA, or its needs are left alone).
    excused: Vec<bool>,
    /// Routine plans: per node, whether its bundle trusts another CA (see `excused`).
    untrusting: Vec<bool>,
}

fn prepare(inv: &Inventory, plan: &Plan, start: &Start) -> Result<Prepared, CheckError> {
    let spec = &inv.cas[plan.ca];
    let now = OffsetDateTime::now_utc();
    let cas = SimCas::make(spec, start, now)?;
    let gens = cas.generations();
    let as_pairs =
        |c: Vec<crate::materials::FileChange>| c.into_iter().map(|c| (c.path, c.data)).collect();

    let bootstrap = plan.mode == Mode::Bootstrap;
    let (mut initial, mut bases) = if bootstrap {
        let none = vec![Files::new(); inv.nodes.len()];
        (none, vec![NodeBase::simulated(); inv.nodes.len()])
    } else {
        initial_files(inv, plan, &cas, start, now)?
    };
    let mut excused = vec![false; inv.nodes.len()];
    let mut untrusting = vec![false; inv.nodes.len()];
    if plan.mode == Mode::Renew {
        (untrusting, excused) = routine::start(inv, plan, &cas.current, now, &mut initial)?;
    }
    let mut changes = Vec::with_capacity(plan.steps.len());
    // Each node's key as it holds it: the forms a step makes on the node take it.
    let mut keys: Vec<Option<Vec<u8>>> = (0..inv.nodes.len())
        .map(|n| initial[n].get(&inv.nodes[n].paths(&spec.name).key).cloned())
        .collect();
    // In id order: a node's own steps are chained, so each step sees the chain its node
    // presents (and the key it holds) when it runs, whatever order the others take.
    for s in &plan.steps {
        let node = &inv.nodes[s.node];
        let mut step = changes_for(
            &s.actions,
            node,
            spec,
            gens,
            plan.chain,
            &bases[s.node],
            now,
        )?;
        let p = node.paths(&spec.name);
        let held = keys[s.node].as_deref();
        crate::materials::forms::assemble_simulated(&mut step, node, &p, held, &bases[s.node])?;
        if let Some(c) = step.iter().find(|c| c.path == p.cert) {
            bases[s.node].chain = c.data.clone();
        }
        if let Some(c) = step.iter().find(|c| c.path == p.key) {
            keys[s.node] = c.data.clone();
        }
        changes.push(as_pairs(step));
    }
    let managed = cas.managed();
    let ca_name = &spec.name;
    let expect = FinalBundles {
        foreign: initial
            .iter()
            .enumerate()
            .map(|(n, f)| {
                let p = inv.nodes[n].paths(ca_name);
                let certs = f.get(&p.trust_bundle).map(|b| ders(b)).unwrap_or_default();
                match spec.bundle_foreign {
                    crate::inventory::BundleForeign::Keep => {
                        certs.into_iter().filter(|d| !managed.contains(d)).collect()
                    }
                    crate::inventory::BundleForeign::Drop => Vec::new(),
                }
            })
            .collect(),
        anchor: if plan.mode == Mode::Rollback {
            cas.current.anchor_der()
        } else {
            cas.next.anchor_der()
        },
        managed,
    };
    Ok(Prepared {
        changes,
        initial,
        bootstrap,
        expect,
        may_start_down: start.has_broken_links(),
        starts_swapped: (0..inv.nodes.len())
            .map(|n| start.rotated(n).contains(&crate::plan::Action::LeafSwap))
            .collect(),
        cross: cas.cross.as_deref().and_then(crate::chains::first_der),
        excused,
        untrusting,
    })
}

/// Runs the plan in its own order, in the "riskiest first" order (always the ready step
/// with the highest id, i.e. swaps and prunes as early as the gates allow), for every
/// step an order that runs it as early as possible (plans up to `earliest_limit` steps),
/// and in `opts.random_orders` random orders; handshakes every link after every step.
pub fn check(inv: &Inventory, plan: &Plan, opts: CheckOptions) -> Result<CheckReport, CheckError> {
    check_with(inv, plan, opts, &Start::default())
}

/// [`check`], starting from the files a rotation left behind: `applied[n]` lists the
/// rotation actions already applied on node `n` (missing entries: none). This is how a
/// rollback plan is proved from the mixed state it starts in.
pub fn check_from(
    inv: &Inventory,
    plan: &Plan,
    applied: &[Vec<crate::plan::Action>],
    opts: CheckOptions,
) -> Result<CheckReport, CheckError> {
    let start = Start {
        rotated: applied.to_vec(),
        ..Start::default()
    };
    check_with(inv, plan, opts, &start)
}

/// [`check`] from the fleet `start` describes (an imported generation, foreign anchors,
/// missing files, leaves of neither generation).
pub fn check_with(
    inv: &Inventory,
    plan: &Plan,
    opts: CheckOptions,
    start: &Start,
) -> Result<CheckReport, CheckError> {
    let prepared = prepare(inv, plan, start)?;
    let links: Vec<Link> = inv.links_of(plan.ca).copied().collect();
    let mut sim = Sim {
        inv,
        plan,
        prepared: &prepared,
        links: &links,
        cache: HashMap::new(),
        up: Vec::new(),
    };
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut orders = vec![
        (0..plan.steps.len()).collect::<Vec<_>>(),
        linear_extension(plan, |ready| ready.len() - 1),
    ];
    if plan.steps.len() <= opts.earliest_limit {
        orders.extend((0..plan.steps.len()).map(|s| earliest(plan, s)));
    }
    for _ in 0..opts.random_orders {
        orders.push(linear_extension(plan, |ready| {
            rng.random_range(0..ready.len())
        }));
    }
    for order in &orders {
        sim.run(order)?;
    }
    Ok(CheckReport {
        orders: orders.len(),
        steps: plan.steps.len(),
        links: links.len(),
        handshakes: sim.cache.len(),
    })
}

/// An order of all steps that respects `after`; `pick` chooses among the ready steps
/// (kept sorted by id).
fn linear_extension(plan: &Plan, mut pick: impl FnMut(&[StepId]) -> usize) -> Vec<StepId> {
    let n = plan.steps.len();
    let mut waiting: Vec<usize> = plan.steps.iter().map(|s| s.after.len()).collect();
    let mut dependents = vec![Vec::new(); n];
    for s in &plan.steps {
        for &a in &s.after {
            dependents[a].push(s.id);
        }
    }
    let mut ready: Vec<StepId> = (0..n).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while !ready.is_empty() {
        let s = ready.remove(pick(&ready));
        order.push(s);
        for &d in &dependents[s] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                let at = ready.partition_point(|&r| r < d);
                ready.insert(at, d);
            }
        }
    }
    order
}

/// An order that runs step `target` right after its ancestors, then everything else,
/// each part in id order (ids are topological).
fn earliest(plan: &Plan, target: StepId) -> Vec<StepId> {
    let mut needed = vec![false; plan.steps.len()];
    let mut stack = vec![target];
    while let Some(s) = stack.pop() {
        if !needed[s] {
            needed[s] = true;
            stack.extend(&plan.steps[s].after);
        }
    }
    let first = (0..plan.steps.len()).filter(|&s| needed[s]);
    first
        .chain((0..plan.steps.len()).filter(|&s| !needed[s]))
        .collect()
}

/// See [`Prepared::expect`].
struct FinalBundles {
    foreign: Vec<Vec<Vec<u8>>>,
    anchor: Vec<u8>,
    managed: Vec<Vec<u8>>,
}

impl FinalBundles {
    fn holds(&self, n: NodeId, bundle: Option<&Vec<u8>>) -> bool {
        let Some(certs) = bundle.map(|b| ders(b)) else {
            return false;
        };
        let (mine, foreign): (Vec<Vec<u8>>, Vec<Vec<u8>>) =
            certs.into_iter().partition(|d| self.managed.contains(d));
        mine == [self.anchor.clone()] && foreign == self.foreign[n]
    }
}

/// DER of every certificate of a PEM file (none if it is not PEM).
fn ders(pem: &[u8]) -> Vec<Vec<u8>> {
    pem::parse_many(pem)
        .map(|v| {
            v.into_iter()
                .filter(|b| b.tag() == "CERTIFICATE")
                .map(pem::Pem::into_contents)
                .collect()
        })
        .unwrap_or_default()
}

fn count_certs(pem: &[u8]) -> usize {
    String::from_utf8_lossy(pem)
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
}

/// True when the node holds its bundle, certificate and key for the plan's CA.
fn complete(inv: &Inventory, plan: &Plan, n: NodeId, files: &Files) -> bool {
    let p = inv.nodes[n].paths(&inv.cas[plan.ca].name);
    [p.trust_bundle, p.cert, p.key]
        .iter()
        .all(|f| files.contains_key(f))
}
