//! Phases during a rotation, the safety verdict, and the order violations that explain
//! a failing link; then the JSON and text renderings of such reports.

use super::{kinds, link, Fleet};
use crate::exit;
use crate::output::verify::{json, text};
use crate::output::Style;
use crate::verify::{Generation, LinkResult, Phase};

fn phases(f: &Fleet, r: &crate::verify::Report) -> Vec<(String, Phase)> {
    ["lb1", "app1", "db1"]
        .iter()
        .map(|n| (n.to_string(), r.cas[0].nodes[f.id(n)].phase))
        .collect()
}

fn phase(r: &crate::verify::Report, f: &Fleet, n: &str) -> Phase {
    r.cas[0].nodes[f.id(n)].phase
}

#[test]
fn every_step_of_a_phased_rotation_is_reported_safe() {
    let mut f = Fleet::new();
    f.rotating();
    let r = f.run();
    assert!(phases(&f, &r).iter().all(|(_, p)| *p == Phase::Old));
    assert_eq!(r.exit_code(), exit::VERIFY_OK);

    // Every node trusts both; app1's verifiers (lb1, db1) are confirmed: app1 switches.
    for n in ["lb1", "app1", "db1"] {
        f.set(n, &[1, 2], 1);
    }
    assert_eq!(phase(&f.run(), &f, "lb1"), Phase::TrustingBoth);
    f.set("app1", &[1, 2], 2);
    let r = f.run();
    assert_eq!(phase(&r, &f, "app1"), Phase::Switched);
    assert_eq!(phase(&r, &f, "db1"), Phase::TrustingBoth);
    assert_eq!(r.cas[0].safe(), Some(true));
    assert_eq!(r.exit_code(), exit::VERIFY_OK, "{}", r.summary());

    // All leaves switched; lb1 only verifies app1, so it may prune.
    f.set("lb1", &[1, 2], 2);
    f.set("db1", &[1, 2], 2);
    f.set("lb1", &[2], 2);
    let r = f.run();
    assert_eq!(phase(&r, &f, "lb1"), Phase::Pruned);
    assert_eq!(r.cas[0].safe(), Some(true));
    assert!(r.cas[0].links.iter().all(|l| l.order_violations.is_empty()));
    assert_eq!(r.exit_code(), exit::VERIFY_OK);
}

#[test]
fn leaf_swap_before_the_verifier_trusts_next_is_named() {
    let mut f = Fleet::new();
    f.rotating();
    f.set("db1", &[1, 2], 1);
    f.set("app1", &[1, 2], 2); // lb1 still trusts only G1
    let r = f.run();
    let l = link(&r, "lb1", "app1");
    assert!(matches!(l.result, LinkResult::Failed { .. }));
    assert_eq!(
        l.order_violations,
        ["leaf swap too early: app1 presents a G2 leaf but lb1 does not trust G2 yet"]
    );
    assert_eq!(phase(&r, &f, "lb1"), Phase::Old);
    assert_eq!(r.cas[0].safe(), Some(false));
    assert_eq!(r.exit_code(), exit::VERIFY_CRITICAL);
}

#[test]
fn prune_before_the_peer_switched_is_named() {
    let mut f = Fleet::new();
    f.rotating();
    f.set("db1", &[2], 2); // db1 pruned, but app1 still presents a G1 leaf (mutual)
    let r = f.run();
    let l = link(&r, "app1", "db1");
    assert!(
        l.order_violations
            .iter()
            .any(|v| v.starts_with("prune too early: db1")),
        "{l:?}"
    );
    // db1 presents a G2 leaf to app1, which trusts only G1: both directions are wrong.
    assert!(l
        .order_violations
        .iter()
        .any(|v| v.starts_with("leaf swap too early: db1")));
    assert_eq!(r.cas[0].safe(), Some(false));
}

#[test]
fn irregular_state_and_stale_anchor_after_rotation() {
    let mut f = Fleet::new();
    f.rotating();
    f.set("lb1", &[2], 1); // trusts only next, presents current: no step produces this
    let r = f.run();
    assert_eq!(phase(&r, &f, "lb1"), Phase::Irregular);
    assert!(kinds(&r, "lb1").contains(&"irregular-phase".to_string()));

    // After the rotation: G2 current, G1 archived; a bundle still holding G1 is stale.
    let mut g = Fleet::new();
    g.known = crate::verify::Known::default();
    g.known.add(Generation::Current, 2, &g.g2.pem()).unwrap();
    g.known.add(Generation::Previous, 1, &g.g1.pem()).unwrap();
    for n in ["lb1", "app1", "db1"] {
        g.set(n, &[2], 2);
    }
    g.set("app1", &[1, 2], 2);
    let r = g.run();
    assert_eq!(phase(&r, &g, "app1"), Phase::Stale);
    assert_eq!(phase(&r, &g, "lb1"), Phase::Current);
    assert_eq!(kinds(&r, "app1"), ["stale-anchor"]);
    assert_eq!(r.exit_code(), exit::VERIFY_WARNING);
    assert_eq!(
        r.cas[0].nodes[g.id("app1")].anchors[0].generation,
        Generation::Previous
    );
}

#[test]
fn json_is_versioned_and_parses() {
    let mut f = Fleet::new();
    f.rotating();
    f.set("db1", &[1, 2], 1);
    f.set("app1", &[1, 2], 2);
    let v: serde_json::Value = serde_json::from_str(&json(&f.run())).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["status"], "critical");
    assert_eq!(v["exit_code"], 2);
    let ca = &v["cas"][0];
    assert_eq!(ca["ca"], "internal");
    assert_eq!(ca["generation"]["current"], 1);
    assert_eq!(ca["generation"]["next"], 2);
    assert_eq!(ca["rotating"], true);
    assert_eq!(ca["safe"], false);
    let app1 = ca["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "app1")
        .unwrap();
    assert_eq!(app1["phase"], "switched");
    assert_eq!(app1["leaf"]["generation"], "next");
    assert_eq!(app1["key_mode"], "0600");
    let l = ca["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["server"] == "app1")
        .unwrap();
    assert_eq!(l["result"], "failed");
    assert_eq!(l["kind"], "unknown-issuer");
    assert_eq!(l["side"], "client");
    assert_eq!(l["server_name"], "app1.internal");
    assert!(l["order_violations"][0]
        .as_str()
        .unwrap()
        .contains("leaf swap too early"));
}

#[test]
fn text_has_node_and_link_tables_and_summary() {
    let f = Fleet::new();
    f.remove("db1", "key.pem");
    let out = text(&f.run(), Style::plain());
    assert!(out.contains("CA internal (G1)"), "{out}");
    assert!(
        out.contains("NODE") && out.contains("PHASE") && out.contains("LINK"),
        "{out}"
    );
    assert!(out.contains("app1 ⇄ db1"), "{out}");
    assert!(out.contains("lb1 → app1"), "{out}");
    assert!(
        out.contains("private key nodes/db1/key.pem on node db1 does not exist"),
        "{out}"
    );
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("verify: 3 nodes, 2 links — CRITICAL: "),
        "{last}"
    );
    assert!(!out.contains('\x1b'), "plain style has no escape codes");
}
