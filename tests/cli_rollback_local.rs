//! Rollback through the real binary on local-transport nodes: a rotation stopped by a
//! confirm that never passes is rolled back to the old CA; the abandoned generation is
//! archived with a note; `status` names the rotation rolled back; a completed rotation
//! refuses `--rollback`; without a terminal and without `--yes` the rollback is refused,
//! word for word, and nothing changes.

mod support;

use support::local::{LocalFleet, NODES};

/// lb → app one-way, app ⇄ db mutual; a node's confirm fails while `nodes/<node>/stuck`
/// exists.
fn fleet() -> LocalFleet {
    LocalFleet::new("CN=Rollback CA")
        .confirm("test -e nodes/{node}/reloaded && test ! -e nodes/{node}/stuck")
        .default_key("confirm_timeout", "1s")
        .write()
}

fn certs(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

/// Bootstraps, then starts a rotation that stops: db never confirms, so app's leaf and
/// every prune wait. Returns the rotation's run id.
fn interrupted_rotation(fleet: &LocalFleet) -> String {
    fleet.certroll(&["apply", "--yes"]).expect_code(0);
    fleet.write_file("nodes/db/stuck", "");
    fleet
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(75);
    // lb trusts both generations and already serves a new leaf: a mixed state.
    assert_eq!(certs(&fleet.read("nodes/lb/ca.pem")), 2);
    fleet.remove("nodes/db/stuck");
    let status = fleet.certroll(&["status", "--format", "json"]);
    let report = status.json();
    assert_eq!(report["mode"], "rotate", "{status}");
    report["run"].as_str().unwrap().to_string()
}

#[test]
fn an_interrupted_rotation_rolls_back_to_the_old_ca() {
    let fleet = fleet();
    let rotation = interrupted_rotation(&fleet);
    let g1 = fleet.read(".certroll/ca/internal/g1/ca.pem");

    fleet
        .certroll(&["plan", "--rollback", "--check"])
        .expect_code(0)
        .expect_stdout("trust-drop-new")
        .expect_stderr("plan check passed");
    let json = fleet.certroll(&["plan", "--rollback", "--format", "json"]);
    let v = json.expect_code(0).json();
    assert_eq!(v["mode"], "rollback", "{json}");

    fleet
        .certroll(&["apply", "--rollback", "--yes"])
        .expect_code(0);
    for node in NODES {
        let bundle = fleet.read(&format!("nodes/{node}/ca.pem"));
        assert_eq!(
            bundle.trim(),
            g1.trim(),
            "bundle of {node}: only the old CA"
        );
    }
    fleet.certroll(&["verify"]).expect_code(0);

    // The old generation stays current; the abandoned one is archived with a note.
    assert_eq!(fleet.read(".certroll/ca/internal/current").trim(), "1");
    assert!(!fleet.path(".certroll/ca/internal/next").exists());
    let note = fleet.read(".certroll/ca/internal/archive/g2/ROLLED-BACK");
    assert!(note.contains(&rotation), "{note}");
    assert!(fleet
        .path(".certroll/ca/internal/archive/g2/ca.key")
        .exists());

    fleet
        .certroll(&["status"])
        .expect_code(0)
        .expect_stdout(&format!("rollback of run {rotation}"))
        // The rollback goes from the new generation back to the old one.
        .expect_stdout("rollback CA internal (G2 → G1)");

    // Nothing left to roll back; routine runs are quiet; a new rotation makes a fresh G3.
    fleet
        .certroll(&["apply", "--rollback", "--yes"])
        .expect_code(77);
    fleet.certroll(&["apply", "--yes"]).expect_code(0);
    fleet
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(0);
    assert_eq!(fleet.read(".certroll/ca/internal/current").trim(), "3");
    fleet.certroll(&["verify"]).expect_code(0);
}

/// Exit 77 (refused in this state), not 64: the command line is right, the state refuses it.
#[test]
fn rollback_without_a_terminal_and_without_yes_refuses_without_confirmation() {
    let fleet = fleet();
    let rotation = interrupted_rotation(&fleet);
    let before = (
        support::cli::tree(&fleet.path("nodes")),
        support::cli::tree(&fleet.ca_dir()),
        fleet.bytes(".certroll/journal.jsonl"),
    );
    let run = fleet.certroll(&["apply", "--rollback"]);
    run.expect_code(64);
    assert!(
        run.stderr.ends_with(
            "error: refusing to change the fleet without confirmation: standard input is not a \
             terminal\n  hint: pass --yes to apply without asking (e.g. from cron)\n"
        ),
        "the exact refusal, last\n{run}"
    );
    assert_eq!(run.stdout, "", "{run}");
    let after = (
        support::cli::tree(&fleet.path("nodes")),
        support::cli::tree(&fleet.ca_dir()),
        fleet.bytes(".certroll/journal.jsonl"),
    );
    assert!(
        after == before,
        "the refused rollback changed something\n{run}"
    );
    let status = fleet.certroll(&["status", "--format", "json"]).json();
    assert_eq!(
        status["mode"], "rotate",
        "the rotation is still the last run"
    );
    assert_eq!(status["run"], rotation.as_str());
}

#[test]
fn a_completed_rotation_refuses_rollback_with_exit_77_not_a_usage_error() {
    let fleet = fleet();
    fleet.certroll(&["apply", "--yes"]).expect_code(0);
    fleet
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(0);
    let before = fleet.read("nodes/app/ca.pem");
    fleet
        .certroll(&["apply", "--rollback", "--yes"])
        .expect_code(77)
        .expect_stderr("new rotation");
    // `plan --rollback` refuses the same way.
    fleet.certroll(&["plan", "--rollback"]).expect_code(77);
    assert_eq!(fleet.read("nodes/app/ca.pem"), before, "nothing changed");
    assert!(fleet.path(".certroll/ca/internal/archive/g1").exists());
}

#[test]
fn rollback_without_a_rotation_refuses() {
    let fleet = fleet();
    fleet.certroll(&["apply", "--yes"]).expect_code(0);
    fleet
        .certroll(&["apply", "--rollback", "--yes"])
        .expect_code(77)
        .expect_stderr("no rotation");
}

#[test]
fn a_half_swapped_node_gets_a_matching_fresh_key_and_leaf() {
    let fleet = fleet();
    interrupted_rotation(&fleet);
    // A swap cut between its two writes: db holds a key that is not its certificate's
    // (here lb's new-generation key).
    let stray = fleet.bytes("nodes/lb/key.pem");
    assert!(!stray.is_empty(), "lb holds a key");
    fleet.write_file("nodes/db/key.pem", &stray);
    let json = fleet.certroll(&["plan", "--rollback", "--format", "json"]);
    let v = json.expect_code(0).json();
    let db_restores = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["node"] == "db" && s["actions"][0] == "leaf-restore");
    assert!(db_restores, "db must get a fresh leaf: {v}");

    fleet
        .certroll(&["apply", "--rollback", "--yes"])
        .expect_code(0);
    let key = fleet.bytes("nodes/db/key.pem");
    assert_ne!(key, stray, "db's stray key is replaced, never reused");
    assert_ne!(
        fleet.bytes("nodes/lb/key.pem"),
        stray,
        "lb's new-generation key is replaced too"
    );
    fleet.certroll(&["verify"]).expect_code(0);
}

