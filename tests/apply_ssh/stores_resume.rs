//! A store that breaks between two runs stops the next one before it writes anything:
//! an unfinished rotation, or an unfinished rollback, is resumed only once every node's
//! password file and stores pass the same check as a new run's (docs/layout.md#other-forms).
//! Each run is left unfinished by a confirm that fails while `/srv/certroll-node/stuck`
//! exists on app1, then a store of app1 is broken, and the resumption must exit 78 naming
//! the file with every node's directory, the journal and the CA store as they were.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::node_tree;
use crate::on_node;
use crate::stores::{inventory, write_password, KEYSTORE, PASS};
use crate::support::cli::Control;
use crate::support::Fleet;

const STUCK: &str = "/srv/certroll-node/stuck";

/// lb1 ⇄ app1 with app1's stores (tests/apply_ssh/stores.rs); app1 confirms nothing while
/// `STUCK` exists. Bootstrapped.
fn bootstrapped(fleet: &Fleet) -> Control {
    write_password(fleet, "app1-secret\n", 0o600);
    let inv = inventory(fleet, "modern")
        .node_key("app1", "confirm", &format!("test ! -e {STUCK}"))
        .node_key("app1", "confirm_timeout", "1s");
    let ctl = Control::new(fleet, &inv);
    ctl.apply_ok(&[]).expect_output("complete");
    ctl
}

/// Runs `args` with app1 stuck, which must leave the run unfinished (exit 75).
fn unfinished(fleet: &Fleet, ctl: &Control, args: &[&str]) {
    fs::write(on_node(fleet, "app1", STUCK), "").expect("create the stuck flag");
    ctl.certroll(args)
        .expect_code(75)
        .expect_output("did not confirm");
    fs::remove_file(on_node(fleet, "app1", STUCK)).expect("remove the stuck flag");
    assert_eq!(ctl.status()["status"], "incomplete");
}

/// What a refused run must leave as it was: every node's directory, the journal, the CA
/// store.
type Snapshot = (
    Vec<std::collections::BTreeMap<String, String>>,
    Vec<u8>,
    Vec<u8>,
);

fn snapshot(fleet: &Fleet, ctl: &Control) -> Snapshot {
    let nodes = fleet.names().iter().map(|n| node_tree(fleet, n)).collect();
    let journal = crate::support::cli::read(&ctl.state_dir().join("journal.jsonl"));
    let current = crate::support::cli::read(&ctl.ca_dir().join("current"));
    let next = crate::support::cli::read(&ctl.ca_dir().join("next"));
    (nodes, journal, [current, next].concat())
}

/// Ways a store of app1 breaks between two runs: each breaks it, names the file the refusal
/// must name and what it must say, and repairs it.
struct Breakage {
    file: &'static str,
    says: &'static str,
    break_it: fn(&Fleet),
    repair: fn(&Fleet),
}

fn chmod(fleet: &Fleet, mode: u32) {
    let p = on_node(fleet, "app1", PASS);
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod the password file");
}

fn aside(fleet: &Fleet) -> std::path::PathBuf {
    on_node(fleet, "app1", KEYSTORE).with_extension("aside")
}

const BREAKAGES: [Breakage; 3] = [
    Breakage {
        file: PASS,
        says: "readable by every user",
        break_it: |f| chmod(f, 0o644),
        repair: |f| chmod(f, 0o600),
    },
    Breakage {
        file: PASS,
        says: "does not exist",
        break_it: |f| fs::remove_file(on_node(f, "app1", PASS)).expect("remove the password"),
        repair: |f| write_password(f, "app1-secret\n", 0o600),
    },
    Breakage {
        file: KEYSTORE,
        says: "directory",
        break_it: |f| {
            let ks = on_node(f, "app1", KEYSTORE);
            fs::rename(&ks, aside(f)).expect("move the keystore aside");
            fs::create_dir(&ks).expect("a directory in the keystore's place");
        },
        repair: |f| {
            let ks = on_node(f, "app1", KEYSTORE);
            fs::remove_dir(&ks).expect("remove the directory");
            fs::rename(aside(f), &ks).expect("put the keystore back");
        },
    },
];

/// Resuming the unfinished run with `args` is refused, for every breakage, with exit 78,
/// the file named and nothing changed anywhere.
fn refused_while_broken(fleet: &Fleet, ctl: &Control, args: &[&str]) {
    for b in &BREAKAGES {
        (b.break_it)(fleet);
        let before = snapshot(fleet, ctl);
        let run = ctl.certroll(args);
        run.expect_code(78)
            .expect_output("refusing to resume run")
            .expect_output(b.file)
            .expect_output(b.says)
            .expect_output("nothing was changed");
        assert!(
            !run.output().contains("app1-secret"),
            "the password is never shown\n{run}"
        );
        assert!(
            snapshot(fleet, ctl) == before,
            "a refused resumption changed a node, the journal or the CA store\n{run}"
        );
        (b.repair)(fleet);
    }
}

#[test]
fn resuming_an_unfinished_rotation_over_a_store_broken_since_is_refused_with_exit_78() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let ctl = bootstrapped(&fleet);
    unfinished(&fleet, &ctl, &["apply", "--yes", "--rotate"]);
    refused_while_broken(&fleet, &ctl, &["apply", "--yes"]);
    // Repaired, the same run resumes and completes.
    let run = ctl.apply_ok(&[]);
    run.expect_output("resuming run")
        .expect_output("rotation of CA internal complete");
    ctl.certroll(&["verify"]).expect_code(0);
}

#[test]
fn resuming_an_unfinished_rollback_over_a_store_broken_since_is_refused_with_exit_78() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let ctl = bootstrapped(&fleet);
    unfinished(&fleet, &ctl, &["apply", "--yes", "--rotate"]);
    // Starting the rollback over a broken store is refused like any new run.
    chmod(&fleet, 0o644);
    let before = snapshot(&fleet, &ctl);
    ctl.certroll(&["apply", "--yes", "--rollback"])
        .expect_code(78)
        .expect_output("refusing to start")
        .expect_output(PASS);
    assert!(snapshot(&fleet, &ctl) == before, "nothing changed");
    chmod(&fleet, 0o600);
    unfinished(&fleet, &ctl, &["apply", "--yes", "--rollback"]);
    assert_eq!(ctl.status()["mode"], "rollback");
    // Both ways of resuming it: `apply --rollback` and plain `apply`.
    refused_while_broken(&fleet, &ctl, &["apply", "--yes", "--rollback"]);
    refused_while_broken(&fleet, &ctl, &["apply", "--yes"]);
    let run = ctl.apply_ok(&["--rollback"]);
    run.expect_output("resuming run");
    assert_eq!(ctl.current_generation(), 1, "{run}");
    ctl.certroll(&["verify"]).expect_code(0);
}
