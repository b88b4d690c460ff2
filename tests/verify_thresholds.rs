//! `certroll verify`'s two expiry windows through the real binary on a local fleet:
//! `--warn-within` and `--critical-within`, their `[verify]` defaults in the inventory,
//! the order rule, and the CA certificates themselves checked, not only the leaves.

mod support;

use support::local::{LocalFleet, Settings};

/// Leaves live 4 days (renewed 2 days before), the CA 20 days.
const SHORT: [(&str, &str); 3] = [
    ("validity", "20d"),
    ("leaf_validity", "4d"),
    ("renew_before", "2d"),
];

fn kinds(report: &serde_json::Value, node: &str) -> Vec<String> {
    let nodes = report["cas"][0]["nodes"].as_array().expect("nodes");
    let n = nodes.iter().find(|n| n["node"] == node).expect("the node");
    n["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            format!(
                "{}:{}",
                f["kind"].as_str().unwrap_or("?"),
                f["severity"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

#[test]
fn a_leaf_expiring_within_the_critical_window_is_critical_exit_2() {
    let fleet = LocalFleet::ops(&SHORT);
    fleet.apply_ok(&[]);
    // Within 5 days but not within 3: a warning.
    let (run, report) = fleet.verify_json(&["--warn-within", "5d", "--critical-within", "3d"]);
    assert_eq!(run.code, 1, "{run}");
    assert!(
        kinds(&report, "app").contains(&"expiring:warning".to_string()),
        "{run}"
    );
    // Within 5 days: critical.
    let (run, report) = fleet.verify_json(&["--warn-within", "5d", "--critical-within", "5d"]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        kinds(&report, "app").contains(&"expiring:critical".to_string()),
        "{run}"
    );
    let text = fleet.certroll(&["verify", "--warn-within", "5d", "--critical-within", "5d"]);
    text.expect_code(2).expect_stdout("CRITICAL");
}

#[test]
fn critical_within_longer_than_warn_within_is_refused_with_exit_64() {
    let mut fleet = LocalFleet::ops(&SHORT);
    fleet.apply_ok(&[]);
    let run = fleet.certroll(&["verify", "--warn-within", "2d", "--critical-within", "3d"]);
    run.expect_code(64)
        .expect_output("--critical-within 3d is longer than the warning window 2d (--warn-within)");
    assert!(run.stdout.is_empty(), "{run}");
    // Against the inventory's warning window, named as such.
    fleet.edit(|s| s.tables("[verify]\nwarn_within = \"2d\"\n"));
    let run = fleet.certroll(&["verify", "--critical-within", "3d"]);
    run.expect_code(64).expect_output("warn_within in [verify]");
    // Both in the inventory: refused at load, with the position (exit 78).
    fleet.edit(|s| s.tables("[verify]\nwarn_within = \"2d\"\ncritical_within = \"3d\"\n"));
    let run = fleet.certroll(&["verify"]);
    run.expect_code(78)
        .expect_output("critical_within 3d in [verify] is longer");
}

#[test]
fn inventory_defaults_set_both_windows() {
    let fleet = Settings::ops(&SHORT)
        .tables("[verify]\nwarn_within = \"6d\"\ncritical_within = \"5d\"\n")
        .write()
        .with_node_dirs();
    fleet.apply_ok(&[]);
    let (run, report) = fleet.verify_json(&[]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        kinds(&report, "db").contains(&"expiring:critical".to_string()),
        "{run}"
    );
    // The command line wins over the inventory.
    let (run, _) = fleet.verify_json(&["--warn-within", "1d", "--critical-within", "1d"]);
    assert_eq!(run.code, 0, "{run}");
}

#[test]
fn the_ca_certificate_itself_is_checked_once_per_ca() {
    let fleet = LocalFleet::ops(&SHORT);
    fleet.apply_ok(&[]);
    // The CA expires in 20 days, the leaves in 4: a 25-day window catches both, a 10-day
    // critical window only the leaves.
    let (run, report) = fleet.verify_json(&["--warn-within", "25d", "--critical-within", "10d"]);
    assert_eq!(run.code, 2, "{run}");
    let ca = &report["cas"][0];
    let finding = ca["findings"]
        .as_array()
        .expect("CA findings")
        .iter()
        .find(|f| f["kind"] == "ca-cert-expiring")
        .unwrap_or_else(|| panic!("no CA certificate finding\n{run}"));
    assert_eq!(finding["severity"], "warning", "{run}");
    assert_eq!(finding["generation"], 1);
    assert_eq!(finding["check"], "ca_certificate");
    assert!(
        finding["message"]
            .as_str()
            .expect("message")
            .contains("certroll ca extend internal"),
        "{run}"
    );
    assert_eq!(
        ca["ca_certificates"]
            .as_array()
            .expect("CA certificates")
            .len(),
        1
    );
    // Within the critical window: critical, and said in the summary.
    let run = fleet.certroll(&["verify", "--warn-within", "25d", "--critical-within", "25d"]);
    run.expect_code(2).expect_stdout("CA certificate expiring");
}
