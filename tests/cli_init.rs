//! `certroll init [DIR]` through the real binary: the hint used to say
//! `cp -r examples/local my-fleet`, which after the demo copies its CA keys, journal and
//! node files. `init` writes one commented starter inventory that the other commands
//! accept as it is, and never replaces an existing one.

mod support;

use std::path::Path;
use std::process::Command;

use support::run::{certroll, run_command, Run};

fn init(args: &[&str], cwd: &Path) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_certroll"));
    cmd.arg("init").args(args).current_dir(cwd);
    let label = ["certroll", "init"]
        .iter()
        .chain(args)
        .map(|a| a.to_string())
        .collect();
    run_command(&mut cmd, label)
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("list a directory") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("under dir");
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn init_writes_a_starter_inventory_that_plan_apply_and_verify_accept() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let run = init(&["my-fleet"], dir.path());
    run.expect_code(0).expect_stdout("my-fleet/certroll.toml");
    assert_eq!(
        files(dir.path()),
        ["my-fleet/certroll.toml"],
        "init writes the inventory and nothing else\n{run}"
    );
    let inv = dir.path().join("my-fleet/certroll.toml");
    let text = std::fs::read_to_string(&inv).expect("the inventory");
    assert!(
        text.contains("# [nodes.db1]"),
        "an SSH example, commented: {text}"
    );
    certroll(&inv, &["plan"], |_| {})
        .expect_code(0)
        .expect_stdout("Bootstrap CA internal");
    certroll(&inv, &["apply", "--yes"], |_| {}).expect_code(0);
    certroll(&inv, &["verify"], |_| {}).expect_code(0);
    certroll(&inv, &["plan", "--rotate", "--check"], |_| {}).expect_code(0);
}

#[test]
fn init_refuses_to_overwrite_an_existing_inventory() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("certroll.toml"), "# my fleet\n").expect("an inventory");
    let run = init(&[], dir.path());
    run.expect_code(73)
        .expect_output("refusing to overwrite the inventory")
        .expect_output("nothing was written");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("certroll.toml")).expect("the inventory"),
        "# my fleet\n"
    );
    assert_eq!(files(dir.path()), ["certroll.toml"], "{run}");
}
