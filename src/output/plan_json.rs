//! `certroll plan --format json`: the versioned JSON plan (docs/plan.md), written as it is
//! serialized so that a plan of 100,000 nodes is never held twice in memory.

use std::io::{self, Write};

use serde::Serialize;

use super::{PlanView, JSON_VERSION};
use crate::plan::{Action, ChainMode, Mode};

#[derive(Serialize)]
struct JsonPlan<'a> {
    version: u32,
    ca: &'a str,
    mode: Mode,
    strategy: crate::plan::Strategy,
    chain: ChainMode,
    generation: JsonGenerations,
    waves: usize,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
    steps: JsonSteps<'a>,
    order: JsonOrder<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    unrepaired: Vec<JsonUnrepaired<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pools: Vec<super::plan_restarts::JsonPool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    restarts: Vec<super::plan_restarts::JsonRestarts>,
}

#[derive(Serialize)]
struct JsonUnrepaired<'a> {
    node: &'a str,
    critical: bool,
    message: &'a str,
}

#[derive(Serialize)]
struct JsonGenerations {
    current: Option<u32>,
    next: Option<u32>,
}

#[derive(Serialize)]
struct JsonStep<'a> {
    id: usize,
    node: &'a str,
    actions: &'a [Action],
    after: &'a [usize],
    wave: usize,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    reasons: &'a [String],
}

/// The plan for scripts (format version [`JSON_VERSION`], see docs/plan.md).
pub fn json(view: &PlanView<'_>) -> String {
    let mut out = Vec::new();
    // Invariant: writing into a Vec cannot fail, and serde_json writes UTF-8.
    let _ = json_to(view, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`json`], written to `out` as it is serialized (no copy of the whole plan in memory).
pub fn json_to(view: &PlanView<'_>, out: &mut impl Write) -> io::Result<()> {
    let plan = view.plan;
    let doc = JsonPlan {
        version: JSON_VERSION,
        ca: &view.inv.cas[plan.ca].name,
        mode: plan.mode,
        strategy: plan.strategy,
        chain: plan.chain,
        generation: JsonGenerations {
            current: view.current,
            next: view.next,
        },
        waves: plan.wave_count(),
        notes: &plan.notes,
        steps: JsonSteps(*view),
        order: JsonOrder(*view),
        unrepaired: plan
            .unrepaired
            .iter()
            .map(|u| JsonUnrepaired {
                node: &view.inv.nodes[u.node].name,
                critical: u.critical,
                message: &u.message,
            })
            .collect(),
        pools: super::plan_restarts::json_pools(view),
        restarts: super::plan_restarts::json_restarts(view),
    };
    serde_json::to_writer_pretty(&mut *out, &doc).map_err(io::Error::from)?;
    out.write_all(b"\n")
}

/// The steps of a plan, serialized one by one as they are read.
struct JsonSteps<'a>(PlanView<'a>);

impl Serialize for JsonSteps<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let view = &self.0;
        s.collect_seq(view.plan.steps.iter().map(|st| {
            JsonStep {
                id: st.id,
                node: view.inv.nodes[st.node].name.as_str(),
                actions: &st.actions,
                after: &st.after,
                wave: st.wave,
                reasons: crate::plan::routine::need_of(view.plan, st.node)
                    .map_or(&[][..], |n| &n.reasons[..]),
            }
        }))
    }
}

/// The node order of a plan, by name.
struct JsonOrder<'a>(PlanView<'a>);

impl Serialize for JsonOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let view = &self.0;
        s.collect_seq(
            view.plan
                .order
                .iter()
                .map(|&n| view.inv.nodes[n].name.as_str()),
        )
    }
}
