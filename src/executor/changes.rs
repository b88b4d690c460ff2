//! What a step changes, told to the node's commands: the `{changes}` placeholder (`bundle`,
//! `leaf` or `bundle,leaf`) of `reload`, `reload_trust` and `confirm`, and the choice of
//! `reload_trust` over `reload` for a step that changes the trust bundle.
//!
//! Much software reloads its leaf on a signal but reads its trusted CAs only at start (etcd,
//! mosquitto): with `reload_trust` it is restarted only by the steps that change its bundle,
//! and only those count against its pool (see [`crate::plan::restarts`]).

use crate::inventory::{Inventory, Node};
use crate::plan::restarts::step_reloads;
use crate::plan::{Action, Step};

/// `bundle`, `leaf` or `bundle,leaf`: what `actions` change on the node.
pub fn changes_of(actions: &[Action]) -> &'static str {
    let bundle = actions.iter().any(|a| changes_bundle(*a));
    let leaf = actions
        .iter()
        .any(|a| !changes_bundle(*a) || *a == Action::Install);
    match (bundle, leaf) {
        (true, true) => "bundle,leaf",
        (true, false) => "bundle",
        _ => "leaf",
    }
}

fn changes_bundle(a: Action) -> bool {
    matches!(
        a,
        Action::Install
            | Action::TrustAdd
            | Action::TrustPrune
            | Action::TrustRestore
            | Action::TrustDropNew
    )
}

/// The node as `step` runs it: `reload_trust` as its reload when the step changes the bundle
/// and the node has one, `{changes}` filled in its commands, and no reload nor confirm for
/// a trust-prune written without a restart (`restart_on_prune = false`; the running process
/// keeps its old trust, so only the files can be confirmed). `None`: the node as it is.
pub(super) fn node_for(inv: &Inventory, step: &Step) -> Option<Node> {
    let node = &inv.nodes[step.node];
    let trust = inv
        .pools
        .reload_trust(step.node)
        .filter(|_| changes_of(&step.actions).starts_with("bundle"));
    let told = |c: &Option<String>| c.as_deref().is_some_and(|c| c.contains("{changes}"));
    let deferred = !step_reloads(inv, step);
    if trust.is_none() && !deferred && !told(&node.reload) && !told(&node.confirm) {
        return None;
    }
    let changes = changes_of(&step.actions);
    let fill = |c: &str| crate::shell::fill(c, &[("changes", changes)]);
    let mut out = node.clone();
    out.reload = trust
        .map(str::to_string)
        .or(out.reload)
        .as_deref()
        .map(fill);
    out.confirm = out.confirm.as_deref().map(fill);
    if deferred {
        out.reload = None;
        out.confirm = None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_says_what_it_changes() {
        assert_eq!(changes_of(&[Action::TrustAdd]), "bundle");
        assert_eq!(changes_of(&[Action::LeafSwap]), "leaf");
        assert_eq!(changes_of(&[Action::Renew]), "leaf");
        assert_eq!(
            changes_of(&[Action::TrustAdd, Action::LeafSwap]),
            "bundle,leaf"
        );
        assert_eq!(changes_of(&[Action::Install]), "bundle,leaf");
        assert_eq!(changes_of(&[Action::LeafRestore]), "leaf");
        assert_eq!(changes_of(&[Action::TrustDropNew]), "bundle");
    }
}
