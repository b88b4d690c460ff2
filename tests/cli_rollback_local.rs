//! Rollback through the real binary on local-transport nodes: a rotation stopped by a
//! confirm that never passes is rolled back to the old CA; the abandoned generation is
//! archived with a note; `status` names the rotation rolled back; a completed rotation
//! refuses `--rollback`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Fleet {
    dir: tempfile::TempDir,
}

impl Fleet {
    /// lb → app one-way, app ⇄ db mutual; a node's confirm fails while `nodes/<node>/stuck`
    /// exists.
    fn new() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let text = "[ca.internal]\nsubject = \"CN=Rollback CA\"\n\n\
             [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{node}/ca.pem\"\ncert = \"nodes/{node}/cert.pem\"\n\
             key = \"nodes/{node}/key.pem\"\nreload = \"touch nodes/{node}/reloaded\"\n\
             confirm = \"test -e nodes/{node}/reloaded && test ! -e nodes/{node}/stuck\"\nconfirm_timeout = \"1s\"\n\n\
             [nodes.lb]\ndns_names = [\"lb.test\"]\n[nodes.app]\ndns_names = [\"app.test\"]\n[nodes.db]\ndns_names = [\"db.test\"]\n\n\
             [[links]]\nclient = \"lb\"\nserver = \"app\"\n\n[[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\n";
        std::fs::write(dir.path().join("certroll.toml"), text).unwrap();
        Fleet { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_default()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_certroll"))
            .arg("-i")
            .arg(self.path("certroll.toml"))
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run certroll")
    }

    fn root(&self) -> &Path {
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

fn code(out: &Output, want: i32) {
    assert_eq!(out.status.code(), Some(want), "{}", show(out));
}

fn certs(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

/// Bootstraps, then starts a rotation that stops: db never confirms, so app's leaf and
/// every prune wait. Returns the rotation's run id.
fn interrupted_rotation(fleet: &Fleet) -> String {
    code(&fleet.run(&["apply", "--yes"]), 0);
    std::fs::write(fleet.path("nodes/db/stuck"), "").unwrap();
    code(&fleet.run(&["apply", "--rotate", "--yes"]), 75);
    // lb trusts both generations and already serves a new leaf: a mixed state.
    assert_eq!(certs(&fleet.read("nodes/lb/ca.pem")), 2);
    std::fs::remove_file(fleet.path("nodes/db/stuck")).unwrap();
    let status = fleet.run(&["status", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["mode"], "rotate", "{}", show(&status));
    report["run"].as_str().unwrap().to_string()
}

#[test]
fn an_interrupted_rotation_rolls_back_to_the_old_ca() {
    let fleet = Fleet::new();
    let rotation = interrupted_rotation(&fleet);
    let g1 = fleet.read(".certroll/ca/internal/g1/ca.pem");

    let plan = fleet.run(&["plan", "--rollback", "--check"]);
    code(&plan, 0);
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains("trust-drop-new"), "{}", show(&plan));
    assert!(
        String::from_utf8_lossy(&plan.stderr).contains("plan check passed"),
        "{}",
        show(&plan)
    );
    let json = fleet.run(&["plan", "--rollback", "--format", "json"]);
    code(&json, 0);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["mode"], "rollback", "{}", show(&json));

    let out = fleet.run(&["apply", "--rollback", "--yes"]);
    code(&out, 0);
    for node in ["lb", "app", "db"] {
        let bundle = fleet.read(&format!("nodes/{node}/ca.pem"));
        assert_eq!(
            bundle.trim(),
            g1.trim(),
            "bundle of {node}: only the old CA"
        );
    }
    code(&fleet.run(&["verify"]), 0);

    // The old generation stays current; the abandoned one is archived with a note.
    assert_eq!(fleet.read(".certroll/ca/internal/current").trim(), "1");
    assert!(!fleet.path(".certroll/ca/internal/next").exists());
    let note = fleet.read(".certroll/ca/internal/archive/g2/ROLLED-BACK");
    assert!(note.contains(&rotation), "{note}");
    assert!(fleet
        .path(".certroll/ca/internal/archive/g2/ca.key")
        .exists());

    let status = fleet.run(&["status"]);
    code(&status, 0);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&format!("rollback of run {rotation}")),
        "{text}"
    );
    // The rollback goes from the new generation back to the old one.
    assert!(text.contains("rollback CA internal (G2 → G1)"), "{text}");

    // Nothing left to roll back; routine runs are quiet; a new rotation makes a fresh G3.
    code(&fleet.run(&["apply", "--rollback", "--yes"]), 77);
    code(&fleet.run(&["apply", "--yes"]), 0);
    code(&fleet.run(&["apply", "--rotate", "--yes"]), 0);
    assert_eq!(fleet.read(".certroll/ca/internal/current").trim(), "3");
    code(&fleet.run(&["verify"]), 0);
}

