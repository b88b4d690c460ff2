//! SIGINT and SIGTERM during `certroll apply` on local nodes, through the real binary:
//! the run stops starting steps, the reload still running is killed with its whole
//! process group (no orphan survives), the run is journaled as interrupted, the exit
//! code is 130 (SIGINT) or 75 (SIGTERM), and the next `apply` resumes and completes.
//! `verify --live` interrupted during a probe kills the probe's group and exits 130.
//! certroll's own TLS confirm, held by a server that drips one byte every few seconds,
//! ends at the first SIGINT.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

mod support;
use support::hostile_tls::{self, TlsServer};

/// A reload that never ends by itself and leaves a background child: both write their
/// PIDs (the shell first) so the test can check that they are gone.
const HANGING_RELOAD: &str = "echo $$ >> pids; sleep 300 & echo $! >> pids; sleep 300";

fn write_inventory(dir: &Path, reload: &str) {
    let text = format!(
        "[ca.internal]\nsubject = \"CN=Interrupt CA\"\n\n\
         [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\n\
         cert = \"nodes/{{node}}/cert.pem\"\nkey = \"nodes/{{node}}/key.pem\"\n\
         reload = '{reload}'\nconfirm_timeout = \"5m\"\n\n\
         [nodes.app]\ndns_names = [\"app.test\"]\n[nodes.db]\ndns_names = [\"db.test\"]\n\n\
         [[links]]\nclient = \"app\"\nserver = \"db\"\n"
    );
    std::fs::write(dir.join("certroll.toml"), text).unwrap();
}

