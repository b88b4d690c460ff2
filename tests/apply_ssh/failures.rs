//! Runs that cannot finish: a node down in the middle of a rotation (its dependents wait,
//! the rest completes, a later run resumes), confirm commands that fail or hang, and a
//! second `apply` while one holds the lock.

use std::thread;
use std::time::{Duration, Instant};

use crate::support::cli::Control;
use crate::support::inventory::FleetInventory;
use crate::support::Fleet;
use crate::{assert_node_on, journaled_steps, node_files, status_steps};

/// The status entry of `node`'s step doing `actions`: `(id, state, error, waiting_on)`.
fn step_status(
    status: &serde_json::Value,
    node: &str,
    actions: &str,
) -> (u64, String, String, Vec<u64>) {
    let step = status["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| {
            let a: Vec<&str> = s["actions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str())
                .collect();
            s["node"] == node && a.join("+") == actions
        })
        .unwrap_or_else(|| panic!("status has no {actions} step on {node}: {status:#}"));
    (
        step["id"].as_u64().expect("step id"),
        step["state"].as_str().unwrap_or_default().to_string(),
        step["error"].as_str().unwrap_or_default().to_string(),
        step["waiting_on"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_u64())
            .collect(),
    )
}

#[test]
fn a_node_down_holds_back_only_its_dependents_and_a_later_run_resumes() {
    let fleet = Fleet::start(&["lb1", "app1", "web1", "db1"]);
    // Two independent one-way links: lb1 → app1 and web1 → db1.
    let inv = FleetInventory::new(&fleet)
        .link("lb1", "app1")
        .link("web1", "db1");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);
    let app1_before = node_files(&fleet, "app1");
    fleet.stop("app1");

    let run = ctl.certroll(&["apply", "--yes", "--rotate"]);
    run.expect_code(75).expect_output("retry");
    let status = ctl.status();
    assert_eq!(status["status"], "incomplete", "{status:#}\n{run}");
    let (swap, state, error, _) = step_status(&status, "app1", "leaf-swap");
    assert_eq!(state, "failed", "app1's leaf-swap failed\n{status:#}");
    assert!(error.contains("app1"), "the error names the node: {error}");
    // lb1 may drop G1 only once app1 presents a G2 leaf: it waits for the failed step.
    let (_, state, _, waiting_on) = step_status(&status, "lb1", "trust-prune");
    assert_eq!(state, "waiting", "lb1's trust-prune waits\n{status:#}");
    assert!(
        waiting_on.contains(&swap),
        "lb1's trust-prune waits on app1's leaf-swap #{swap}: {waiting_on:?}"
    );
    let journal = journaled_steps(&ctl);
    for (node, actions) in [("lb1", "trust-prune"), ("app1", "trust-prune")] {
        assert!(
            !journal
                .iter()
                .any(|s| s.node == node && s.actions == actions),
            "{node} {actions} depends on the failed step and must never start: {journal:?}"
        );
    }
    // The independent link completed its whole rotation.
    for node in ["web1", "db1"] {
        for (n, actions, state) in status_steps(&ctl).into_iter().filter(|s| s.0 == node) {
            assert_eq!(state, "done", "{n} {actions} is independent of app1\n{run}");
        }
        assert_node_on(&fleet, node, 2, &ctl.ca_pem(2));
    }
    assert!(
        node_files(&fleet, "app1") == app1_before,
        "the stopped node was not written\n{run}"
    );

    fleet.start_node("app1");
    let resumed = ctl.apply_ok(&[]);
    resumed
        .expect_output("resuming run")
        .expect_output("rotation of CA internal complete");
    ctl.certroll(&["status"]).expect_code(0);
    assert_eq!(ctl.status()["status"], "complete");
    for node in fleet.names() {
        assert_node_on(&fleet, &node, 2, &ctl.ca_pem(2));
    }
}

#[test]
fn a_failing_confirm_command_leaves_the_run_incomplete_and_says_why() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let inv = FleetInventory::new(&fleet)
        .node_key("app1", "confirm", "false")
        .node_key("app1", "confirm_timeout", "2s")
        .link("lb1", "app1");
    let ctl = Control::new(&fleet, &inv);

    let run = ctl.certroll(&["apply", "--yes"]);
    run.expect_code(75)
        .expect_output("confirm command `false` failed")
        .expect_output("node app1 did not confirm within 2s")
        .expect_output("last: exited 1");
    let (_, state, error, _) = step_status(&ctl.status(), "app1", "install");
    assert_eq!(state, "failed", "{run}");
    assert!(
        error.contains("`false`"),
        "status quotes the confirm command: {error}"
    );
    let (_, state, _, _) = step_status(&ctl.status(), "lb1", "install");
    assert_eq!(state, "done", "lb1 confirms without a command\n{run}");
}

#[test]
fn a_confirm_command_that_hangs_past_its_timeout_is_reported() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let inv = FleetInventory::new(&fleet)
        .node_key("app1", "confirm", "sleep 30")
        .node_key("app1", "confirm_timeout", "2s")
        .link("lb1", "app1");
    let ctl = Control::new(&fleet, &inv);

    let started = Instant::now();
    let run = ctl.certroll(&["apply", "--yes"]);
    let took = started.elapsed();
    run.expect_code(75)
        .expect_output("node app1 did not confirm within 2s")
        .expect_output("`sleep 30`");
    assert!(
        run.output().contains("timed out") || run.output().contains("time limit"),
        "the hung confirm is reported as a timeout\n{run}"
    );
    assert!(
        took < Duration::from_secs(25),
        "the confirm was cut off at its timeout, not waited for ({took:?})\n{run}"
    );
}

#[test]
fn a_second_apply_while_one_runs_is_refused_naming_the_holder() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let inv = FleetInventory::new(&fleet)
        .default_key("confirm", "sleep 5")
        .link("lb1", "app1");
    let ctl = Control::new(&fleet, &inv);

    let first = ctl.spawn(&["apply", "--yes"]);
    let pid = first.pid();
    // Wait until the first run is executing steps (it then holds the lock for ≥ 5 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    let journal = ctl.state_dir().join("journal.jsonl");
    // Read as text: a line may be half-written while the first run appends to it.
    while !std::fs::read_to_string(&journal)
        .unwrap_or_default()
        .contains(r#""record":"step-start""#)
    {
        assert!(
            Instant::now() < deadline,
            "the first apply did not start a step within 60 s"
        );
        thread::sleep(Duration::from_millis(50));
    }

    let second = ctl.certroll(&["apply", "--yes"]);
    second
        .expect_code(75)
        .expect_output("holds the lock")
        .expect_output(&format!("pid {pid}"));

    let first = first.wait();
    first.expect_code(0);
    assert!(
        ctl.status()["status"] == "complete",
        "the first run finished undisturbed\n{first}"
    );
}
