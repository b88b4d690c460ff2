//! Routine maintenance: a leaf that expires within `renew_before` is renewed, and nothing
//! else on the fleet changes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use time::{Duration, OffsetDateTime};

use certroll::inventory;
use certroll::pki::{issue_leaf, CaStore};

use crate::support::cli::{pem_certs, Control};
use crate::support::inventory::{FleetInventory, BUNDLE, CERT, KEY, RELOADED};
use crate::support::Fleet;
use crate::{assert_node_on, assert_verify_ok, node_files, on_node, status_steps};

/// Replaces a node's leaf and key with a G1 leaf issued `age` ago (so it expires
/// `leaf_validity - age` from now), as if it had been installed back then.
fn age_leaf(fleet: &Fleet, ctl: &Control, node: &str, age: Duration) {
    let inv = inventory::load(&ctl.inventory).expect("the test inventory loads");
    let store = CaStore::new(&inv.state_dir);
    let spec = &inv.cas[0];
    let g1 = store
        .current(spec)
        .expect("read the CA store")
        .expect("the CA exists after bootstrap");
    let n = &inv.nodes[inv.node_id(node).expect("node is in the inventory")];
    let leaf = issue_leaf(spec, &g1, node, &n.sans(), OffsetDateTime::now_utc() - age)
        .expect("issue a back-dated leaf");
    fs::write(on_node(fleet, node, CERT), &leaf.cert_pem).expect("write the aged leaf");
    let mut key = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(on_node(fleet, node, KEY))
        .expect("open the node's key");
    key.write_all(leaf.key_pem.as_bytes())
        .expect("write the aged key");
}

#[test]
fn renew_replaces_only_the_expiring_leaf_and_leaves_bundles_alone() {
    let fleet = Fleet::start(&["lb1", "app1", "db1"]);
    let inv = FleetInventory::new(&fleet)
        .ca("leaf_validity", "90d")
        .ca("renew_before", "30d")
        .link("lb1", "app1")
        .mutual_link("app1", "db1");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);

    // app1's leaf now expires in 5 days, well within renew_before.
    age_leaf(&fleet, &ctl, "app1", Duration::days(85));
    let before: Vec<[Vec<u8>; 3]> = ["lb1", "app1", "db1"]
        .iter()
        .map(|n| node_files(&fleet, n))
        .collect();
    for node in ["lb1", "app1", "db1"] {
        fs::remove_file(on_node(&fleet, node, RELOADED)).expect("clear the reload marker");
    }

    let run = ctl.apply_ok(&[]);
    assert_eq!(
        status_steps(&ctl),
        vec![("app1".into(), "renew".into(), "done".into())],
        "the run holds one renew step, for app1 only\n{run}"
    );
    let header = ctl
        .journal()
        .into_iter()
        .rfind(|r| r["record"] == "run-start")
        .expect("the journal records the run");
    assert_eq!(
        header["params"]["renew"],
        serde_json::json!(["app1"]),
        "journal header: {header}"
    );

    let after: Vec<[Vec<u8>; 3]> = ["lb1", "app1", "db1"]
        .iter()
        .map(|n| node_files(&fleet, n))
        .collect();
    for (i, node) in ["lb1", "app1", "db1"].iter().enumerate() {
        assert!(
            before[i][0] == after[i][0],
            "node {node}'s trust bundle {BUNDLE} must stay byte-identical on a renew\n{run}"
        );
    }
    for i in [0, 2] {
        assert!(
            before[i] == after[i],
            "node {} was not due and must be untouched\n{run}",
            ["lb1", "app1", "db1"][i]
        );
        assert!(
            !on_node(&fleet, ["lb1", "app1", "db1"][i], RELOADED).exists(),
            "a node without changes must not be reloaded\n{run}"
        );
    }
    assert!(
        before[1][1] != after[1][1],
        "app1's leaf was replaced\n{run}"
    );
    assert!(
        before[1][2] != after[1][2],
        "app1's key was replaced\n{run}"
    );
    assert_node_on(&fleet, "app1", 1, &ctl.ca_pem(1));
    let leaf = &pem_certs(&on_node(&fleet, "app1", CERT))[0];
    let left = leaf.not_after - OffsetDateTime::now_utc();
    assert!(
        left > Duration::days(85),
        "the renewed leaf is valid for a full leaf_validity again, not {left}\n{run}"
    );
    assert_verify_ok(&ctl);
    ctl.apply_ok(&[]).expect_output("nothing to do");
}
