//! The alert rules of docs/operations.md (examples/prometheus/certroll-rules.yml) are
//! valid Prometheus rules (`promtool check rules`), fire as their unit tests say
//! (`promtool test rules`), and use only metrics `certroll verify --format prometheus`
//! prints, with the labels they select on.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::local::LocalFleet;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/prometheus")
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(examples())
        .output()
        .expect("run promtool (scripts/test.sh installs the prometheus package)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alert_rules_are_valid_and_fire_as_their_unit_tests_say() {
    promtool(&["check", "rules", "certroll-rules.yml"]);
    promtool(&["test", "rules", "certroll-rules.test.yml"]);
}

/// The metric names of every `expr:` line of the rules file.
fn metric_names(rules: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in rules.lines().filter_map(|l| l.trim().strip_prefix("expr:")) {
        let words = line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'));
        for w in words {
            if w.starts_with("x509_cert_") || w.starts_with("certroll_") {
                names.insert(w.to_string());
            }
        }
    }
    names
}

#[test]
fn every_metric_the_rules_use_is_in_the_output_of_verify() {
    let rules = std::fs::read_to_string(examples().join("certroll-rules.yml")).expect("rules");
    let used = metric_names(&rules);
    assert!(used.len() >= 6, "{used:?}");
    let fleet = LocalFleet::ops(&[]);
    fleet.apply_ok(&[]);
    let run = fleet.certroll(&["verify", "--format", "prometheus"]);
    run.expect_code(0);
    let printed: BTreeSet<String> = run
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let missing: Vec<&String> = used.difference(&printed).collect();
    assert!(
        missing.is_empty(),
        "rules use metrics verify never prints: {missing:?}\n{run}"
    );
    // The CA rules select the store's certificates by their missing node label, the
    // node rules by its presence: both kinds must be printed.
    assert!(run
        .stdout
        .lines()
        .any(|l| l.starts_with("x509_cert_not_after{") && !l.contains("node=\"")));
    assert!(run
        .stdout
        .lines()
        .any(|l| l.starts_with("x509_cert_not_after{") && l.contains("node=\"app\"")));
}
