//! certroll's core promise, end to end: a CA rotation over SSH without one failed handshake.
//!
//! Every node of a real sshd fleet runs a `certroll-peer` that handshakes continuously with
//! the node's real files and reloads only when certroll's `reload` command tells it to.
//! Each scenario asserts that no peer counted a failed handshake and that every link kept
//! handshaking before, during and after certroll's run. The negative control (`naive.rs`)
//! proves the harness sees failures when the order is wrong; `crash.rs` kills certroll
//! mid-rotation and resumes it; `takeover.rs` takes over fleets built with `openssl` by
//! another CA (public-only import, and an intermediate under an offline root).
//!
//! Needs root, sshd and openssl (`scripts/test.sh` installs them).

mod builtin_confirm;
mod checks;
mod crash;
mod harness;
mod naive;
mod node_keys;
mod rollback;
#[path = "../support/mod.rs"]
mod support;
mod takeover;

use std::collections::BTreeMap;

use checks::{assert_all_on_new_generation, assert_peers_serve_files_on_disk, Generations};
use harness::{serial, Zdt, GROWTH};
use support::topology::Topology;

/// lb1, lb2 → app1..app3 (one-way); app1..app3 ⇄ db1, db2 (mutual).
pub fn three_tier() -> Topology {
    Topology::new()
        .one_way(&["lb1", "lb2"], &["app1", "app2", "app3"])
        .mutual(&["app1", "app2", "app3"], &["db1", "db2"])
}

/// Where `(node, action)` started and was done, as positions in certroll's NDJSON events.
fn event_positions(output: &str) -> BTreeMap<(String, String, String), usize> {
    let mut out = BTreeMap::new();
    for (i, line) in output.lines().enumerate() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(event), Some(node)) = (v["event"].as_str(), v["node"].as_str()) else {
            continue;
        };
        for action in v["actions"].as_array().into_iter().flatten() {
            let action = action.as_str().unwrap_or_default().to_string();
            out.insert((event.to_string(), node.to_string(), action), i);
        }
    }
    out
}

/// Checks the real run against the design's gates: a node's leaf is swapped only after every
/// peer that verifies it confirmed the new anchor, and a node's bundle is pruned only after
/// every peer it verifies confirmed its new leaf.
fn assert_gates_respected(topo: &Topology, output: &str) {
    let at = event_positions(output);
    let pos = |event: &str, node: &str, action: &str| {
        *at.get(&(event.into(), node.into(), action.into()))
            .unwrap_or_else(|| panic!("no {event} event for {action} of {node}\n{output}"))
    };
    for link in topo.links() {
        let mut gates = vec![(&link.client, &link.server)];
        if link.mutual {
            gates.push((&link.server, &link.client));
        }
        for (verifier, subject) in gates {
            assert!(
                pos("step-done", verifier, "trust-add") < pos("step-started", subject, "leaf-swap"),
                "{}: leaf-swap of {subject} started before trust-add of {verifier} was confirmed",
                link.label()
            );
            assert!(
                pos("step-done", subject, "leaf-swap")
                    < pos("step-started", verifier, "trust-prune"),
                "{}: trust-prune of {verifier} started before leaf-swap of {subject} was confirmed",
                link.label()
            );
        }
    }
}

/// Rotates with `apply --rotate --yes` while watching the peers; asserts zero downtime,
/// continued traffic after the run, and that every node holds only G2.
fn rotate_without_downtime(mut zdt: Zdt, context: &str) {
    let run = zdt.observed(
        &["apply", "--rotate", "--yes", "--format", "json"],
        "rotate",
    );
    run.assert_zero_downtime(context);
    assert!(
        run.output.contains("\"event\":\"run-finished\""),
        "{context}: no run-finished event\n{}",
        run.output
    );
    assert_gates_respected(&zdt.topo, &run.output);
    eprintln!(
        "{context}: rotation took {:?}, {} successful handshakes during it, 0 failed",
        run.timeline.duration(),
        run.handshakes()
    );

    // The fleet keeps working on G2 alone.
    let after = zdt
        .peers
        .wait_for_growth(&run.after, GROWTH, "traffic after the rotation");
    zdt.assert_no_failures(&after, context);
    // Loaded at start, then trust-add, leaf-swap and trust-prune each reloaded it.
    assert_peers_serve_files_on_disk(&zdt, &after, 4);
    zdt.peers.stop();

    let gens = Generations::of(&zdt, 1, 2);
    assert_all_on_new_generation(&zdt, &gens);
    zdt.certroll(&["verify"])
        .success("verify after the rotation");
    let status = zdt.certroll(&["status"]);
    assert_eq!(
        status.code,
        Some(0),
        "status after the rotation\n{}{}",
        status.stdout,
        status.stderr
    );
}

#[test]
fn three_tier_with_mutual_links_rotates_without_a_failed_handshake() {
    let _one = serial();
    let zdt = Zdt::bootstrapped(three_tier());
    rotate_without_downtime(zdt, "three-tier rotation");
}

#[test]
fn a_cycle_and_a_mutual_pair_rotate_phased_without_a_failed_handshake() {
    let _one = serial();
    // a → b → c → a can never be ordered; the phased strategy needs no order.
    let topo = Topology::new()
        .one_way(&["a"], &["b"])
        .one_way(&["b"], &["c"])
        .one_way(&["c"], &["a"])
        .one_way(&["a"], &["d"])
        .mutual(&["d"], &["e"]);
    let zdt = Zdt::bootstrapped(topo);
    let ordered = zdt.certroll(&["plan", "--rotate", "--strategy", "ordered"]);
    assert_ne!(
        ordered.code,
        Some(0),
        "the single-visit order must be refused on a cycle\n{}{}",
        ordered.stdout,
        ordered.stderr
    );
    rotate_without_downtime(zdt, "rotation of a cycle");
}
