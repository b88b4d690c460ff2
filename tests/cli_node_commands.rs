//! Node commands that leave a background child holding their output, through the real
//! binary on local nodes (the reproductions): `apply` with such a reload and
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
