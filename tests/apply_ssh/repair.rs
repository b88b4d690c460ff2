//! Routine `apply` over SSH repairs what `verify` reports: a key that
//! does not match its certificate, a trust bundle that trusts nothing and a key others
//! can read are each replaced in one routine run, which `plan` shows with its reasons.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::cli::{mode, Control};
use crate::support::inventory::{FleetInventory, BUNDLE, KEY};
use crate::support::Fleet;
use crate::{assert_node_on, assert_verify_ok, on_node, status_steps};

#[test]
fn routine_apply_repairs_broken_nodes_over_ssh() {
    let fleet = Fleet::start(&["lb1", "app1", "db1"]);
    let inv = FleetInventory::new(&fleet)
        .link("lb1", "app1")
        .mutual_link("app1", "db1");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);

    // lb1 holds app1's key, db1's bundle is garbage, app1's key is world-readable.
    let app1_key = fs::read(on_node(&fleet, "app1", KEY)).expect("read app1's key");
    fs::write(on_node(&fleet, "lb1", KEY), &app1_key).expect("swap lb1's key");
    fs::write(on_node(&fleet, "db1", BUNDLE), "garbage\n").expect("break db1's bundle");
    fs::set_permissions(
        on_node(&fleet, "app1", KEY),
        fs::Permissions::from_mode(0o644),
    )
    .expect("open app1's key");
    ctl.certroll(&["verify"]).expect_code(2);

    let plan = ctl.certroll(&["plan"]);
    plan.expect_code(0)
        .expect_stdout("Routine run of CA")
        .expect_stdout("does not belong to certificate")
        .expect_stdout("has mode 0644")
        .expect_stdout("holds no certificate");

    let run = ctl.apply_ok(&[]);
    let mut steps = status_steps(&ctl);
    steps.sort();
    assert_eq!(
        steps,
        [
            ("app1".into(), "renew".into(), "done".into()),
            ("db1".into(), "install".into(), "done".into()),
            ("lb1".into(), "renew".into(), "done".into()),
        ],
        "{run}"
    );
    for node in ["lb1", "app1", "db1"] {
        assert_node_on(&fleet, node, 1, &ctl.ca_pem(1));
    }
    assert_eq!(mode(&on_node(&fleet, "app1", KEY)), 0o600, "{run}");
    assert_ne!(
        fs::read(on_node(&fleet, "app1", KEY)).expect("read"),
        app1_key,
        "the exposed key is replaced: {run}"
    );
    // The backup of the exposed key is closed as well.
    let dir = on_node(&fleet, "app1", KEY);
    let dir = dir.parent().expect("key directory");
    for e in fs::read_dir(dir).expect("list the key directory") {
        let p = e.expect("entry").path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("key.pem.") && name.ends_with(".bak") {
            assert_eq!(mode(&p), 0o600, "backup {name}: {run}");
        }
    }
    assert_verify_ok(&ctl);
    ctl.apply_ok(&[]).expect_output("nothing to do");
}
