//! Rollover to a new CA generation: phased, ordered (single visit) and cross-signed runs
//! complete and leave every node on G2 alone, with G1 archived and no backup (no old key)
//! left on the nodes; a cross-signed run serves the cross certificate while it runs and no
//! chain carries it at the end;
//! the ordered strategy is refused, with the cycle, on a mutual link.

use std::fs;

use crate::support::cli::{openssl_verify, pem_subjects, Control, Run};
use crate::support::inventory::{FleetInventory, BUNDLE, CERT, KEY, PROOF, RELOADED};
use crate::support::Fleet;
use crate::{
    assert_node_on, assert_verify_ok, ca_subject, journaled_steps, node_files, on_node,
    status_steps,
};

/// Names of the `*.bak` files in the node's `tls/` directory.
fn backups(fleet: &Fleet, node: &str) -> Vec<String> {
    let dir = on_node(fleet, node, BUNDLE)
        .parent()
        .expect("bundle has a directory")
        .to_path_buf();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bak"))
        .collect();
    names.sort();
    names
}

/// The entries of the node's hidden store (`.certroll-internal` beside the certificate),
/// without its bookkeeping.
pub(crate) fn store_entries(fleet: &Fleet, node: &str) -> Vec<String> {
    let store = on_node(fleet, node, CERT).with_file_name(".certroll-internal");
    let mut names: Vec<String> = fs::read_dir(&store)
        .unwrap_or_else(|e| panic!("list {}: {e}", store.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !certroll::layout::BOOKKEEPING.contains(&n.as_str()))
        .collect();
    names.sort();
    names
}

/// Bootstraps the fleet, rotates with `flags`, and checks the end state of every node.
pub(crate) fn bootstrap_then_rotate(
    fleet: &Fleet,
    inv: &FleetInventory,
    flags: &[&str],
) -> Control {
    bootstrap_then_rotate_runs(fleet, inv, &[], flags).0
}

/// [`bootstrap_then_rotate`], the bootstrap run with `bootstrap_flags` too; returns both
/// runs (e.g. their NDJSON events under `--format json`).
pub(crate) fn bootstrap_then_rotate_runs(
    fleet: &Fleet,
    inv: &FleetInventory,
    bootstrap_flags: &[&str],
    flags: &[&str],
) -> (Control, Run, Run) {
    let ctl = Control::new(fleet, inv);
    let bootstrap = ctl.apply_ok(bootstrap_flags);
    let mut args = vec!["--rotate"];
    args.extend_from_slice(flags);
    let run = ctl.apply_ok(&args);
    if flags.contains(&"json") {
        // NDJSON carries events only; the run ends with a complete run-finished.
        let last = run.stdout.lines().last().unwrap_or_default();
        assert!(
            last.contains("\"run-finished\"") && last.contains("\"complete\":true"),
            "the rotation finishes complete\n{run}"
        );
    } else {
        run.expect_output("rotation of CA internal complete");
    }

    assert_eq!(ctl.current_generation(), 2, "G2 is current\n{run}");
    assert!(
        !ctl.ca_dir().join("next").exists(),
        "no rotation is left pending\n{run}"
    );
    let archived = ctl.archived_pem(1);
    assert!(
        archived.exists(),
        "G1 is archived at {}, never deleted\n{run}",
        archived.display()
    );
    assert_eq!(pem_subjects(&archived), vec![ca_subject(1)]);
    for node in fleet.names() {
        assert_node_on(fleet, &node, 2, &ctl.ca_pem(2));
        let baks = backups(fleet, &node);
        assert!(
            baks.is_empty(),
            "node {node} has backups beside its files: {baks:?}\n{run}"
        );
        let store = store_entries(fleet, &node);
        assert_eq!(
            store.len(),
            2,
            "after a complete run node {node} keeps only its current version: {store:?}\n{run}"
        );
    }
    let steps = status_steps(&ctl);
    assert!(
        steps.iter().all(|(_, _, state)| state == "done"),
        "every step of the rotation is done: {steps:?}\n{run}"
    );
    assert_verify_ok(&ctl);
    (ctl, bootstrap, run)
}

#[test]
fn phased_rotation_on_a_mutual_fleet_moves_every_node_to_g2() {
    let fleet = Fleet::start(&["lb1", "app1", "db1"]);
    let inv = FleetInventory::new(&fleet)
        .with_proof_cert()
        .link("lb1", "app1")
        .mutual_link("app1", "db1");
    let ctl = bootstrap_then_rotate(&fleet, &inv, &[]);
    let steps = status_steps(&ctl);
    for action in ["trust-add", "leaf-swap", "trust-prune"] {
        assert!(
            steps.iter().any(|(_, a, _)| a == action),
            "a phased run has {action} steps: {steps:?}"
        );
    }
    for node in fleet.names() {
        let proof = on_node(&fleet, &node, PROOF);
        assert!(
            !proof.exists(),
            "node {node}'s cross certificate goes once G1 is pruned ({})",
            proof.display()
        );
    }
}

#[test]
fn ordered_rotation_on_an_acyclic_one_way_fleet_moves_every_node_to_g2() {
    let fleet = Fleet::start(&["lb1", "app1", "app2", "db1"]);
    let inv = FleetInventory::new(&fleet)
        .link("lb1", "app1")
        .link("lb1", "app2")
        .link("app1", "db1")
        .link("app2", "db1");
    let ctl = bootstrap_then_rotate(&fleet, &inv, &["--strategy", "ordered"]);
    let status = ctl.status();
    assert_eq!(status["strategy"], "ordered", "{status:#}");
    let steps = status_steps(&ctl);
    for node in fleet.names() {
        let visits: Vec<&str> = steps
            .iter()
            .filter(|(n, _, _)| *n == node)
            .map(|(_, a, _)| a.as_str())
            .collect();
        assert_eq!(
            visits.len(),
            2,
            "ordered visits node {node} once to switch and once to prune: {steps:?}"
        );
        assert!(
            visits[0].contains("leaf-swap") && visits[1] == "trust-prune",
            "node {node}: {visits:?}"
        );
    }
    // Every client switched (confirmed) before any of its servers started switching.
    let journal = journaled_steps(&ctl);
    let switch = |node: &str| {
        journal
            .iter()
            .find(|s| s.node == node && s.actions.contains("leaf-swap"))
            .unwrap_or_else(|| panic!("no leaf-swap of {node} in the journal: {journal:?}"))
    };
    for (client, server) in [
        ("lb1", "app1"),
        ("lb1", "app2"),
        ("app1", "db1"),
        ("app2", "db1"),
    ] {
        let (done, started) = (switch(client).done, switch(server).started);
        assert!(
            done.is_some() && started.is_some() && done < started,
            "{client} must be confirmed before {server} is touched: {journal:?}"
        );
    }
}

/// Where each node's reload command records the chain it serves from then on.
const SERVED: &str = "/srv/certroll-node/served.log";

/// The chains a node served, one per reload, with the checksum of its key at that reload.
fn served(fleet: &Fleet, node: &str) -> Vec<(Vec<certroll::pki::CertInfo>, String)> {
    let log = fs::read_to_string(on_node(fleet, node, SERVED)).unwrap_or_default();
    log.split("reload ")
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (key, chain) = entry.split_once('\n').unwrap_or((entry, ""));
            let chain = certroll::pki::parse_pem_certs(chain.as_bytes())
                .unwrap_or_else(|e| panic!("node {node} served a chain that does not parse: {e}"));
            (chain, key.trim().to_string())
        })
        .collect()
}

