//! Tests of the step mechanism against an in-memory node.

use std::time::Duration;

use super::*;
use crate::executor::StepErrorKind;
use crate::inventory::{Node, TransportKind};
use crate::transport::fake::{out, FakeNode};
use crate::transport::{ErrorKind, ExecOutput};

fn node(confirm_timeout_ms: u64) -> Node {
    Node {
        name: "app1".into(),
        transport: TransportKind::Local,
        via: None,
        trust_bundle: "/etc/tls/{ca}/ca.pem".into(),
        cert: "/etc/tls/cert.pem".into(),
        key: "/etc/tls/key.pem".into(),
        proof_cert: Some("/etc/tls/cross.pem".into()),
        reload: Some("systemctl reload envoy-{ca}".into()),
        confirm: Some("tls-health --node {node} --ca {ca}".into()),
        confirm_timeout: Duration::from_millis(confirm_timeout_ms),
        probe: None,
        tls: None,
        dns_names: vec![],
        become_with: Default::default(),
        files: Default::default(),
        stores: Default::default(),
    }
}

fn ops() -> Vec<FileOp> {
    vec![
        FileOp::Write {
            path: "/etc/tls/key.pem".into(),
            data: b"KEY".to_vec(),
            mode: 0o600,
            what: "key".into(),
        },
        FileOp::Write {
            path: "/etc/tls/cert.pem".into(),
            data: b"CERT".to_vec(),
            mode: 0o644,
            what: "certificate".into(),
        },
        FileOp::Remove {
            path: "/etc/tls/cross.pem".into(),
            what: "proof-key certificate".into(),
        },
    ]
}

/// Node app1 answering from `script`, holding an old key and a proof-key certificate.
fn fake(script: Vec<Result<ExecOutput, ErrorKind>>) -> FakeNode {
    let f = FakeNode::new("app1").scripted(script);
    f.put("/etc/tls/cross.pem", b"X", 0o644);
    f.put("/etc/tls/key.pem", b"OLDKEY", 0o600);
    f
}

#[test]
fn file_ops_become_one_script_with_the_data_on_stdin() {
    let t = fake(vec![out(0, "")]);
    let reloaded =
        apply_file_ops(&t, &node(200), "internal", &ops(), Some("g1"), None, false).unwrap();
    assert_eq!(reloaded, None);
    let files = t.files.lock().unwrap();
    assert_eq!(files["/etc/tls/key.pem"].0, b"KEY");
    assert_eq!(files["/etc/tls/cert.pem"].0, b"CERT");
    assert!(!files.contains_key("/etc/tls/cross.pem"));
    assert!(
        t.commands.lock().unwrap().is_empty(),
        "no other command ran"
    );
}

#[test]
fn a_file_outside_the_node_set_is_refused() {
    let t = fake(vec![out(0, "")]);
    let stray = vec![FileOp::Write {
        path: "/etc/passwd".into(),
        data: b"x".to_vec(),
        mode: 0o644,
        what: "certificate".into(),
    }];
    let e = apply_file_ops(&t, &node(200), "internal", &stray, None, None, false).unwrap_err();
    assert_eq!(e.kind, StepErrorKind::Permanent);
    assert!(
        e.message.contains("/etc/passwd on node app1"),
        "{}",
        e.message
    );
}

#[test]
fn write_errors_keep_kind_and_name_node_and_file() {
    let t = FakeNode {
        fail_write: Some(ErrorKind::Io),
        ..fake(vec![out(0, "")])
    };
    let e = apply_file_ops(&t, &node(200), "internal", &ops(), None, None, false).unwrap_err();
    assert_eq!(e.kind, StepErrorKind::Permanent);
    assert_eq!(
        e.message,
        "failed to write the files of CA internal on node app1: permission denied"
    );
    let t = FakeNode {
        fail_write: Some(ErrorKind::Transient),
        ..fake(vec![out(0, "")])
    };
    assert!(
        apply_file_ops(&t, &node(200), "internal", &ops(), None, None, false)
            .unwrap_err()
            .is_transient()
    );
}

#[test]
fn reload_and_confirm_substitute_node_and_ca() {
    let t = fake(vec![out(0, "")]);
    apply_and_confirm(&t, &node(500), "internal", &ops(), None, false).unwrap();
    let cmds = t.commands.lock().unwrap().clone();
    assert_eq!(
        cmds,
        vec![
            "systemctl reload envoy-internal",
            "tls-health --node app1 --ca internal"
        ]
    );
}

#[test]
fn failed_reload_quotes_command_and_last_stderr_line() {
    let t = fake(vec![out(3, "starting\nJob for envoy.service failed\n")]);
    let e = run_reload(&t, &node(200), "internal").unwrap_err();
    assert_eq!(e.kind, StepErrorKind::Permanent);
    assert!(
        e.message
            .contains("reload command `systemctl reload envoy-internal` on node app1"),
        "{}",
        e.message
    );
    assert!(
        e.message
            .ends_with("exited 3: Job for envoy.service failed"),
        "{}",
        e.message
    );
}

