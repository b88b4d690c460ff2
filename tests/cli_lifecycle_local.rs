//! The whole lifecycle through the real binary on local-transport nodes: bootstrap, a
//! routine run with nothing to do, renewal of expiring leaves, rotation, status, verify.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Fleet {
    dir: tempfile::TempDir,
}

impl Fleet {
    /// lb → app one-way, app ⇄ db mutual, on local nodes under a temp dir.
    fn new(leaf_validity: &str, renew_before: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet { dir };
        fleet.write_inventory(leaf_validity, renew_before);
        fleet
    }

    fn write_inventory(&self, leaf_validity: &str, renew_before: &str) {
        let text = format!(
            "[ca.internal]\nsubject = \"CN=Lifecycle CA\"\nleaf_validity = \"{leaf_validity}\"\nrenew_before = \"{renew_before}\"\n\n\
             [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\ncert = \"nodes/{{node}}/cert.pem\"\n\
             key = \"nodes/{{node}}/key.pem\"\nreload = \"touch nodes/{{node}}/reloaded\"\nconfirm = \"test -e nodes/{{node}}/reloaded\"\n\n\
             [nodes.lb]\ndns_names = [\"lb.test\"]\n[nodes.app]\ndns_names = [\"app.test\", \"127.0.0.1\"]\n[nodes.db]\ndns_names = [\"db.test\"]\n\n\
             [[links]]\nclient = \"lb\"\nserver = \"app\"\n\n[[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\n"
        );
        std::fs::write(self.inventory(), text).unwrap();
    }

    fn inventory(&self) -> PathBuf {
        self.dir.path().join("certroll.toml")
    }

    fn file(&self, node: &str, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join("nodes").join(node).join(name)).unwrap_or_default()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_certroll"))
            .arg("-i")
            .arg(self.inventory())
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run certroll")
    }

    fn state(&self) -> &Path {
        self.dir.path()
    }
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: Output) -> Output {
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    out
}

#[test]
fn apply_without_a_terminal_and_without_yes_refuses_and_changes_nothing() {
    let fleet = Fleet::new("90d", "30d");
    let out = fleet.run(&["apply"]);
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pass --yes"),
        "{}",
        show(&out)
    );
    assert!(
        !fleet.state().join(".certroll/ca").exists(),
        "no CA may be created before confirmation"
    );
    assert!(!fleet.state().join("nodes").exists());
}

