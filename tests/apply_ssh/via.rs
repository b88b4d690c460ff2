//! Relays: a node that the control host cannot reach directly (its inventory host name
//! resolves only inside the fleet) is bootstrapped and rotated through a jump node, and
//! waits, untouched, while that jump node is down.

use std::net::ToSocketAddrs;

use crate::support::cli::Control;
use crate::support::inventory::FleetInventory;
use crate::support::Fleet;
use crate::{assert_node_on, assert_verify_ok, journaled_steps, node_files, status_steps};

#[test]
fn a_node_behind_a_jump_host_is_bootstrapped_and_rotated() {
    let fleet = Fleet::start(&["bastion", "app1", "db1"]);
    let hidden = fleet.internal_host("app1");
    assert!(
        (hidden.as_str(), 22).to_socket_addrs().is_err(),
        "{hidden} must not resolve on the control host, or this test proves nothing"
    );
    // app1 only via bastion; db1 only via app1 (a two-hop chain).
    let inv = FleetInventory::new(&fleet)
        .via("app1", "bastion")
        .via("db1", "app1")
        .link("bastion", "app1")
        .mutual_link("app1", "db1");
    let ctl = Control::new(&fleet, &inv);

    ctl.apply_ok(&[]);
    for node in ["bastion", "app1", "db1"] {
        assert_node_on(&fleet, node, 1, &ctl.ca_pem(1));
    }
    let run = ctl.apply_ok(&["--rotate"]);
    run.expect_output("rotation of CA internal complete");
    for node in ["bastion", "app1", "db1"] {
        assert_node_on(&fleet, node, 2, &ctl.ca_pem(2));
    }
    assert_verify_ok(&ctl);
}

#[test]
fn a_node_behind_a_stopped_jump_host_waits_for_it_and_then_resumes() {
    let fleet = Fleet::start(&["bastion", "app1", "db1"]);
    // app1 verifies db1, so its trust-add has no prerequisite and is tried at once.
    let inv = FleetInventory::new(&fleet)
        .via("app1", "bastion")
        .link("bastion", "app1")
        .mutual_link("app1", "db1");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);
    let before = node_files(&fleet, "app1");
    fleet.stop("bastion");

    let run = ctl.certroll(&["apply", "--yes", "--rotate"]);
    run.expect_code(75);
    let steps = status_steps(&ctl);
    let app1: Vec<&(String, String, String)> =
        steps.iter().filter(|(n, _, _)| n == "app1").collect();
    assert!(
        app1.iter().all(|(_, _, state)| state != "done"),
        "app1 cannot be reached while its jump host is down: {steps:?}\n{run}"
    );
    let journal = journaled_steps(&ctl);
    let failed: Vec<&String> = journal
        .iter()
        .filter(|s| s.node == "app1")
        .filter_map(|s| s.failed.as_ref())
        .collect();
    assert!(
        failed
            .iter()
            .any(|e| e.contains("failed to connect through via node bastion on node app1")),
        "app1's failure names app1 and its jump host bastion: {failed:?}\n{run}"
    );
    assert!(
        node_files(&fleet, "app1") == before,
        "app1 was not written\n{run}"
    );

    fleet.start_node("bastion");
    ctl.apply_ok(&[]).expect_output("resuming run");
    for node in ["bastion", "app1", "db1"] {
        assert_node_on(&fleet, node, 2, &ctl.ca_pem(2));
    }
}