fn certroll(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_certroll"));
    cmd.arg("-i")
        .arg(dir.join("certroll.toml"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CERTROLL_INVENTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn pids(dir: &Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Gone, or a zombie waiting for its reaper: either way no longer running.
fn running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

/// Waits (bounded) for `child` to exit; kills it and fails if it does not.
fn wait_bounded(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code(), text);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "certroll did not exit within {limit:?} of the signal\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` to `child`, then waits for it (at most 120 s): when the signal went, the
/// exit code and the output.
fn signal_and_wait(child: std::process::Child, signal: &str) -> (Instant, (Option<i32>, String)) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let start = Instant::now();
    (start, wait_bounded(child, Duration::from_secs(120)))
}

/// Starts `apply`, waits until a reload runs, sends `signal`; returns exit code and output.
fn interrupt_a_reload(dir: &Path, signal: &str) -> (Option<i32>, String) {
    write_inventory(dir, HANGING_RELOAD);
    let child = certroll(dir, &["apply", "--yes"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while pids(dir).len() < 2 {
        assert!(Instant::now() < deadline, "no reload started");
        thread::sleep(Duration::from_millis(50));
    }
    let (start, result) = signal_and_wait(child, signal);
    // The reload sleeps 300 s: returning long before proves it was not waited for.
    assert!(start.elapsed() < Duration::from_secs(60), "{}", result.1);
    result
}

fn journal_lines(dir: &Path) -> Vec<serde_json::Value> {
    let path: PathBuf = dir.join(".certroll").join("journal.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("journal line"))
        .collect()
}

fn check_interrupted_then_resume(dir: &Path, code: Option<i32>, out: &str, signal: &str) {
    for pid in pids(dir) {
        let until = Instant::now() + Duration::from_secs(20);
        while running(pid) && Instant::now() < until {
            thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !running(pid),
            "process {pid} of the reload outlived certroll\n{out}"
        );
    }
    let journal = journal_lines(dir);
    let end = journal.last().expect("journal has records");
    assert_eq!(end["record"], "run-end", "{journal:#?}");
    assert_eq!(end["status"], "interrupted", "{journal:#?}");
    let failed = journal
        .iter()
        .find(|r| r["record"] == "step-failed")
        .unwrap_or_else(|| panic!("the step cut short is journaled\n{journal:#?}"));
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("interrupted by {signal}")),
        "{error}"
    );
    assert!(
        out.contains(&format!("stopped by {signal}")),
        "{code:?}\n{out}"
    );

    // The next run resumes the interrupted one and completes it.
    write_inventory(dir, "true");
    let resumed = certroll(dir, &["apply", "--yes"]).spawn().unwrap();
    let (code, out) = wait_bounded(resumed, Duration::from_secs(180));
    assert_eq!(code, Some(0), "{out}");
    let journal = journal_lines(dir);
    assert_eq!(
        journal.last().unwrap()["status"],
        "complete",
        "{journal:#?}"
    );
}

#[test]
fn sigint_during_a_reload_kills_its_group_journals_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = interrupt_a_reload(dir.path(), "-INT");
    assert_eq!(code, Some(130), "{out}");
    check_interrupted_then_resume(dir.path(), code, &out, "SIGINT");
}

#[test]
fn sigterm_during_a_reload_kills_its_group_journals_and_exits_75() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = interrupt_a_reload(dir.path(), "-TERM");
    assert_eq!(code, Some(75), "{out}");
    check_interrupted_then_resume(dir.path(), code, &out, "SIGTERM");
}

#[test]
fn sigint_during_a_live_probe_kills_it_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    write_inventory(dir.path(), "true");
    let boot = certroll(dir.path(), &["apply", "--yes"]).spawn().unwrap();
    let (code, out) = wait_bounded(boot, Duration::from_secs(180));
    assert_eq!(code, Some(0), "{out}");
    // The probe hangs with a background child; verify must not wait for either.
    let text = std::fs::read_to_string(dir.path().join("certroll.toml")).unwrap();
    let probe = "probe = 'echo $$ >> pids; sleep 300 & echo $! >> pids; sleep 300'\n";
    let text = text.replace("[nodes.app]\n", &format!("[nodes.app]\n{probe}"));
    std::fs::write(dir.path().join("certroll.toml"), text).unwrap();
    let child = certroll(dir.path(), &["verify", "--live", "--probe-timeout", "5m"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while pids(dir.path()).len() < 2 {
        assert!(Instant::now() < deadline, "no probe started");
        thread::sleep(Duration::from_millis(50));
    }
    let (start, (code, out)) = signal_and_wait(child, "-INT");
    assert!(start.elapsed() < Duration::from_secs(60), "{out}");
    assert_eq!(code, Some(130), "{out}");
    for pid in pids(dir.path()) {
        let until = Instant::now() + Duration::from_secs(20);
        while running(pid) && Instant::now() < until {
            thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !running(pid),
            "process {pid} of the probe outlived certroll\n{out}"
        );
    }
}

#[test]
fn sigint_during_a_tls_confirm_held_by_a_dripping_server_ends_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = hostile_tls::node_dir(dir.path(), "db");
    let server = TlsServer::dripping(&db);
    hostile_tls::write_inventory(dir.path(), Some(server.port), "5m");
    let child = certroll(dir.path(), &["apply", "--yes"]).spawn().unwrap();
    // db's install step is in its TLS confirm once the server has a connection.
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.connections() == 0 {
        assert!(Instant::now() < deadline, "no TLS confirm started");
        thread::sleep(Duration::from_millis(50));
    }
    thread::sleep(Duration::from_millis(500));
    let (start, (code, out)) = signal_and_wait(child, "-INT");
    // One read slice of the handshake (200 ms) and the run's wind-down, on a loaded machine.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "took {:?}\n{out}",
        start.elapsed()
    );
    assert_eq!(code, Some(130), "{out}");
    let journal = journal_lines(dir.path());
    let failed = journal
        .iter()
        .find(|r| r["record"] == "step-failed" && r["node"] == "db")
        .unwrap_or_else(|| panic!("db's step is journaled as failed\n{journal:#?}"));
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "interrupted by SIGINT while node db had not confirmed its TLS at 127.0.0.1:"
        ),
        "{error}"
    );
    assert_eq!(journal.last().unwrap()["status"], "interrupted");
}
