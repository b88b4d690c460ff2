//! Regression tests, through the real binary on local nodes, for what an operator or an
//! attacker can feed certroll: a deleted lock file under a running apply, `status` during
//! that apply, a permissive umask, a missing or non-UTF-8 inventory, hostile `dns_names`,
//! subjects and durations that used to fail late or panic, and two nodes sharing a file.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::run::{finish, prepare, run_command, Run};

/// Longest a test waits for a background apply to reach its blocked reload.
const REACH_TIMEOUT: Duration = Duration::from_secs(120);

/// Three local nodes (lb → app, app ⇄ db) in a temporary directory.
struct Local {
    dir: tempfile::TempDir,
}

impl Local {
    /// `reload` is every node's reload command; `extra` is appended to the inventory.
    fn new(reload: &str, extra: &str) -> Local {
        let dir = tempfile::tempdir().unwrap();
        let local = Local { dir };
        local.write(reload, extra);
        local
    }

    fn write(&self, reload: &str, extra: &str) {
        let text = format!(
            "[ca.internal]\nsubject = \"CN=Input CA\"\n\n\
             [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\n\
             cert = \"nodes/{{node}}/cert.pem\"\nkey = \"nodes/{{node}}/key.pem\"\n\
             reload = {reload:?}\nconfirm_timeout = \"200s\"\n\n\
             [nodes.lb]\ndns_names = [\"lb.test\"]\n[nodes.app]\ndns_names = [\"app.test\"]\n\
             [nodes.db]\ndns_names = [\"db.test\"]\n\n\
             [[links]]\nclient = \"lb\"\nserver = \"app\"\n\n\
             [[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\n{extra}"
        );
        std::fs::write(self.inventory(), text).unwrap();
    }

    fn inventory(&self) -> PathBuf {
        self.dir.path().join("certroll.toml")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn state(&self) -> PathBuf {
        self.path(".certroll")
    }

    fn command(&self, args: &[&str]) -> (Command, Vec<String>) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_certroll"));
        cmd.arg("-i")
            .arg(self.inventory())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("CERTROLL_INVENTORY");
        let mut label = vec!["certroll".to_string()];
        label.extend(args.iter().map(|s| s.to_string()));
        (cmd, label)
    }

    fn run(&self, args: &[&str]) -> Run {
        let (mut cmd, label) = self.command(args);
        run_command(&mut cmd, label)
    }

    fn spawn(&self, args: &[&str]) -> (std::process::Child, Vec<String>) {
        let (mut cmd, label) = self.command(args);
        let child = prepare(&mut cmd).spawn().expect("start certroll");
        (child, label)
    }

    /// Waits until a reload has started (the reload command creates `started`).
    fn wait_for_reload(&self, child: &mut std::process::Child) {
        let deadline = Instant::now() + REACH_TIMEOUT;
        while !self.path("started").exists() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("apply ended before its first reload: {status}");
            }
            assert!(Instant::now() < deadline, "apply never reached a reload");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A reload that blocks until the test creates `release` (bounded by confirm_timeout).
const BLOCKING_RELOAD: &str =
    "touch started; i=0; while [ ! -e release ] && [ $i -lt 3000 ]; do sleep 0.05; i=$((i+1)); done";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("stat {}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn lock_bypass_by_deleting_the_lock_file_is_refused() {
    let fleet = Local::new(BLOCKING_RELOAD, "");
    let (mut first, label) = fleet.spawn(&["apply", "--yes"]);
    fleet.wait_for_reload(&mut first);
    std::fs::remove_file(fleet.state().join("lock")).unwrap();

    let second = fleet.run(&["apply", "--yes"]);
    std::fs::write(fleet.path("release"), "").unwrap();
    let first = finish(label, first);
    second
        .expect_code(75)
        .expect_output("another certroll run holds the lock");
    first.expect_code(0);
    let journal = std::fs::read_to_string(fleet.state().join("journal.jsonl")).unwrap();
    let starts = journal.matches("\"record\":\"run-start\"").count();
    assert_eq!(starts, 1, "a second run started or resumed:\n{journal}");
}

#[test]
fn status_during_a_live_apply_says_running_and_exits_0() {
    let fleet = Local::new(BLOCKING_RELOAD, "");
    let (mut first, label) = fleet.spawn(&["apply", "--yes"]);
    fleet.wait_for_reload(&mut first);
    let pid = first.id();

    let text = fleet.run(&["status"]);
    let json = fleet.run(&["status", "--format", "json"]);
    std::fs::write(fleet.path("release"), "").unwrap();
    finish(label, first).expect_code(0);

    text.expect_code(0)
        .expect_stdout("running")
        .expect_stdout(&format!("pid {pid}"));
    assert!(
        !text
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("interrupted")),
        "{text}"
    );
    assert!(!text.stdout.contains("— interrupted"), "{text}");
    json.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["status"], "running", "{json}");
    assert_eq!(doc["holder"]["pid"], pid, "{json}");
    let steps = doc["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["state"] == "running"),
        "the step in its reload is running: {json}"
    );

    // Once it ended, status reports the finished run.
    fleet
        .run(&["status"])
        .expect_code(0)
        .expect_stdout("complete");
}

