//! Node commands that leave a background child holding their output, through the real
//! binary on local nodes (the issue's reproductions): `apply` with such a reload and
//! confirm, `verify --live` with such a probe. Each command is over when its shell
//! exits; the 25 s children must not set the pace.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn write_inventory(dir: &Path, reload: &str, confirm: &str, probe: &str) {
    let text = format!(
        "[ca.internal]\nsubject = \"CN=Commands CA\"\n\n\
         [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\n\
         cert = \"nodes/{{node}}/cert.pem\"\nkey = \"nodes/{{node}}/key.pem\"\n\
         reload = '{reload}'\nconfirm = '{confirm}'\nconfirm_timeout = \"3s\"\n\
         probe = '{probe}'\n\n\
         [nodes.app]\ndns_names = [\"app.test\"]\n[nodes.db]\ndns_names = [\"db.test\"]\n\n\
         [[links]]\nclient = \"app\"\nserver = \"db\"\n"
    );
    std::fs::write(dir.join("certroll.toml"), text).unwrap();
}

fn certroll(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certroll"))
        .arg("-i")
        .arg(dir.join("certroll.toml"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CERTROLL_INVENTORY")
        .stdin(Stdio::null())
        .output()
        .expect("run certroll")
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn daemonizing_reload_and_confirm_do_not_stall_apply() {
    let dir = tempfile::tempdir().unwrap();
    write_inventory(dir.path(), "sleep 25 & true", "sleep 25 & true", "true");
    let start = Instant::now();
    let out = certroll(dir.path(), &["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // Two steps, each with a reload and a confirm whose children live 25 s.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "apply took {:?}: it waited for the children\n{}",
        start.elapsed(),
        show(&out)
    );
}

#[test]
fn probe_that_leaves_a_child_does_not_outlast_probe_timeout() {
    let dir = tempfile::tempdir().unwrap();
    write_inventory(dir.path(), "true", "true", "true");
    let out = certroll(dir.path(), &["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    // One probe returns at once but its child holds the output; one never returns.
    for (probe, code) in [("sleep 25 & echo started", 0), ("sleep 25; echo never", 2)] {
        write_inventory(dir.path(), "true", "true", probe);
        let start = Instant::now();
        let out = certroll(dir.path(), &["verify", "--live", "--probe-timeout", "2s"]);
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "verify took {:?} with probe `{probe}`\n{}",
            start.elapsed(),
            show(&out)
        );
        assert_eq!(out.status.code(), Some(code), "{probe}\n{}", show(&out));
    }
}

/// A node command that erases the operator's line and forges a verdict, then fails.
const FORGE: &str = r#"printf "\033[2K\rverify: OK\n" >&2; printf "\033[2K\rverify: OK\n"; exit 1"#;
/// What it printed, exactly (JSON keeps it so).
const FORGED: &str = "\u{1b}[2K\rverify: OK";
/// How text output shows it.
const SHOWN: &str = "\\x1b[2K\\rverify: OK";

/// Panics when `text` holds a control character other than a newline.
#[track_caller]
fn assert_no_raw_control(what: &str, text: &str) {
    let raw: Vec<char> = text
        .chars()
        .filter(|&c| c != '\n' && c.is_control())
        .collect();
    assert!(
        raw.is_empty(),
        "{what}: raw control characters {raw:?}:\n{text}"
    );
}

/// Panics unless `text` shows the forged output escaped ([`SHOWN`]) and nothing raw.
#[track_caller]
fn assert_escaped(what: &str, text: &str) {
    assert_no_raw_control(what, text);
    assert!(
        text.contains(SHOWN),
        "{what} does not show {SHOWN}:\n{text}"
    );
}

#[test]
fn a_reload_or_confirm_printing_terminal_escapes_is_shown_escaped() {
    for (reload, confirm) in [(FORGE, "true"), ("true", FORGE)] {
        let dir = tempfile::tempdir().unwrap();
        write_inventory(dir.path(), reload, confirm, "true");
        let out = certroll(dir.path(), &["apply", "--yes"]);
        assert_eq!(out.status.code(), Some(75), "{}", show(&out));
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_escaped(&format!("apply (reload {reload:?})"), &all);

        let status = certroll(dir.path(), &["status"]);
        assert_escaped("status", &String::from_utf8_lossy(&status.stdout));
        let json = certroll(dir.path(), &["status", "--format", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        let errors: Vec<&str> = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["error"].as_str())
            .collect();
        assert!(
            errors.iter().any(|e| e.contains(FORGED)),
            "status JSON must keep the exact output: {errors:?}"
        );

        // Resumed with NDJSON events: the exact output in the event, nothing raw on stderr.
        let events = certroll(dir.path(), &["apply", "--yes", "--format", "json"]);
        let stdout = String::from_utf8_lossy(&events.stdout);
        let failed: Vec<serde_json::Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e: &serde_json::Value| e["event"] == "step-failed")
            .collect();
        assert!(
            failed
                .iter()
                .any(|e| e["error"].as_str().is_some_and(|s| s.contains(FORGED))),
            "the step-failed event must keep the exact output:\n{stdout}"
        );
        assert_no_raw_control(
            "apply --format json stderr",
            &String::from_utf8_lossy(&events.stderr),
        );
    }
}
