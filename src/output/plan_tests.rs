//! Plan rendering: text by wave with gates, the documented JSON shape, dot.

use super::*;
use crate::inventory::InventoryBuilder;
use crate::plan::{rotate, Strategy};

fn view_fixture() -> (Inventory, Plan) {
    let inv = InventoryBuilder::new()
        .link("lb1", "app1")
        .mutual("app1", "db1")
        .build();
    let plan = rotate(&inv, 0, Strategy::Phased, ChainMode::Plain).unwrap();
    (inv, plan)
}

#[test]
fn text_groups_by_wave_and_names_gates() {
    let (inv, plan) = view_fixture();
    let out = text(
        &PlanView {
            inv: &inv,
            plan: &plan,
            current: Some(1),
            next: Some(2),
        },
        Style::plain(),
    );
    assert!(
        out.starts_with("Rotate CA internal: G1 → G2 · strategy phased · chain plain\n"),
        "{out}"
    );
    assert!(out.contains("Wave 1 · 3 steps, no prerequisites"), "{out}");
    assert!(out.contains("app1 leaf-swap"), "{out}");
    assert!(out.contains("↳ after trust-add on app1, db1, lb1"), "{out}");
    assert!(out.contains("bundle {G2}"), "{out}");
    assert!(!out.contains('\x1b'));
}

#[test]
fn json_matches_the_documented_shape() {
    let (inv, plan) = view_fixture();
    let v: serde_json::Value = serde_json::from_str(&json(&PlanView {
        inv: &inv,
        plan: &plan,
        current: Some(1),
        next: None,
    }))
    .unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["ca"], "internal");
    assert_eq!(v["strategy"], "phased");
    assert_eq!(v["chain"], "plain");
    assert_eq!(v["mode"], "rotate");
    assert_eq!(v["steps"][0]["actions"][0], "trust-add");
    assert!(v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["after"].is_array() && s["wave"].is_u64()));
    assert_eq!(v["order"].as_array().unwrap().len(), 3);
}

#[test]
fn dot_draws_links_and_waves() {
    let (inv, plan) = view_fixture();
    let out = dot(&PlanView {
        inv: &inv,
        plan: &plan,
        current: None,
        next: None,
    });
    assert!(out.starts_with("digraph certroll {"));
    assert!(out.contains("\"app1\" -> \"db1\" [dir=both"));
    assert!(out.contains("cluster_wave1"));
}

fn view<'a>(inv: &'a Inventory, plan: &'a Plan) -> PlanView<'a> {
    PlanView {
        inv,
        plan,
        current: Some(3),
        next: Some(4),
    }
}

#[test]
fn streamed_output_matches_the_strings() {
    let (inv, plan) = view_fixture();
    let v = view(&inv, &plan);
    let mut streamed = Vec::new();
    text_to(&v, Style::plain(), &mut streamed).unwrap();
    assert_eq!(
        String::from_utf8(streamed).unwrap(),
        text(&v, Style::plain())
    );
    let mut streamed = Vec::new();
    json_to(&v, &mut streamed).unwrap();
    let streamed = String::from_utf8(streamed).unwrap();
    assert_eq!(streamed, json(&v));
    assert!(streamed.ends_with("}\n"), "{streamed}");
}

#[test]
fn long_gate_lists_show_six_names_and_count_the_rest() {
    let mut b = InventoryBuilder::new();
    for c in 1..=8 {
        b = b.link(&format!("c{c}"), "srv");
    }
    let inv = b.build();
    let plan = rotate(&inv, 0, Strategy::Phased, ChainMode::Plain).unwrap();
    let out = text(&view(&inv, &plan), Style::plain());
    assert!(
        out.contains("↳ after trust-add on c1, c2, c3, c4, c5, c6 and 2 more\n"),
        "{out}"
    );
    // Every client prunes after the server's swap; each step's description is its own.
    assert!(
        out.contains("#16 srv leaf-swap   new key and leaf from G4\n"),
        "{out}"
    );
    assert_eq!(out.matches("bundle {G3, G4}").count(), 8, "{out}");
    assert_eq!(
        out.matches("↳ after leaf-swap on c1, srv\n").count(),
        1,
        "{out}"
    );
}

#[test]
fn combined_actions_are_labelled_together() {
    let inv = InventoryBuilder::new()
        .link("lb1", "app1")
        .link("app1", "db1")
        .build();
    let plan = rotate(&inv, 0, Strategy::Ordered, ChainMode::Plain).unwrap();
    let out = text(&view(&inv, &plan), Style::plain());
    assert!(out.contains("trust-add + leaf-swap"), "{out}");
    assert!(out.contains("↳ after trust-add+leaf-swap on "), "{out}");
    assert!(
        out.contains("bundle {G3, G4}; new key and leaf from G4"),
        "{out}"
    );
}