#[test]
fn status_never_creates_the_state_dir_or_journal() {
    let fleet = Local::new("true", "");
    let run = fleet.run(&["status"]);
    run.expect_code(0).expect_stdout("no run recorded");
    assert!(
        !fleet.state().exists(),
        "status created the state directory"
    );

    std::fs::create_dir(fleet.state()).unwrap();
    fleet.run(&["status", "--format", "json"]).expect_code(0);
    let left: Vec<_> = std::fs::read_dir(fleet.state())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "status created {left:?}");
}

#[test]
fn state_files_are_private_under_umask_000() {
    let fleet = Local::new("true", "");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 000 && exec \"$0\" -i \"$1\" apply --yes")
        .arg(env!("CARGO_BIN_EXE_certroll"))
        .arg(fleet.inventory())
        .current_dir(fleet.dir.path());
    run_command(&mut cmd, vec!["umask 000; certroll apply --yes".into()]).expect_code(0);
    let state = fleet.state();
    assert_eq!(mode(&state), 0o700, "state directory");
    assert_eq!(mode(&state.join("journal.jsonl")), 0o600, "journal");
    assert_eq!(mode(&state.join("lock")), 0o600, "lock");
    assert_eq!(mode(&state.join("ca/internal/g1/ca.key")), 0o600, "CA key");
    assert_eq!(mode(&fleet.path("nodes/app/key.pem")), 0o600, "leaf key");
}

#[test]
fn no_inventory_is_reported_once_with_a_hint_and_exit_66() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_certroll"));
    cmd.arg("plan")
        .current_dir(dir.path())
        .env_remove("CERTROLL_INVENTORY");
    let run = run_command(&mut cmd, vec!["certroll plan".into()]);
    run.expect_code(66)
        .expect_output(&dir.path().join("certroll.toml").display().to_string())
        .expect_output("-i PATH")
        .expect_output("CERTROLL_INVENTORY")
        .expect_output("certroll init");
    assert_eq!(run.stderr.matches("no inventory file").count(), 1, "{run}");
    assert!(!run.stderr.contains("caused by"), "{run}");
}

#[test]
fn non_utf8_inventory_gives_the_position_of_the_bad_byte() {
    let fleet = Local::new("true", "");
    let mut bytes = std::fs::read(fleet.inventory()).unwrap();
    let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
    bytes.extend_from_slice(b"\n[nodes.cache]\ndns_names = [\"caf\xe9.test\"]\n");
    std::fs::write(fleet.inventory(), bytes).unwrap();
    let run = fleet.run(&["plan"]);
    // The bad byte follows `dns_names = ["caf` (17 characters) on the third added line.
    let at = format!("certroll.toml:{}:18: ", newlines + 3);
    run.expect_code(78)
        .expect_output(&at)
        .expect_output("not UTF-8");
}

#[test]
fn dns_name_injection_into_probe_is_refused_at_load() {
    let fleet = Local::new("true", "");
    fleet.run(&["apply", "--yes"]).expect_code(0);
    let text = std::fs::read_to_string(fleet.inventory()).unwrap().replace(
        "dns_names = [\"app.test\"]",
        "dns_names = [\"app.test$(touch pwned)\"]\nprobe = \"true {name}\"",
    );
    std::fs::write(fleet.inventory(), text).unwrap();
    for args in [&["verify", "--live"][..], &["plan"], &["apply", "--yes"]] {
        let run = fleet.run(args);
        run.expect_code(78)
            .expect_output(
                "certroll.toml:15:14: dns_names entry \"app.test$(touch pwned)\" of node app",
            )
            .expect_output("is not a host name or IP address");
    }
    assert!(!fleet.path("pwned").exists(), "the injected command ran");
}