#[test]
fn confirm_polls_until_exit_zero() {
    let t = fake(vec![
        out(1, "not yet"),
        Err(ErrorKind::Transient),
        out(1, "still old cert"),
        out(0, ""),
    ]);
    let n = node(5_000);
    apply_file_ops(&t, &n, "internal", &ops(), None, None, false).unwrap();
    let written: Vec<FileHash> = ops().iter().map(FileOp::hash).collect();
    let t0 = std::time::Instant::now();
    confirm(&t, &n, "internal", &written).unwrap();
    assert_eq!(t.commands.lock().unwrap().len(), 4);
    // 50 + 100 + 200 ms of backoff between the four runs.
    assert!(
        t0.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn confirm_times_out_quoting_the_last_stderr_line() {
    let t = fake(vec![out(2, "handshake ok\nserving old certificate\n")]);
    let n = node(300);
    let t0 = std::time::Instant::now();
    let e = poll_confirm(&t, &n, "tls-health").unwrap_err();
    assert_eq!(e.kind, StepErrorKind::ConfirmFailed);
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(
        e.message.starts_with("node app1 did not confirm within"),
        "{}",
        e.message
    );
    assert!(e.message.contains("`tls-health`"), "{}", e.message);
    assert!(
        e.message.ends_with("exited 2: serving old certificate"),
        "{}",
        e.message
    );
}

#[test]
fn confirm_timeout_reports_the_real_exit_not_a_run_cut_off_by_the_deadline() {
    let cut_off = Ok(ExecOutput {
        status: None,
        stdout: String::new(),
        stderr: String::new(),
    });
    let t = fake(vec![out(1, "not serving the new certificate"), cut_off]);
    let e = poll_confirm(&t, &node(300), "tls-health").unwrap_err();
    assert!(
        e.message
            .contains("last: exited 1: not serving the new certificate (a later run was cut off"),
        "{}",
        e.message
    );
}

#[test]
fn confirm_fails_when_a_file_does_not_read_back() {
    let t = fake(vec![out(0, "")]);
    let n = node(300);
    apply_file_ops(&t, &n, "internal", &ops(), None, None, false).unwrap();
    t.files
        .lock()
        .unwrap()
        .insert("/etc/tls/cert.pem".into(), (b"TAMPERED".to_vec(), 0o644));
    let written: Vec<FileHash> = ops().iter().map(FileOp::hash).collect();
    let e = confirm(&t, &n, "internal", &written).unwrap_err();
    assert_eq!(e.kind, StepErrorKind::ConfirmFailed);
    assert!(
        e.message.contains("file /etc/tls/cert.pem on node app1"),
        "{}",
        e.message
    );
    assert!(
        t.commands.lock().unwrap().is_empty(),
        "confirm command must not run after a bad read-back"
    );
}

#[test]
fn files_match_checks_content_and_absence() {
    let t = fake(vec![out(0, "")]);
    let n = node(300);
    let expected: Vec<FileHash> = ops().iter().map(FileOp::hash).collect();
    assert!(!files_match(&t, &n, &expected).unwrap());
    apply_file_ops(&t, &n, "internal", &ops(), None, None, false).unwrap();
    assert!(files_match(&t, &n, &expected).unwrap());
    t.files
        .lock()
        .unwrap()
        .insert("/etc/tls/cross.pem".into(), (b"X".to_vec(), 0o644));
    assert!(
        !files_match(&t, &n, &expected).unwrap(),
        "a file that must be absent is present"
    );
}

#[test]
fn reload_and_confirm_substitutions_are_shell_quoted() {
    let mut n = node(1000);
    n.name = "app1;touch x".into();
    assert_eq!(
        command_for("tls-health --node {node} --ca {ca}", &n, "it's"),
        "tls-health --node 'app1;touch x' --ca 'it'\\''s'"
    );
    n.name = "app1".into();
    assert_eq!(
        command_for("systemctl reload envoy-{ca}", &n, "internal"),
        "systemctl reload envoy-internal"
    );
}

#[test]
fn confirm_does_not_give_up_one_delay_before_the_deadline() {
    // With a 3 s timeout the backoff runs the command at 0, 0.05, 0.15, 0.35, 0.75 and
    // 1.55 s; the next pause (1.6 s) would end after the deadline. The node confirms
    // from 2.5 s on: the command must run once more at the deadline, not give up at 1.55 s.
    let start = std::time::Instant::now();
    let t = FakeNode::new("app1").succeeding_from(start + Duration::from_millis(2_500));
    let r = poll_confirm(&t, &node(3_000), "tls-health");
    assert!(r.is_ok(), "gave up after {:?}: {r:?}", start.elapsed());
    assert!(start.elapsed() >= Duration::from_millis(2_500));
}

#[test]
fn confirm_that_never_succeeds_polls_until_the_deadline() {
    let start = std::time::Instant::now();
    let t = FakeNode::new("app1").succeeding_from(start + Duration::from_secs(3_600));
    let e = poll_confirm(&t, &node(3_000), "tls-health").unwrap_err();
    assert_eq!(e.kind, StepErrorKind::ConfirmFailed);
    assert!(
        start.elapsed() >= Duration::from_millis(3_000),
        "gave up after {:?}",
        start.elapsed()
    );
}
