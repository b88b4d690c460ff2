//! Host keys through `apply`: a node missing from known_hosts stops its part of the run
//! with the host, port and fingerprint to check, until `--accept-new-host-keys`; a node
//! whose key changed is refused even with that option.

use std::fs;

use crate::support::cli::Control;
use crate::support::inventory::{FleetInventory, BUNDLE, CERT, KEY};
use crate::support::Fleet;
use crate::{assert_node_on, node_files, on_node, status_steps};

/// Rewrites the fleet's known_hosts without the lines of `node`.
fn forget_host(fleet: &Fleet, node: &str) {
    let path = fleet.known_hosts();
    let port = fleet.node(node).port;
    let text = fs::read_to_string(path).expect("read known_hosts");
    let kept: String = text
        .lines()
        .filter(|l| !l.contains(&format!("]:{port}")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(kept, text, "known_hosts listed {node}");
    fs::write(path, kept).expect("rewrite known_hosts");
}

#[test]
fn unknown_host_key_stops_the_node_until_accept_new_host_keys() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let ctl = Control::new(&fleet, &FleetInventory::new(&fleet).link("lb1", "app1"));
    forget_host(&fleet, "app1");
    let port = fleet.node("app1").port.to_string();
    let fingerprint = fleet.host_fingerprint("app1");

    let run = ctl.certroll(&["apply", "--yes"]);
    run.expect_code(75)
        .expect_output("127.0.0.1")
        .expect_output(&port)
        .expect_output(&fingerprint);
    for remote in [BUNDLE, CERT, KEY] {
        assert!(
            !on_node(&fleet, "app1", remote).exists(),
            "nothing may be written on a node whose host key is unknown ({remote})\n{run}"
        );
    }
    let steps = status_steps(&ctl);
    assert!(
        steps
            .iter()
            .any(|(n, _, state)| n == "app1" && state == "failed"),
        "app1's step failed: {steps:?}\n{run}"
    );
    let kh = fs::read_to_string(fleet.known_hosts()).expect("read known_hosts");
    assert!(
        !kh.contains(&format!("]:{port}")),
        "without the option, known_hosts is not changed:\n{kh}"
    );

    let accepted = ctl.certroll(&["apply", "--yes", "--accept-new-host-keys"]);
    accepted.expect_code(0);
    assert_node_on(&fleet, "app1", 1, &ctl.ca_pem(1));
    let kh = fs::read_to_string(fleet.known_hosts()).expect("read known_hosts");
    let key = fleet.host_public_key("app1");
    assert!(
        kh.lines()
            .any(|l| l.contains(&format!("]:{port}")) && l.contains(&key)),
        "the accepted key of app1 is recorded in known_hosts:\n{kh}\n{accepted}"
    );
    // From now on the node is known: a strict run reaches it.
    ctl.certroll(&["verify"]).expect_code(0);
}

/// Exit code of an apply whose node presents a changed host key: the step fails for
/// good, so the run is incomplete (75), like any step that cannot be carried out.
const CHANGED_KEY_EXIT: i32 = 75;

#[test]
fn changed_host_key_is_refused_even_with_accept_new_host_keys() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let ctl = Control::new(&fleet, &FleetInventory::new(&fleet).link("lb1", "app1"));
    ctl.apply_ok(&[]);
    let before = node_files(&fleet, "app1");
    let known = fs::read_to_string(fleet.known_hosts()).expect("read known_hosts");
    fleet.change_host_key("app1");

    for extra in [&[][..], &["--accept-new-host-keys"][..]] {
        let mut args = vec!["apply", "--yes", "--rotate"];
        args.extend_from_slice(extra);
        let run = ctl.certroll(&args);
        run.expect_code(CHANGED_KEY_EXIT);
        assert!(
            run.output().to_lowercase().contains("changed"),
            "the message says app1's host key changed\n{run}"
        );
        run.expect_output(&fleet.host_fingerprint("app1"));
        assert!(
            node_files(&fleet, "app1") == before,
            "nothing may be written on a node whose host key changed\n{run}"
        );
        assert_eq!(
            fs::read_to_string(fleet.known_hosts()).expect("read known_hosts"),
            known,
            "a changed key is never written to known_hosts\n{run}"
        );
    }
}
