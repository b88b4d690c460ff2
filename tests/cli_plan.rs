//! `certroll plan` through the real binary: formats, `--check`, exit codes, refusals.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::run::{run_command, Run};

/// Runs `certroll ARGS...` (see [`run_command`]).
fn certroll(args: &[&str]) -> Run {
    let label = std::iter::once("certroll")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    run_command(
        Command::new(env!("CARGO_BIN_EXE_certroll")).args(args),
        label,
    )
}

fn example() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/local/certroll.toml")
        .display()
        .to_string()
}

/// The example inventory copied into a temp dir, so that no state is shared between tests.
fn example_copy(dir: &Path) -> PathBuf {
    let path = dir.join("certroll.toml");
    std::fs::copy(example(), &path).unwrap();
    path
}

/// Creates generation 1 of every CA of the inventory at `path` in its CA store, as a
/// bootstrap would, without touching any node: `plan --rotate` needs a CA to rotate.
fn seed_ca(path: &Path) {
    let inv = certroll::inventory::load(path).expect("the inventory loads");
    let store = certroll::pki::CaStore::new(&inv.state_dir);
    for spec in &inv.cas {
        store
            .init(spec, time::OffsetDateTime::now_utc())
            .expect("create the CA");
    }
}

/// Runs `certroll -i <fresh copy of the example> plan ARGS` (with the CA created when
/// `--rotate` is among them); the temp dir lives as long as the result.
fn plan_example(args: &[&str]) -> (tempfile::TempDir, Run) {
    let dir = tempfile::tempdir().unwrap();
    let inv = example_copy(dir.path());
    if args.contains(&"--rotate") {
        seed_ca(&inv);
    }
    let mut full = vec!["-i", inv.to_str().unwrap(), "plan"];
    full.extend_from_slice(args);
    let out = certroll(&full);
    (dir, out)
}

#[test]
fn text_plan_of_the_example_is_grouped_by_wave() {
    let (dir, out) = plan_example(&["--rotate"]);
    out.expect_code(0);
    let stdout = out.stdout.as_str();
    assert!(
        stdout.starts_with("Rotate CA internal: G1 → G2 · strategy phased · chain plain"),
        "{}",
        out
    );
    for needle in [
        "Wave 1 ·",
        "Wave 2 ·",
        "Wave 3 ·",
        "trust-add",
        "leaf-swap",
        "trust-prune",
        "↳ after trust-add on",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?}: {}", out);
    }
    assert!(!stdout.contains('\x1b'), "NO_COLOR must disable colour");
    for state in [
        ".certroll/journal.jsonl",
        ".certroll/lock",
        ".certroll/ca/internal/g2",
        "nodes",
    ] {
        assert!(
            !dir.path().join(state).exists(),
            "plan must not create {state}"
        );
    }
}

#[test]
fn json_plan_is_versioned_and_consistent() {
    let (_dir, out) = plan_example(&["--rotate", "--format", "json"]);
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("valid JSON");
    assert_eq!(v["version"], 1);
    let steps = v["steps"].as_array().unwrap();
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["id"], i);
        for a in s["after"].as_array().unwrap() {
            let a = a.as_u64().unwrap() as usize;
            assert!(
                a < i && steps[a]["wave"].as_u64() < s["wave"].as_u64(),
                "bad edge {a} → {i}"
            );
        }
    }
    assert_eq!(v["order"].as_array().unwrap().len(), 8);
}

#[test]
fn dot_plan_is_a_digraph() {
    let (_dir, out) = plan_example(&["--rotate", "--format", "dot"]);
    let stdout = out.stdout.as_str();
    assert!(
        stdout.starts_with("digraph certroll {") && stdout.contains("dir=both"),
        "{}",
        out
    );
}

#[test]
fn check_proves_the_example_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let inv = example_copy(dir.path());
    seed_ca(&inv);
    for chain in ["plain", "cross-signed"] {
        let out = certroll(&[
            "-i",
            inv.to_str().unwrap(),
            "plan",
            "--rotate",
            "--check",
            "--orders",
            "4",
            "--chain",
            chain,
        ]);
        out.expect_code(0);
        assert!(out.stderr.as_str().contains("plan check passed"), "{}", out);
    }
}

#[test]
fn detailed_exitcode_says_there_is_work() {
    let (_dir, out) = plan_example(&["--detailed-exitcode"]);
    out.expect_code(2);
}

#[test]
fn ordered_on_mutual_links_is_refused_with_the_cycle() {
    let (_dir, out) = plan_example(&["--rotate", "--strategy", "ordered"]);
    out.expect_code(64);
    assert!(
        out.stderr
            .as_str()
            .contains("has a cycle: app1 → db1 → app1"),
        "{}",
        out
    );
}

#[test]
fn usage_errors_exit_64() {
    let out = certroll(&["plan", "--no-such-flag"]);
    out.expect_code(64);
    let out = certroll(&["--help"]);
    out.expect_code(0);
}

#[test]
fn the_ca_subcommand_help_reads_plainly() {
    let out = certroll(&["--help"]);
    out.expect_code(0);
    let help = out.stdout.as_str();
    assert!(
        help.contains("import a CA that certroll did not create"),
        "{help}"
    );
    assert!(!help.contains("bring a CA"), "{help}");
}

#[test]
fn several_cas_need_ca() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certroll.toml");
    std::fs::write(
        &path,
        "[ca.edge]\n[ca.data]\n[defaults]\ntransport = \"local\"\ntrust_bundle = \"n/{node}/{ca}/ca.pem\"\n\
         cert = \"n/{node}/{ca}/cert.pem\"\nkey = \"n/{node}/{ca}/key.pem\"\n[nodes.a]\n[nodes.b]\n\
         [[links]]\nclient = \"a\"\nserver = \"b\"\nca = \"edge\"\n",
    )
    .unwrap();
    let out = certroll(&["-i", path.to_str().unwrap(), "plan"]);
    out.expect_code(64);
    assert!(
        out.stderr.as_str().contains("choose one with --ca NAME"),
        "{}",
        out
    );
    let out = certroll(&[
        "-i",
        path.to_str().unwrap(),
        "plan",
        "--ca",
        "edge",
        "--format",
        "json",
    ]);
    out.expect_code(0);
}

#[test]
fn bad_inventory_exits_78_with_position_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certroll.toml");
    std::fs::write(&path, "[ca.internal]\n[nodes.a]\ntransport = \"local\"\n[[links]]\nclient = \"a\"\nserver = \"b\"\n").unwrap();
    for cmd in ["plan", "apply", "verify", "status"] {
        let out = certroll(
            &["-i", path.to_str().unwrap(), cmd, "--yes"]
                .iter()
                .copied()
                .filter(|a| cmd == "apply" || *a != "--yes")
                .collect::<Vec<_>>(),
        );
        out.expect_code(78);
        let stderr = out.stderr.as_str();
        assert!(
            stderr.contains("certroll.toml:6:10:") && stderr.contains("\"b\""),
            "{cmd}: {}",
            out
        );
    }
    assert!(
        !dir.path().join(".certroll").exists(),
        "a bad inventory must not create state"
    );
}

#[test]
fn the_readme_inventory_plans() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("```toml\n").expect("README has a TOML block") + "```toml\n".len();
    let len = readme[start..].find("```").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certroll.toml");
    std::fs::write(&path, &readme[start..start + len]).unwrap();
    seed_ca(&path);
    let out = certroll(&[
        "-i",
        path.to_str().unwrap(),
        "plan",
        "--rotate",
        "--format",
        "json",
    ]);
    out.expect_code(0);
}
