//! The whole lifecycle through the real binary on local-transport nodes: bootstrap, a
//! routine run with nothing to do, renewal of expiring leaves, rotation, status, verify;
//! and the commands that change the fleet or its lock refusing, word for word, to do it
//! unconfirmed (no terminal, no `--yes`).

mod support;

use std::collections::BTreeMap;

use support::cli::tree;
use support::local::{LocalFleet, Settings, NODES};
use support::run::Run;

/// lb → app one-way, app ⇄ db mutual (app also answers on 127.0.0.1), on local nodes under
/// a temp dir, with the CA's leaf policy.
fn lifecycle(leaf_validity: &str, renew_before: &str) -> Settings {
    LocalFleet::new("CN=Lifecycle CA")
        .ca_key("leaf_validity", leaf_validity)
        .ca_key("renew_before", renew_before)
        .dns("app", "127.0.0.1")
}

/// The policy changes to 90-day leaves renewed 30 days early.
fn renew_early(s: Settings) -> Settings {
    s.ca_key("leaf_validity", "90d")
        .ca_key("renew_before", "30d")
}

/// What `apply` says, last on stderr, when it would change the fleet and may not ask.
const APPLY_UNCONFIRMED: &str = "error: refusing to change the fleet without confirmation: \
     standard input is not a terminal\n  hint: pass --yes to apply without asking (e.g. from cron)\n";

/// What a refused command must leave as it was: the nodes' files, the CA store, the journal.
fn untouched(fleet: &LocalFleet) -> (BTreeMap<String, String>, BTreeMap<String, String>, Vec<u8>) {
    (
        tree(&fleet.path("nodes")),
        tree(&fleet.ca_dir()),
        fleet.bytes(".certroll/journal.jsonl"),
    )
}

/// `run` is the refusal of a command that needs confirmation: exit 64, `message` exactly
/// as the last lines of stderr, nothing on stdout.
#[track_caller]
fn refused_unconfirmed(run: &Run, message: &str) {
    run.expect_code(64);
    assert!(
        run.stderr.ends_with(message),
        "the exact refusal, last\n{run}"
    );
    assert_eq!(run.stderr.matches("error:").count(), 1, "{run}");
    assert_eq!(run.stdout, "", "{run}");
}

#[test]
fn apply_without_a_terminal_and_without_yes_refuses_without_confirmation_and_changes_nothing() {
    let fleet = lifecycle("90d", "30d").write();
    // A bootstrap: no CA is made, no node file written, no run journaled.
    refused_unconfirmed(&fleet.certroll(&["apply"]), APPLY_UNCONFIRMED);
    assert!(
        !fleet.path(".certroll/ca").exists(),
        "no CA may be created before confirmation"
    );
    assert!(!fleet.path("nodes").exists());
    assert!(fleet.bytes(".certroll/journal.jsonl").is_empty());

    fleet.apply_ok(&[]);
    // A routine run with a leaf to repair, and a rotation: the fleet, the CA store and the
    // journal stay as they were (no next generation is made).
    fleet.remove("nodes/db/cert.pem");
    for args in [&["apply"][..], &["apply", "--rotate"][..]] {
        let before = untouched(&fleet);
        refused_unconfirmed(&fleet.certroll(args), APPLY_UNCONFIRMED);
        assert!(untouched(&fleet) == before, "{args:?} changed something");
    }
    assert!(!fleet.ca_dir().join("g2").exists(), "no next generation");
}

#[test]
fn lock_break_without_a_terminal_and_without_yes_refuses_without_confirmation() {
    let fleet = lifecycle("90d", "30d").write();
    fleet.apply_ok(&[]);
    let state = tree(&fleet.path(".certroll"));
    let run = fleet.certroll(&["lock", "break"]);
    refused_unconfirmed(
        &run,
        "error: refusing to break the lock without confirmation: standard input is not a \
         terminal\n  hint: pass --yes\n",
    );
    assert_eq!(run.stderr.lines().count(), 2, "the refusal alone\n{run}");
    assert!(
        tree(&fleet.path(".certroll")) == state,
        "the state changed\n{run}"
    );
}

