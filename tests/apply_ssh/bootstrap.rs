//! First contact with an empty fleet: bootstrap, the refusal to act without a terminal or
//! `--yes`, and the NDJSON event stream of `--format json`.

use crate::support::cli::{mode, Control};
use crate::support::inventory::{FleetInventory, BUNDLE, CERT, KEY};
use crate::support::Fleet;
use crate::{assert_node_on, assert_verify_ok, on_node, status_steps};

/// lb1 → app1 (one-way), app1 ↔ db1 (mutual).
fn three_tier(fleet: &Fleet) -> FleetInventory<'_> {
    FleetInventory::new(fleet)
        .link("lb1", "app1")
        .mutual_link("app1", "db1")
}

#[test]
fn bootstrap_installs_every_node_and_verify_passes() {
    let fleet = Fleet::start(&["lb1", "app1", "db1"]);
    let ctl = Control::new(&fleet, &three_tier(&fleet));

    let run = ctl.apply_ok(&[]);
    run.expect_output("complete");

    assert_eq!(ctl.current_generation(), 1, "bootstrap creates G1\n{run}");
    let key = ctl.ca_dir().join("g1").join("ca.key");
    assert_eq!(mode(&key), 0o600, "CA key {} must be 0600", key.display());
    for node in ["lb1", "app1", "db1"] {
        assert_node_on(&fleet, node, 1, &ctl.ca_pem(1));
    }
    let steps = status_steps(&ctl);
    assert_eq!(
        steps.len(),
        3,
        "one step per node in a bootstrap: {steps:?}"
    );
    assert!(
        steps.iter().all(|(_, _, state)| state == "done"),
        "every bootstrap step is done: {steps:?}"
    );
    ctl.certroll(&["status"]).expect_code(0);
    assert_verify_ok(&ctl);

    // A second run finds every leaf valid and changes nothing.
    let again = ctl.apply_ok(&[]);
    again.expect_output("nothing to do");
}

#[test]
fn apply_without_yes_and_without_a_terminal_refuses_and_changes_nothing() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let ctl = Control::new(&fleet, &FleetInventory::new(&fleet).link("lb1", "app1"));

    let run = ctl.certroll(&["apply"]);
    run.expect_code(64).expect_output("--yes");
    assert!(
        run.output().contains("not a terminal"),
        "the refusal says why\n{run}"
    );
    assert!(
        !ctl.ca_dir().exists(),
        "no CA may be created before the operator agreed ({} exists)\n{run}",
        ctl.ca_dir().display()
    );
    for node in ["lb1", "app1"] {
        for remote in [BUNDLE, CERT, KEY] {
            let p = on_node(&fleet, node, remote);
            assert!(
                !p.exists(),
                "node {node} got {remote} from a refused run\n{run}"
            );
        }
    }
}

#[test]
fn json_format_prints_ndjson_events_ending_with_run_finished() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let ctl = Control::new(&fleet, &FleetInventory::new(&fleet).link("lb1", "app1"));

    let run = ctl.apply_ok(&["--format", "json"]);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}\n{run}"))
        })
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| {
            assert!(e["time"].is_string(), "event without time: {e}\n{run}");
            e["event"]
                .as_str()
                .unwrap_or_else(|| panic!("event without an event tag: {e}\n{run}"))
        })
        .collect();
    assert_eq!(kinds.first(), Some(&"run-started"), "{kinds:?}\n{run}");
    assert_eq!(kinds.last(), Some(&"run-finished"), "{kinds:?}\n{run}");
    for node in ["lb1", "app1"] {
        assert!(
            events
                .iter()
                .any(|e| e["event"] == "step-done" && e["node"] == node),
            "no step-done event for {node}: {kinds:?}\n{run}"
        );
    }
}
