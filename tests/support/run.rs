//! Running a command from a test: no terminal, `NO_COLOR`, a time limit, both outputs
//! captured, and a [`Run`] whose failed assertions print the whole command and output.
//! With `CERTROLL_TEST_ECHO` set in the environment, every run is printed to stderr.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Longest a single command may take before the test fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(240);

/// The finished run of one command.
pub struct Run {
    /// The command line, program first.
    pub args: Vec<String>,
    /// Exit code; -1 if the process was killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\nexit code: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

impl Run {
    /// Panics, showing the whole output, unless the command exited with `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
        self
    }

    /// Panics unless stdout or stderr contains `needle`.
    #[track_caller]
    pub fn expect_output(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "the output does not mention {needle:?}\n{self}"
        );
        self
    }

    /// Panics unless standard output contains `needle`.
    #[track_caller]
    pub fn expect_stdout(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "standard output does not contain {needle:?}\n{self}"
        );
        self
    }

    /// Panics unless standard error contains `needle`.
    #[track_caller]
    pub fn expect_stderr(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "standard error does not contain {needle:?}\n{self}"
        );
        self
    }

    /// Standard output as one JSON document (`--format json`).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("standard output is not JSON: {e}\n{self}"))
    }

    /// Standard output as JSON events, one a line (`apply --format json`).
    #[track_caller]
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not a JSON event ({e}): {l}\n{self}"))
            })
            .collect()
    }

    /// Both outputs, for searches.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Prepares `cmd` the way every test runs commands: no terminal, no colour, piped output.
pub fn prepare(cmd: &mut Command) -> &mut Command {
    cmd.env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
}

/// Runs `cmd` (see [`prepare`]) and waits; `label` is its command line in messages.
pub fn run_command(cmd: &mut Command, label: Vec<String>) -> Run {
    let child = prepare(cmd)
        .spawn()
        .unwrap_or_else(|e| panic!("start {label:?}: {e}"));
    finish(label, child)
}

/// Runs `certroll -i INVENTORY ARGS...` (see [`run_command`]) after `setup` has added what
/// the test needs (a working directory, environment); its label is `certroll ARGS...`.
pub fn certroll(inventory: &Path, args: &[&str], setup: impl FnOnce(&mut Command)) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_certroll"));
    cmd.arg("-i").arg(inventory).args(args);
    setup(&mut cmd);
    let label = std::iter::once("certroll".to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect();
    run_command(&mut cmd, label)
}

/// Reads both pipes of a started child and waits, killing it after [`COMMAND_TIMEOUT`].
pub fn finish(label: Vec<String>, mut child: Child) -> Run {
    let out = drain(child.stdout.take().expect("stdout is piped"));
    let err = drain(child.stderr.take().expect("stderr is piped"));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        args: label,
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    if std::env::var_os("CERTROLL_TEST_ECHO").is_some() {
        eprintln!("{run}");
    }
    assert!(
        status.is_some(),
        "the command did not finish within {COMMAND_TIMEOUT:?}\n{run}"
    );
    run
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}
