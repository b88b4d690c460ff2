//! Relays: a node that the control host cannot reach directly (its inventory host name
//! resolves only inside the fleet) is bootstrapped and rotated through a jump node.

use std::net::ToSocketAddrs;

use crate::support::cli::Control;
use crate::support::inventory::FleetInventory;
use crate::support::Fleet;
use crate::{assert_node_on, assert_verify_ok};

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