/// Issue 20, item 5: the run used to end with every chain still `[leaf, cross(G2←G1)]`
/// after G1 was archived. The cross certificate is served while G1 is in use (a peer that
/// trusts only G1 builds leaf → cross → G1), and each node's prune drops it, keeping the
/// leaf and the key.
#[test]
fn cross_signed_rotation_serves_the_cross_certificate_and_ends_on_g2_without_it() {
    let fleet = Fleet::start(&["lb1", "app1", "db1"]);
    let reload = format!(
        "printf 'reload %s\\n' \"$(cksum < {KEY})\" >> {SERVED} && cat {CERT} >> {SERVED} && touch {RELOADED}"
    );
    let inv = FleetInventory::new(&fleet)
        .default_key("reload", &reload)
        .link("lb1", "app1")
        .mutual_link("app1", "db1");
    let ctl = bootstrap_then_rotate(&fleet, &inv, &["--chain", "cross-signed"]);
    let status = ctl.status();
    assert_eq!(status["chain"], "cross-signed", "{status:#}");
    let cross = ctl.ca_dir().join("g2/cross.pem");
    let cross = &crate::support::cli::pem_certs(&cross)[0];
    for node in fleet.names() {
        let cert = on_node(&fleet, &node, CERT);
        let chain = pem_subjects(&cert);
        assert_eq!(
            chain.len(),
            1,
            "node {node} presents its leaf alone once G1 is retired: {chain:?}"
        );
        if let Err(out) = openssl_verify(&ctl.ca_pem(2), &cert) {
            panic!("node {node}'s leaf does not verify under G2 alone:\n{out}");
        }
        let served = served(&fleet, &node);
        let (bridged, key) = served
            .iter()
            .find(|(c, _)| c.len() == 2 && c[1].der == cross.der)
            .unwrap_or_else(|| panic!("node {node} never served [leaf, cross]: {served:?}"));
        assert_eq!(cross.subject, ca_subject(2));
        assert_eq!(cross.issuer, ca_subject(1));
        let (last, last_key) = served.last().expect("the node was reloaded");
        assert_eq!(
            last.len(),
            1,
            "node {node}'s last reload serves the leaf alone"
        );
        assert_eq!(
            last[0].der, bridged[0].der,
            "node {node}: dropping the cross certificate keeps the leaf"
        );
        assert_eq!(
            last_key, key,
            "node {node}: dropping the cross certificate keeps the key"
        );
    }
    // A peer that still trusted only G1 built leaf → cross → G1 while the run lasted.
    let bridged = ctl.dir.join("bridged.pem");
    let lb1 = served(&fleet, "lb1");
    let (chain, _) = lb1.iter().find(|(c, _)| c.len() == 2).expect("lb1 bridged");
    let pem: String = chain
        .iter()
        .map(|c| certroll::pki::cert_pem(&c.der))
        .collect();
    fs::write(&bridged, pem).unwrap();
    if let Err(out) = openssl_verify(&ctl.archived_pem(1), &bridged) {
        panic!("lb1's chain did not reach G1 through the cross certificate:\n{out}");
    }
}

#[test]
fn ordered_rotation_on_a_mutual_link_is_refused_with_the_cycle() {
    let fleet = Fleet::start(&["app1", "db1"]);
    let inv = FleetInventory::new(&fleet).mutual_link("app1", "db1");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);
    let before: Vec<[Vec<u8>; 3]> = ["app1", "db1"]
        .iter()
        .map(|n| node_files(&fleet, n))
        .collect();

    let run = ctl.certroll(&["apply", "--yes", "--rotate", "--strategy", "ordered"]);
    run.expect_code(64)
        .expect_output("the client→server graph has a cycle");
    let out = run.output();
    assert!(
        out.contains("app1 → db1 → app1") || out.contains("db1 → app1 → db1"),
        "the refusal prints the cycle\n{run}"
    );
    assert!(
        !ctl.ca_dir().join("g2").exists() && !ctl.ca_dir().join("next").exists(),
        "a refused rotation creates no new generation\n{run}"
    );
    for (i, node) in ["app1", "db1"].iter().enumerate() {
        assert!(
            before[i] == node_files(&fleet, node),
            "node {node} must be untouched by a refused rotation\n{run}"
        );
    }
    assert_eq!(ctl.current_generation(), 1);
}