/// Exit 77 (refused in this state), not 64: the command line is right, the state refuses it.
#[test]
fn a_completed_rotation_refuses_rollback_with_exit_77_not_a_usage_error() {
    let fleet = Fleet::new();
    code(&fleet.run(&["apply", "--yes"]), 0);
    code(&fleet.run(&["apply", "--rotate", "--yes"]), 0);
    let before = fleet.read("nodes/app/ca.pem");
    let out = fleet.run(&["apply", "--rollback", "--yes"]);
    code(&out, 77);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("new rotation"), "{}", show(&out));
    // `plan --rollback` refuses the same way.
    code(&fleet.run(&["plan", "--rollback"]), 77);
    assert_eq!(fleet.read("nodes/app/ca.pem"), before, "nothing changed");
    assert!(fleet
        .root()
        .join(".certroll/ca/internal/archive/g1")
        .exists());
}

#[test]
fn rollback_without_a_rotation_refuses() {
    let fleet = Fleet::new();
    code(&fleet.run(&["apply", "--yes"]), 0);
    let out = fleet.run(&["apply", "--rollback", "--yes"]);
    code(&out, 77);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no rotation"),
        "{}",
        show(&out)
    );
}

#[test]
fn a_half_swapped_node_gets_a_matching_fresh_key_and_leaf() {
    let fleet = Fleet::new();
    interrupted_rotation(&fleet);
    // A swap cut between its two writes: db holds a key that is not its certificate's
    // (here lb's new-generation key).
    let stray = fs_read(&fleet, "nodes/lb/key.pem");
    std::fs::write(fleet.path("nodes/db/key.pem"), &stray).unwrap();
    let json = fleet.run(&["plan", "--rollback", "--format", "json"]);
    code(&json, 0);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let db_restores = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["node"] == "db" && s["actions"][0] == "leaf-restore");
    assert!(db_restores, "db must get a fresh leaf: {v}");

    code(&fleet.run(&["apply", "--rollback", "--yes"]), 0);
    let key = fs_read(&fleet, "nodes/db/key.pem");
    assert_ne!(key, stray, "db's stray key is replaced, never reused");
    assert_ne!(
        fs_read(&fleet, "nodes/lb/key.pem"),
        stray,
        "lb's new-generation key is replaced too"
    );
    code(&fleet.run(&["verify"]), 0);
}

fn fs_read(fleet: &Fleet, rel: &str) -> Vec<u8> {
    std::fs::read(fleet.path(rel)).unwrap()
}

/// Regression: the rotation of one CA is found and rolled back even when a run of another
/// CA was journaled after it.
#[test]
fn rollback_finds_its_rotation_behind_a_run_of_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[ca.internal]\nsubject = \"CN=Internal CA\"\n[ca.edge]\nsubject = \"CN=Edge CA\"\n\n\
         [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{node}/{ca}/ca.pem\"\n\
         cert = \"nodes/{node}/{ca}/cert.pem\"\nkey = \"nodes/{node}/{ca}/key.pem\"\n\
         reload = \"touch nodes/{node}/reloaded\"\n\
         confirm = \"test -e nodes/{node}/reloaded && test ! -e nodes/{node}/stuck\"\nconfirm_timeout = \"1s\"\n\n\
         [nodes.lb]\ndns_names = [\"lb.test\"]\n[nodes.app]\ndns_names = [\"app.test\"]\n[nodes.db]\ndns_names = [\"db.test\"]\n\n\
         [[links]]\nclient = \"lb\"\nserver = \"app\"\nca = \"internal\"\n\n\
         [[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\nca = \"internal\"\n\n\
         [[links]]\nclient = \"lb\"\nserver = \"db\"\nca = \"edge\"\n";
    std::fs::write(dir.path().join("certroll.toml"), text).unwrap();
    let fleet = Fleet { dir };
    code(&fleet.run(&["apply", "--yes", "--ca", "internal"]), 0);
    code(&fleet.run(&["apply", "--yes", "--ca", "edge"]), 0);
    std::fs::write(fleet.path("nodes/db/stuck"), "").unwrap();
    code(
        &fleet.run(&["apply", "--rotate", "--yes", "--ca", "internal"]),
        75,
    );
    std::fs::remove_file(fleet.path("nodes/db/stuck")).unwrap();
    // A routine run of the other CA comes after the interrupted rotation.
    code(&fleet.run(&["apply", "--yes", "--ca", "edge"]), 0);

    let out = fleet.run(&["apply", "--rollback", "--yes", "--ca", "internal"]);
    code(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rolling back rotation run "), "{}", show(&out));
    let g1 = fleet.read(".certroll/ca/internal/g1/ca.pem");
    for node in ["lb", "app", "db"] {
        let bundle = fleet.read(&format!("nodes/{node}/internal/ca.pem"));
        assert_eq!(
            bundle.trim(),
            g1.trim(),
            "bundle of {node}: only the old CA"
        );
    }
    code(&fleet.run(&["verify", "--ca", "internal"]), 0);
}
