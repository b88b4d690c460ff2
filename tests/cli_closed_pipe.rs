//! A reader that went away ends certroll quietly: `certroll plan
//! --rotate --check 2>&1 | head -12` used to end with a panic ("failed printing to
//! stderr") and exit 101. Each test runs the real binary with standard output and standard
//! error on a pipe whose read end is closed before the process starts, so every write it
//! makes fails with EPIPE: the command must end without a panic and with the exit code of
//! its work, and `apply` must still finish its run.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::run::{certroll, COMMAND_TIMEOUT};

/// The example fleet (eight local nodes) copied into a temporary directory.
struct Example {
    dir: tempfile::TempDir,
}

impl Example {
    fn new() -> Example {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local/certroll.toml"),
            dir.path().join("certroll.toml"),
        )
        .expect("copy the example inventory");
        Example { dir }
    }

    fn inventory(&self) -> PathBuf {
        self.dir.path().join("certroll.toml")
    }

    /// `certroll ARGS` with both outputs captured (an ordinary run).
    fn run(&self, args: &[&str]) -> support::run::Run {
        certroll(&self.inventory(), args, |_| {})
    }

    /// `certroll ARGS` with stdout and stderr on a pipe nobody reads: returns the exit code
    /// (None when killed by a signal).
    fn run_into_closed_pipe(&self, args: &[&str]) -> Option<i32> {
        let (reader, writer) = std::io::pipe().expect("make a pipe");
        drop(reader);
        let err = writer.try_clone().expect("clone the pipe's write end");
        let mut child = Command::new(env!("CARGO_BIN_EXE_certroll"))
            .arg("-i")
            .arg(self.inventory())
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start certroll");
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("wait for certroll") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("certroll {args:?} did not end within {COMMAND_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Like [`Example::run_into_closed_pipe`], asserting the command ended normally with `code`.
    #[track_caller]
    fn expect_quiet_end(&self, args: &[&str], code: i32) {
        let got = self.run_into_closed_pipe(args);
        assert_ne!(
            got,
            Some(101),
            "certroll {args:?} panicked on a closed pipe"
        );
        assert_eq!(got, Some(code), "certroll {args:?} into a closed pipe");
    }
}

#[test]
fn a_closed_pipe_ends_plan_check_quietly() {
    let fleet = Example::new();
    fleet.expect_quiet_end(&["plan"], 0);
    fleet.run(&["apply", "--yes"]).expect_code(0);
    fleet.expect_quiet_end(&["plan", "--rotate", "--check"], 0);
    fleet.expect_quiet_end(&["plan", "--rotate", "--check", "--detailed-exitcode"], 2);
    fleet.expect_quiet_end(&["plan", "--rotate", "--format", "json"], 0);
}

#[test]
fn a_closed_pipe_ends_verify_and_status_quietly_with_their_verdicts() {
    let fleet = Example::new();
    // Before the bootstrap: verify says the CA was never created (critical), status that
    // there is no run yet.
    let before = fleet.run(&["verify"]);
    fleet.expect_quiet_end(&["verify"], before.code);
    fleet.expect_quiet_end(&["status"], 0);
    fleet.run(&["apply", "--yes"]).expect_code(0);
    fleet.expect_quiet_end(&["verify"], 0);
    fleet.expect_quiet_end(&["verify", "--format", "json"], 0);
    fleet.expect_quiet_end(&["status"], 0);
    fleet.expect_quiet_end(&["status", "--format", "json"], 0);
    // An error report to a closed stderr: still the error's exit code.
    fleet.expect_quiet_end(&["status", "--ca", "nope"], 64);
}

#[test]
fn a_closed_pipe_does_not_cut_an_apply_short() {
    let fleet = Example::new();
    fleet.expect_quiet_end(&["apply", "--yes"], 0);
    fleet.expect_quiet_end(&["apply", "--rotate", "--yes"], 0);
    fleet.expect_quiet_end(&["apply", "--rotate", "--yes", "--format", "json"], 0);
    let status = fleet.run(&["status"]);
    status.expect_code(0);
    fleet.run(&["verify"]).expect_code(0);
}