#[test]
fn bad_subject_and_validity_fail_at_load_not_in_apply() {
    for (line, want) in [
        (
            "subject = \"O=Example\"",
            "certroll.toml:2:11: bad subject for CA internal",
        ),
        ("subject = \"CN=x,XX=y\"", "unsupported attribute \"XX\""),
        (
            "validity = \"10000y\"",
            "certroll.toml:2:12: bad validity for CA internal",
        ),
    ] {
        let fleet = Local::new("true", "");
        let text = std::fs::read_to_string(fleet.inventory())
            .unwrap()
            .replace("subject = \"CN=Input CA\"", line);
        std::fs::write(fleet.inventory(), text).unwrap();
        fleet.run(&["plan"]).expect_code(78).expect_output(want);
        fleet
            .run(&["apply", "--yes"])
            .expect_code(78)
            .expect_output(want);
        assert!(
            !fleet.state().exists(),
            "{line}: apply created the state directory"
        );
    }
}

#[test]
fn huge_durations_are_refused_without_a_panic() {
    let fleet = Local::new("true", "");
    fleet.run(&["apply", "--yes"]).expect_code(0);
    for args in [
        &["verify", "--warn-within", "7980y"][..],
        &["verify", "--live", "--probe-timeout", "300000000000y"],
    ] {
        let run = fleet.run(args);
        run.expect_code(64).expect_output("longer than 1000y");
        assert!(!run.stderr.contains("panicked"), "{run}");
    }
    let text = std::fs::read_to_string(fleet.inventory()).unwrap().replace(
        "confirm_timeout = \"200s\"",
        "confirm_timeout = \"300000000000y\"",
    );
    std::fs::write(fleet.inventory(), text).unwrap();
    let run = fleet.run(&["apply", "--yes", "--rotate"]);
    run.expect_code(78)
        .expect_output("certroll.toml:10:19: bad confirm_timeout")
        .expect_output("longer than 1000y");
    assert!(!run.stderr.contains("panicked"), "{run}");
}

#[test]
fn two_local_nodes_sharing_a_cert_file_are_refused() {
    let fleet = Local::new(
        "true",
        "\n[nodes.db2]\ncert = \"nodes/db/cert.pem\"\n\n[[links]]\nclient = \"app\"\nserver = \"db2\"\n",
    );
    let run = fleet.run(&["plan"]);
    run.expect_code(78)
        .expect_output("nodes db and db2 keep a file at the same path")
        .expect_output("nodes/db/cert.pem");
    fleet.run(&["apply", "--yes"]).expect_code(78);
    assert!(!fleet.path("nodes").exists(), "files were written");
}

#[test]
fn lock_refusal_names_the_running_holder_not_a_finished_run() {
    let fleet = Local::new("true", "");
    // A finished run leaves its record in the lock file.
    fleet.run(&["apply", "--yes"]).expect_code(0);
    fleet.write(BLOCKING_RELOAD, "");
    let racers: Vec<_> = (0..6)
        .map(|_| fleet.spawn(&["apply", "--yes", "--rotate"]))
        .collect();
    let pids: Vec<u32> = racers.iter().map(|(c, _)| c.id()).collect();
    // The losers are refused at once; the winner blocks in its first reload.
    let deadline = Instant::now() + REACH_TIMEOUT;
    while !fleet.path("started").exists() {
        assert!(Instant::now() < deadline, "no racer reached a reload");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The winner wrote its record before it ran any step.
    let record = std::fs::read_to_string(fleet.state().join("lock")).unwrap();
    let holder: serde_json::Value = serde_json::from_str(record.trim()).unwrap();
    let winner_pid = holder["pid"].as_u64().unwrap() as u32;
    assert!(
        pids.contains(&winner_pid),
        "the lock names {winner_pid}, not a racer"
    );
    let mut runs = Vec::new();
    let mut winner = None;
    for ((child, label), pid) in racers.into_iter().zip(&pids) {
        if *pid == winner_pid {
            winner = Some((child, label));
        } else {
            runs.push(finish(label, child));
        }
    }
    std::fs::write(fleet.path("release"), "").unwrap();
    let (child, label) = winner.unwrap();
    finish(label, child).expect_code(0);
    assert_eq!(runs.len(), 5);
    for run in &runs {
        run.expect_code(75)
            .expect_output(&format!("pid {winner_pid} "));
    }
}