#[test]
fn bootstrap_routine_renew_rotate_verify() {
    let mut fleet = lifecycle("10d", "5d").write();
    // Bootstrap: every node gets its files; keys are 0600.
    fleet.certroll(&["apply", "--yes"]).expect_code(0);
    for node in NODES {
        let mode = support::cli::mode(&fleet.path(&format!("nodes/{node}/key.pem")));
        assert_eq!(mode & 0o777, 0o600, "key of {node}");
    }
    fleet.certroll(&["verify"]).expect_code(0);

    // Routine: nothing expires within 5 days.
    fleet
        .certroll(&["apply", "--yes"])
        .expect_code(0)
        .expect_stdout("nothing to do");

    // The policy changes: leaves with ten days left are now within renew_before.
    fleet.edit(renew_early);
    let bundle_before = fleet.bytes("nodes/app/ca.pem");
    let cert_before = fleet.bytes("nodes/app/cert.pem");
    let out = fleet.certroll(&["apply", "--yes", "--format", "json"]);
    out.expect_code(0);
    let events = out.events();
    assert_eq!(events.last().unwrap()["event"], "run-finished", "{out}");
    let renewed = events.iter().filter(|e| e["event"] == "step-done").count();
    assert_eq!(renewed, 3, "{out}");
    assert_eq!(
        fleet.bytes("nodes/app/ca.pem"),
        bundle_before,
        "renewal must not touch trust"
    );
    assert_ne!(
        fleet.bytes("nodes/app/cert.pem"),
        cert_before,
        "renewal must replace the leaf"
    );

    // Rotation, then everything holds only G2 and the old generation is archived.
    fleet
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(0);
    let status = fleet.certroll(&["status", "--format", "json"]);
    let status = status.expect_code(0).json();
    assert_eq!(status["status"], "complete");
    assert_eq!(status["generations"], serde_json::json!([1, 2]));
    let g2 = fleet.read(".certroll/ca/internal/g2/ca.pem");
    assert!(!g2.is_empty(), "G2's root is in the store");
    for node in NODES {
        assert_eq!(
            fleet.read(&format!("nodes/{node}/ca.pem")).trim(),
            g2.trim(),
            "bundle of {node}"
        );
    }
    assert!(
        fleet
            .path(".certroll/ca/internal/archive/g1/ca.pem")
            .exists(),
        "G1 must be archived"
    );
    let report = fleet.certroll(&["verify", "--format", "json"]);
    let report = report.expect_code(0).json();
    assert_eq!(report["version"], 1);
}

#[test]
fn a_failed_confirm_stops_dependents_and_resume_or_replan_finishes() {
    let mut fleet = lifecycle("90d", "30d").write();
    fleet.certroll(&["apply", "--yes"]).expect_code(0);
    // db refuses to confirm while the marker exists.
    fleet.edit(|s| {
        s.node_key("db", "confirm", "test ! -e nodes/db/hold")
            .node_key("db", "confirm_timeout", "1s")
    });
    fleet.write_file("nodes/db/hold", "");

    fleet
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(75)
        .expect_stderr("test ! -e nodes/db/hold");
    let status = fleet.certroll(&["status", "--format", "json"]).json();
    let state_of = |node: &str, action: &str| {
        status["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["node"] == node && s["actions"][0] == action)
            .map(|s| s["state"].clone())
            .unwrap()
    };
    assert_eq!(state_of("db", "trust-add"), "failed", "{status:#}");
    // app's leaf waits for db's trust: it must never have started.
    assert_eq!(state_of("app", "leaf-swap"), "waiting", "{status:#}");
    assert_eq!(state_of("lb", "trust-add"), "done", "{status:#}");

    // The inventory changes under the unfinished run: refused until --replan.
    fleet.edit(|s| s.first_client("lb2", "app"));
    fleet
        .certroll(&["apply", "--yes"])
        .expect_code(64)
        .expect_stderr("--replan");

    fleet.remove("nodes/db/hold");
    fleet
        .certroll(&["apply", "--yes", "--replan", "--format", "json"])
        .expect_code(0)
        .expect_stdout("\"step-skipped\"");
    let status = fleet.certroll(&["status", "--format", "json"]).json();
    assert_eq!(status["status"], "complete", "{status:#}");
    assert!(fleet.path(".certroll/ca/internal/archive/g1").exists());
}

#[test]
fn plan_shows_what_a_routine_apply_would_do() {
    let mut fleet = lifecycle("10d", "5d").write();
    fleet.certroll(&["apply", "--yes"]).expect_code(0);
    fleet
        .certroll(&["plan", "--detailed-exitcode"])
        .expect_code(0)
        .expect_stdout("nothing to do");
    fleet.edit(renew_early);
    // A node without its trust bundle gets everything again (install); a node without
    // its key only a fresh key and leaf (renew).
    fleet.remove("nodes/lb/ca.pem");
    fleet.remove("nodes/db/key.pem");
    let out = fleet.certroll(&["plan", "--format", "json", "--detailed-exitcode"]);
    let v = out.expect_code(2).json();
    let step = |node: &str| {
        v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["node"] == node)
            .map(|s| s["actions"][0].clone())
    };
    assert_eq!(step("lb"), Some(serde_json::json!("install")), "{v:#}");
    assert_eq!(step("app"), Some(serde_json::json!("renew")), "{v:#}");
    assert_eq!(step("db"), Some(serde_json::json!("renew")), "{v:#}");
}

