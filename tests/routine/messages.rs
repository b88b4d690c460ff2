//! What users see around routine runs: the plan's mode and
//! title, `--rotate` before any bootstrap, `verify` before any bootstrap, plurals, the end
//! of a run said once, and a torn journal line warned about.

use crate::{ok, show, stderr, stdout, verify_json, Fleet};

#[test]
fn routine_plan_of_an_existing_ca_is_not_called_bootstrap() {
    let fleet = Fleet::bootstrapped();
    std::fs::remove_file(fleet.path("lb", "ca.pem")).expect("remove a bundle");
    let plan: serde_json::Value =
        serde_json::from_slice(&ok(fleet.run(&["plan", "--format", "json"])).stdout)
            .expect("plan JSON");
    assert_eq!(plan["mode"], "renew", "{plan:#}");
    let text = stdout(&ok(fleet.run(&["plan"])));
    assert!(!text.contains("Bootstrap"), "{text}");
    assert!(
        text.starts_with("Routine run of CA internal (G1)"),
        "{text}"
    );

    let fresh = Fleet::fresh();
    let plan: serde_json::Value =
        serde_json::from_slice(&ok(fresh.run(&["plan", "--format", "json"])).stdout)
            .expect("plan JSON");
    assert_eq!(
        plan["mode"], "bootstrap",
        "a never-created CA bootstraps: {plan:#}"
    );
}

#[test]
fn plan_rotate_before_bootstrap_refuses_like_apply_rotate() {
    let fleet = Fleet::fresh();
    let plan = fleet.run(&["plan", "--rotate"]);
    let apply = fleet.run(&["apply", "--rotate", "--yes"]);
    assert_eq!(plan.status.code(), Some(77), "{}", show(&plan));
    assert_eq!(apply.status.code(), Some(77), "{}", show(&apply));
    assert!(
        stderr(&plan).contains("nothing to rotate"),
        "{}",
        show(&plan)
    );
    assert_eq!(stderr(&plan), stderr(&apply), "the same refusal");
    assert!(
        stdout(&plan).is_empty(),
        "no plan is printed: {}",
        show(&plan)
    );
}

#[test]
fn verify_before_bootstrap_counts_every_missing_file_and_hints_at_apply() {
    let fleet = Fleet::fresh();
    let out = fleet.run(&["verify"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let text = stdout(&out);
    // 3 nodes × (bundle, certificate, key).
    assert!(text.contains("9 files missing"), "{text}");
    assert!(text.contains("CA never created"), "{text}");
    assert!(text.contains("run `certroll apply` to bootstrap"), "{text}");
    let (_, report) = verify_json(&fleet);
    let missing = report["cas"][0]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .flat_map(|n| n["findings"].as_array().cloned().unwrap_or_default())
        .filter(|f| f["kind"] == "missing")
        .count();
    assert_eq!(missing, 9, "{report:#}");
}

#[test]
fn one_step_is_not_called_one_steps_and_the_run_end_is_said_once() {
    let fleet = Fleet::bootstrapped();
    fleet.chmod("lb", "key.pem", 0o644);
    let text = stdout(&ok(fleet.run(&["plan"])));
    assert!(
        text.contains("1 node · 2 links · 1 step in 1 wave"),
        "{text}"
    );
    assert!(text.contains("Wave 1 · 1 step,"), "{text}");
    let out = ok(fleet.run(&["apply", "--yes"]));
    let err = stderr(&out);
    assert!(!err.contains("1 steps"), "{}", show(&out));
    assert!(err.contains(": 1 step, 0 already done"), "{}", show(&out));
    let ends = err.lines().filter(|l| l.contains(" complete")).count();
    assert_eq!(
        ends,
        1,
        "the end of the run is announced once: {}",
        show(&out)
    );
    let verify = stdout(&ok(fleet.run(&["verify"])));
    assert!(verify.contains("verify: 3 nodes, 2 links"), "{verify}");
}

#[test]
fn a_torn_journal_line_is_warned_about_once_with_its_line_number() {
    let fleet = Fleet::bootstrapped();
    let journal = fleet.dir.path().join(".certroll/journal.jsonl");
    let mut text = std::fs::read_to_string(&journal).expect("read the journal");
    let lines = text.lines().count();
    text.push_str("{\"record\":\"step-do");
    std::fs::write(&journal, text).expect("tear the journal");
    let out = fleet.run(&["status"]);
    let err = stderr(&out);
    let warning = format!("ignored line {} of journal", lines + 1);
    assert_eq!(err.matches(&warning).count(), 1, "{}", show(&out));
    fleet.chmod("db", "key.pem", 0o644);
    let out = ok(fleet.run(&["apply", "--yes"]));
    assert_eq!(stderr(&out).matches(&warning).count(), 1, "{}", show(&out));
    // The new run started after the torn line: it is not warned about forever.
    let out = ok(fleet.run(&["status"]));
    assert_eq!(
        stderr(&out).matches("ignored line").count(),
        0,
        "{}",
        show(&out)
    );
}