/// Regression: the rotation of one CA is found and rolled back even when a run of another
/// CA was journaled after it.
#[test]
fn rollback_finds_its_rotation_behind_a_run_of_another_ca() {
    let fleet = LocalFleet::with_inventory(
        "[ca.internal]\nsubject = \"CN=Internal CA\"\n[ca.edge]\nsubject = \"CN=Edge CA\"\n\n\
         [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{node}/{ca}/ca.pem\"\n\
         cert = \"nodes/{node}/{ca}/cert.pem\"\nkey = \"nodes/{node}/{ca}/key.pem\"\n\
         reload = \"touch nodes/{node}/reloaded\"\n\
         confirm = \"test -e nodes/{node}/reloaded && test ! -e nodes/{node}/stuck\"\nconfirm_timeout = \"1s\"\n\n\
         [nodes.lb]\ndns_names = [\"lb.test\"]\n[nodes.app]\ndns_names = [\"app.test\"]\n[nodes.db]\ndns_names = [\"db.test\"]\n\n\
         [[links]]\nclient = \"lb\"\nserver = \"app\"\nca = \"internal\"\n\n\
         [[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\nca = \"internal\"\n\n\
         [[links]]\nclient = \"lb\"\nserver = \"db\"\nca = \"edge\"\n",
    );
    let apply = |args: &[&str], code: i32| {
        let mut all = vec!["apply", "--yes"];
        all.extend_from_slice(args);
        fleet.certroll(&all).expect_code(code);
    };
    apply(&["--ca", "internal"], 0);
    apply(&["--ca", "edge"], 0);
    fleet.write_file("nodes/db/stuck", "");
    apply(&["--rotate", "--ca", "internal"], 75);
    fleet.remove("nodes/db/stuck");
    // A routine run of the other CA comes after the interrupted rotation.
    apply(&["--ca", "edge"], 0);

    fleet
        .certroll(&["apply", "--rollback", "--yes", "--ca", "internal"])
        .expect_code(0)
        .expect_stderr("rolling back rotation run ");
    let g1 = fleet.read(".certroll/ca/internal/g1/ca.pem");
    for node in NODES {
        let bundle = fleet.read(&format!("nodes/{node}/internal/ca.pem"));
        assert_eq!(
            bundle.trim(),
            g1.trim(),
            "bundle of {node}: only the old CA"
        );
    }
    fleet
        .certroll(&["verify", "--ca", "internal"])
        .expect_code(0);
}