#[test]
fn verify_checks_the_proof_key_certificate_during_a_rotation() {
    let mut fleet = lifecycle("90d", "30d")
        .default_key("proof_cert", "nodes/{node}/cross.pem")
        .write();
    fleet.certroll(&["apply", "--yes"]).expect_code(0);
    // Stop the rotation after the trust-adds: lb's leaf swap waits on nobody, app's on lb.
    fleet.edit(|s| {
        s.node_key("app", "confirm", "test ! -e nodes/app/hold")
            .node_key("app", "confirm_timeout", "1s")
    });
    let proof = fleet.path("nodes/lb/cross.pem");
    fleet.write_file("nodes/app/hold", "");
    fleet
        .certroll(&["apply", "--rotate", "--yes"])
        .expect_code(75);
    assert!(proof.exists(), "trust-add ships the proof-key certificate");
    // The real proof verifies.
    fleet
        .certroll(&["verify", "--format", "json"])
        .expect_code(0);

    // A tampered proof (the old root instead of new-with-old) is critical.
    let g1 = fleet.bytes(".certroll/ca/internal/g1/ca.pem");
    assert!(!g1.is_empty(), "G1's root is in the store");
    fleet.write_file("nodes/lb/cross.pem", g1);
    fleet
        .certroll(&["verify", "--format", "json"])
        .expect_code(2)
        .expect_stdout("\"proof-invalid\"");

    // Finish: the proof is removed at prune, and verify is clean again.
    fleet.remove("nodes/app/hold");
    fleet.certroll(&["apply", "--yes"]).expect_code(0);
    assert!(
        !proof.exists(),
        "trust-prune removes the proof-key certificate"
    );
    fleet.certroll(&["verify"]).expect_code(0);
}

#[test]
fn status_on_a_fresh_fleet_says_what_to_run_next() {
    let fleet = lifecycle("90d", "30d").write();
    fleet
        .certroll(&["status"])
        .expect_code(0)
        .expect_stdout("no run recorded for CA internal")
        .expect_stdout("next: run `certroll plan` to see the bootstrap, then `certroll apply`");
    let json = fleet.certroll(&["status", "--format", "json"]);
    let json = json.expect_code(0).json();
    assert_eq!(json["status"], "none", "{json}");
    assert!(
        json["next"]
            .as_str()
            .is_some_and(|n| n.contains("certroll apply")),
        "{json}"
    );
    assert!(!fleet.path(".certroll").exists(), "status still only reads");
}

