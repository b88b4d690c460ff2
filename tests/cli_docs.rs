//! Shell completions, man pages and `--version`, generated from the binary's own clap
//! definitions: every shell's script names the commands and their options, bash accepts
//! its script, the man pages cover every command, and `--version` names the commit.

mod support;

use std::path::Path;
use std::process::Command;

use support::run::{run_command, Run};

fn certroll(args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_certroll"));
    cmd.args(args);
    let label = std::iter::once("certroll".to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect();
    run_command(&mut cmd, label)
}

#[test]
fn completions_name_every_command_and_bash_accepts_its_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let run = certroll(&["completions", shell]);
        run.expect_code(0);
        for word in [
            "verify",
            "extend",
            "textfile-dir",
            "critical-within",
            "completions",
        ] {
            assert!(run.stdout.contains(word), "{shell} lacks {word}\n{run}");
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("certroll.bash");
    std::fs::write(&script, certroll(&["completions", "bash"]).stdout).expect("write");
    let status = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .expect("run bash");
    assert!(status.success(), "bash -n refuses the completion script");
    certroll(&["completions", "tcsh"])
        .expect_code(64)
        .expect_output("possible values");
}

#[test]
fn man_prints_certroll_1_and_dir_writes_a_page_per_command() {
    let run = certroll(&["man"]);
    run.expect_code(0)
        .expect_stdout(".TH certroll 1")
        .expect_stdout("verify");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().to_str().expect("UTF-8");
    certroll(&["man", "--dir", path]).expect_code(0);
    for page in [
        "certroll.1",
        "certroll-verify.1",
        "certroll-apply.1",
        "certroll-ca.1",
        "certroll-ca-extend.1",
        "certroll-ca-import.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is no man page");
    }
    let verify = std::fs::read_to_string(dir.path().join("certroll-verify.1")).expect("page");
    assert!(verify.contains("textfile"), "{verify}");
    certroll(&["man", "--dir", "/nonexistent/dir"])
        .expect_code(73)
        .expect_output("failed to write the man pages into /nonexistent/dir");
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let run = certroll(&["--version"]);
    run.expect_code(0);
    let line = run.stdout.trim();
    let version = env!("CARGO_PKG_VERSION");
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        // Built in a repository: the commit (perhaps with -dirty) follows the version.
        Some(head) => assert!(
            line.starts_with(&format!("certroll {version} (commit {head}")),
            "{line} (HEAD is {head})"
        ),
        // Built without git: the version alone.
        None => assert_eq!(line, format!("certroll {version}")),
    }
    certroll(&["-V"]).expect_stdout(&format!("certroll {version}"));
}