#[test]
fn bootstrap_routine_renew_rotate_verify() {
    let fleet = Fleet::new("10d", "5d");
    // Bootstrap: every node gets its files; keys are 0600.
    ok(fleet.run(&["apply", "--yes"]));
    use std::os::unix::fs::PermissionsExt;
    for node in ["lb", "app", "db"] {
        let mode = std::fs::metadata(fleet.dir.path().join("nodes").join(node).join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key of {node}");
    }
    ok(fleet.run(&["verify"]));

    // Routine: nothing expires within 5 days.
    let out = ok(fleet.run(&["apply", "--yes"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "{}",
        show(&out)
    );

    // The policy changes: leaves with ten days left are now within renew_before.
    fleet.write_inventory("90d", "30d");
    let bundle_before = fleet.file("app", "ca.pem");
    let cert_before = fleet.file("app", "cert.pem");
    let out = ok(fleet.run(&["apply", "--yes", "--format", "json"]));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON line"))
        .collect();
    assert_eq!(
        events.last().unwrap()["event"],
        "run-finished",
        "{}",
        show(&out)
    );
    let renewed = events.iter().filter(|e| e["event"] == "step-done").count();
    assert_eq!(renewed, 3, "{}", show(&out));
    assert_eq!(
        fleet.file("app", "ca.pem"),
        bundle_before,
        "renewal must not touch trust"
    );
    assert_ne!(
        fleet.file("app", "cert.pem"),
        cert_before,
        "renewal must replace the leaf"
    );

    // Rotation, then everything holds only G2 and the old generation is archived.
    ok(fleet.run(&["apply", "--rotate", "--yes"]));
    let status: serde_json::Value =
        serde_json::from_slice(&ok(fleet.run(&["status", "--format", "json"])).stdout).unwrap();
    assert_eq!(status["status"], "complete");
    assert_eq!(status["generations"], serde_json::json!([1, 2]));
    let g2 =
        std::fs::read_to_string(fleet.state().join(".certroll/ca/internal/g2/ca.pem")).unwrap();
    for node in ["lb", "app", "db"] {
        assert_eq!(
            String::from_utf8_lossy(&fleet.file(node, "ca.pem")).trim(),
            g2.trim(),
            "bundle of {node}"
        );
    }
    assert!(
        fleet
            .state()
            .join(".certroll/ca/internal/archive/g1/ca.pem")
            .exists(),
        "G1 must be archived"
    );
    let out = ok(fleet.run(&["verify", "--format", "json"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    assert_eq!(report["version"], 1);
}

#[test]
fn a_failed_confirm_stops_dependents_and_resume_or_replan_finishes() {
    let fleet = Fleet::new("90d", "30d");
    ok(fleet.run(&["apply", "--yes"]));
    // db refuses to confirm while the marker exists.
    let inv = std::fs::read_to_string(fleet.inventory()).unwrap();
    let inv = inv.replace(
        "[nodes.db]\n",
        "[nodes.db]\nconfirm = \"test ! -e nodes/db/hold\"\nconfirm_timeout = \"1s\"\n",
    );
    std::fs::write(fleet.inventory(), inv).unwrap();
    std::fs::write(fleet.dir.path().join("nodes/db/hold"), "").unwrap();

    let out = fleet.run(&["apply", "--rotate", "--yes"]);
    assert_eq!(out.status.code(), Some(75), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("test ! -e nodes/db/hold"),
        "the confirm command is quoted: {}",
        show(&out)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&fleet.run(&["status", "--format", "json"]).stdout).unwrap();
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
    let inv = std::fs::read_to_string(fleet.inventory()).unwrap();
    std::fs::write(
        fleet.inventory(),
        inv.replace("[nodes.lb]\n", "[nodes.lb2]\n[nodes.lb]\n")
            + "\n[[links]]\nclient = \"lb2\"\nserver = \"app\"\n",
    )
    .unwrap();
    let out = fleet.run(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--replan"),
        "{}",
        show(&out)
    );

    std::fs::remove_file(fleet.dir.path().join("nodes/db/hold")).unwrap();
    let out = ok(fleet.run(&["apply", "--yes", "--replan", "--format", "json"]));
    let events = String::from_utf8_lossy(&out.stdout);
    assert!(
        events.contains("\"step-skipped\""),
        "confirmed steps carry over: {}",
        show(&out)
    );
    let status: serde_json::Value =
        serde_json::from_slice(&fleet.run(&["status", "--format", "json"]).stdout).unwrap();
    assert_eq!(status["status"], "complete", "{status:#}");
    assert!(fleet
        .state()
        .join(".certroll/ca/internal/archive/g1")
        .exists());
}

#[test]
fn plan_shows_what_a_routine_apply_would_do() {
    let fleet = Fleet::new("10d", "5d");
    ok(fleet.run(&["apply", "--yes"]));
    let out = ok(fleet.run(&["plan", "--detailed-exitcode"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "{}",
        show(&out)
    );
    fleet.write_inventory("90d", "30d");
    // A node without its trust bundle gets everything again (install); a node without
    // its key only a fresh key and leaf (renew).
    std::fs::remove_file(fleet.dir.path().join("nodes/lb/ca.pem")).unwrap();
    std::fs::remove_file(fleet.dir.path().join("nodes/db/key.pem")).unwrap();
    let out = fleet.run(&["plan", "--format", "json", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    let fleet = Fleet::new("90d", "30d");
    let inv = std::fs::read_to_string(fleet.inventory()).unwrap();
    let inv = inv.replace(
        "key = \"nodes/{node}/key.pem\"\n",
        "key = \"nodes/{node}/key.pem\"\nproof_cert = \"nodes/{node}/cross.pem\"\n",
    );
    std::fs::write(fleet.inventory(), inv).unwrap();
    ok(fleet.run(&["apply", "--yes"]));
    // Stop the rotation after the trust-adds: lb's leaf swap waits on nobody, app's on lb.
    let inv = std::fs::read_to_string(fleet.inventory()).unwrap();
    let inv = inv.replace(
        "[nodes.app]\n",
        "[nodes.app]\nconfirm = \"test ! -e nodes/app/hold\"\nconfirm_timeout = \"1s\"\n",
    );
    std::fs::write(fleet.inventory(), inv).unwrap();
    let proof = fleet.dir.path().join("nodes/lb/cross.pem");
    std::fs::write(fleet.dir.path().join("nodes/app/hold"), "").unwrap();
    let out = fleet.run(&["apply", "--rotate", "--yes"]);
    assert_eq!(out.status.code(), Some(75), "{}", show(&out));
    assert!(proof.exists(), "trust-add ships the proof-key certificate");
    let out = fleet.run(&["verify", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the real proof verifies: {}",
        show(&out)
    );

    // A tampered proof (the old root instead of new-with-old) is critical.
    let g1 = std::fs::read(fleet.state().join(".certroll/ca/internal/g1/ca.pem")).unwrap();
    std::fs::write(&proof, g1).unwrap();
    let out = fleet.run(&["verify", "--format", "json"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"proof-invalid\""),
        "{}",
        show(&out)
    );

    // Finish: the proof is removed at prune, and verify is clean again.
    std::fs::remove_file(fleet.dir.path().join("nodes/app/hold")).unwrap();
    ok(fleet.run(&["apply", "--yes"]));
    assert!(
        !proof.exists(),
        "trust-prune removes the proof-key certificate"
    );
    ok(fleet.run(&["verify"]));
}

#[test]
fn status_on_a_fresh_fleet_says_what_to_run_next() {
    let fleet = Fleet::new("90d", "30d");
    let out = ok(fleet.run(&["status"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no run recorded for CA internal"), "{text}");
    assert!(
        text.contains("next: run `certroll plan` to see the bootstrap, then `certroll apply`"),
        "{text}"
    );
    let out = ok(fleet.run(&["status", "--format", "json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(json["status"], "none", "{json}");
    assert!(
        json["next"]
            .as_str()
            .is_some_and(|n| n.contains("certroll apply")),
        "{json}"
    );
    assert!(
        !fleet.state().join(".certroll").exists(),
        "status still only reads"
    );
}

/// What goes where (README, "Output"): a run's outcome on stdout, its progress on stderr;
/// with `--format json` stdout holds only the events.
#[test]
fn apply_writes_its_outcome_to_stdout_and_its_progress_to_stderr() {
    let fleet = Fleet::new("90d", "30d");
    let streams = |out: &Output| {
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (out, err) = streams(&ok(fleet.run(&["apply", "--yes"])));
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

    let (out, err) = streams(&ok(fleet.run(&["apply", "--rotate", "--yes"])));
    assert!(
        out.starts_with("rotation of CA internal complete: G1 → G2 on 3 nodes (run "),
        "stdout: {out}"
    );
    assert!(!out.contains("trust-add"), "no progress on stdout: {out}");
    assert!(err.contains(" trust-add done"), "{err}");

    let (out, _) = streams(&ok(fleet.run(&["apply", "--yes"])));
    assert!(
        out.starts_with("nothing to do for CA internal"),
        "stdout: {out}"
    );

    let (out, _) = streams(&ok(
        fleet.run(&["apply", "--rotate", "--yes", "--format", "json"])
    ));
    for line in out.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("stdout holds only JSON events ({e}): {line}"));
    }
}

/// The chains a node served, one per reload, from the log its reload command keeps.
fn served_chains(fleet: &Fleet, node: &str) -> Vec<Vec<certroll::pki::CertInfo>> {
    String::from_utf8_lossy(&fleet.file(node, "served.log"))
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
    let fleet = Fleet::new("90d", "30d");
    // Every reload records the chain the node serves from then on, and its key's checksum.
    let inv = std::fs::read_to_string(fleet.inventory()).unwrap();
    let inv = inv.replace(
        "reload = \"touch nodes/{node}/reloaded\"",
        "reload = \"echo reload >> nodes/{node}/served.log && cat nodes/{node}/cert.pem >> nodes/{node}/served.log \
         && cksum < nodes/{node}/key.pem >> nodes/{node}/keys.log && touch nodes/{node}/reloaded\"",
    );
    std::fs::write(fleet.inventory(), inv).unwrap();
    ok(fleet.run(&["apply", "--yes"]));
    for node in ["lb", "app", "db"] {
        for log in ["served.log", "keys.log"] {
            std::fs::remove_file(fleet.dir.path().join("nodes").join(node).join(log)).unwrap();
        }
    }
    ok(fleet.run(&["plan", "--rotate", "--chain", "cross-signed", "--check"]));
    ok(fleet.run(&["apply", "--rotate", "--chain", "cross-signed", "--yes"]));

    let g2 = fleet.state().join(".certroll/ca/internal/g2");
    let cross = certroll::pki::parse_pem_certs(&std::fs::read(g2.join("cross.pem")).unwrap())
        .unwrap()
        .remove(0);
    for node in ["lb", "app", "db"] {
        let chain = certroll::pki::parse_pem_certs(&fleet.file(node, "cert.pem")).unwrap();
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
        let keys = String::from_utf8_lossy(&fleet.file(node, "keys.log")).into_owned();
        let keys: Vec<&str> = keys.lines().collect();
        assert_eq!(
            keys.get(with_cross),
            keys.last(),
            "node {node}: dropping the cross certificate keeps the key: {keys:?}"
        );
    }
    let out = ok(fleet.run(&["verify", "--format", "json"]));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("retired-cross-certificate"),
        "{}",
        show(&out)
    );
}