/// What goes where (README, "Output"): a run's outcome on stdout, its progress on stderr;
/// with `--format json` stdout holds only the events.
#[test]
fn apply_writes_its_outcome_to_stdout_and_its_progress_to_stderr() {
    let fleet = lifecycle("90d", "30d").write();
    let run = fleet.certroll(&["apply", "--yes"]);
    let (out, err) = (&run.expect_code(0).stdout, &run.stderr);
    assert_eq!(out.lines().count(), 1, "one line of outcome: {out}");
    assert!(
        out.starts_with("CA internal G1 installed on 3 nodes (run "),
        "stdout: {out}"
    );
    assert!(err.contains(" install done"), "progress on stderr: {err}");
    assert!(
        err.contains("Wave 1"),
        "the plan asked about, on stderr: {err}"
    );

    let run = fleet.certroll(&["apply", "--rotate", "--yes"]);
    let (out, err) = (&run.expect_code(0).stdout, &run.stderr);
    assert!(
        out.starts_with("rotation of CA internal complete: G1 → G2 on 3 nodes (run "),
        "stdout: {out}"
    );
    assert!(!out.contains("trust-add"), "no progress on stdout: {out}");
    assert!(err.contains(" trust-add done"), "{err}");

    let run = fleet.certroll(&["apply", "--yes"]);
    let out = &run.expect_code(0).stdout;
    assert!(
        out.starts_with("nothing to do for CA internal"),
        "stdout: {out}"
    );

    let run = fleet.certroll(&["apply", "--rotate", "--yes", "--format", "json"]);
    // stdout holds only JSON events.
    run.expect_code(0).events();
}

/// The chains a node served, one per reload, from the log its reload command keeps.
fn served_chains(fleet: &LocalFleet, node: &str) -> Vec<Vec<certroll::pki::CertInfo>> {
    fleet
        .read(&format!("nodes/{node}/served.log"))
        .split("reload\n")
        .filter(|chain| !chain.trim().is_empty())
        .map(|chain| certroll::pki::parse_pem_certs(chain.as_bytes()).expect("a served chain"))
        .collect()
}

/// Issue 20, item 5: a cross-signed rotation ended with every `cert.pem` still carrying
/// `[leaf, cross(G2←G1)]` after G1 was archived. The node's prune now drops the cross
/// certificate, and keeps the leaf and key the leaf swap installed.
#[test]
fn a_completed_cross_signed_rotation_leaves_no_cross_certificate_in_any_chain() {
    // Every reload records the chain the node serves from then on, and its key's checksum.
    let fleet = lifecycle("90d", "30d")
        .reload(
            "echo reload >> nodes/{node}/served.log && cat nodes/{node}/cert.pem >> nodes/{node}/served.log \
             && cksum < nodes/{node}/key.pem >> nodes/{node}/keys.log && touch nodes/{node}/reloaded",
        )
        .write();
    fleet.certroll(&["apply", "--yes"]).expect_code(0);
    for node in NODES {
        for log in ["served.log", "keys.log"] {
            fleet.remove(&format!("nodes/{node}/{log}"));
        }
    }
    fleet
        .certroll(&["plan", "--rotate", "--chain", "cross-signed", "--check"])
        .expect_code(0);
    fleet
        .certroll(&["apply", "--rotate", "--chain", "cross-signed", "--yes"])
        .expect_code(0);

    let cross =
        support::cli::pem_certs(&fleet.path(".certroll/ca/internal/g2/cross.pem")).remove(0);
    for node in NODES {
        let chain = certroll::pki::parse_pem_certs(&fleet.bytes(&format!("nodes/{node}/cert.pem")))
            .unwrap();
        assert_eq!(
            chain.len(),
            1,
            "node {node} must present its leaf alone once G1 is retired, not {:?}",
            chain.iter().map(|c| &c.subject).collect::<Vec<_>>()
        );
        let served = served_chains(&fleet, node);
        let with_cross = served
            .iter()
            .position(|c| c.len() == 2 && c[1].der == cross.der)
            .unwrap_or_else(|| panic!("node {node} never served [leaf, cross]: {served:?}"));
        let last = served.last().unwrap();
        assert_eq!(
            last.len(),
            1,
            "node {node}'s last reload serves the leaf alone"
        );
        assert_eq!(
            last[0].der, served[with_cross][0].der,
            "node {node}: dropping the cross certificate keeps the leaf"
        );
        assert_eq!(last[0].der, chain[0].der);
        let keys = fleet.read(&format!("nodes/{node}/keys.log"));
        let keys: Vec<&str> = keys.lines().collect();
        assert_eq!(
            keys.get(with_cross),
            keys.last(),
            "node {node}: dropping the cross certificate keeps the key: {keys:?}"
        );
    }
    let out = fleet.certroll(&["verify", "--format", "json"]);
    assert!(
        !out.expect_code(0)
            .stdout
            .contains("retired-cross-certificate"),
        "{out}"
    );
}
