//! Node files an attacker or an accident made hostile: a FIFO where `cert.pem` should
//! be, a link to `/dev/zero`, a file far too large. verify must neither hang nor run out
//! of memory: each becomes a finding on its node that names the file and says why.
//! Hostile servers at a node's `tls_address`, reached through the node's SSH session (a
//! direct-tcpip channel): one that drips a byte every two seconds is cut off at
//! `--probe-timeout`, one that shows the node's certificate without its key is refused.

use std::time::{Duration, Instant};

use certroll::exit;
use certroll::transport::limits::MAX_FILE_BYTES;

use crate::support::hostile_tls::{Behaviour, Tls, TlsServer};
use crate::support::verify_kit::{FleetSpec, TlsFile};
use crate::support::INTERNAL_SUFFIX;

#[test]
fn fifo_dev_zero_and_huge_node_files_are_findings_not_hangs() {
    let f = FleetSpec::standard().bootstrap();
    let fifo = f.path("app1", TlsFile::Cert);
    std::fs::remove_file(&fifo).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let zero = f.path("db1", TlsFile::Bundle);
    std::fs::remove_file(&zero).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let huge = std::fs::OpenOptions::new()
        .write(true)
        .open(f.path("lb1", TlsFile::Cert))
        .unwrap();
    huge.set_len(MAX_FILE_BYTES + 1).unwrap();

    let start = Instant::now();
    let r = f.verify_json(&[]);
    // A FIFO read would block until the test's own time limit (minutes).
    assert!(start.elapsed() < Duration::from_secs(120), "{}", r.run);
    assert_eq!(r.code(), exit::VERIFY_UNKNOWN, "{}", r.run);
    for (node, file, why) in [
        ("app1", TlsFile::Cert, "it is a FIFO, not a regular file"),
        (
            "db1",
            TlsFile::Bundle,
            "it is a character device, not a regular file",
        ),
        ("lb1", TlsFile::Cert, "it is larger than certroll reads"),
    ] {
        let found = r.finding(node, "unreadable");
        let message = found["message"].as_str().unwrap_or_default();
        let path = f.remote_path(file);
        assert!(message.contains(&path), "{node}: {message}\n{}", r.run);
        assert!(message.contains(why), "{node}: {message}\n{}", r.run);
    }
}

#[test]
fn verify_live_through_ssh_ends_a_dripping_handshake_at_the_probe_timeout() {
    let f = FleetSpec::standard().bootstrap();
    let dir = |node: &str| f.path(node, TlsFile::Cert).parent().unwrap().to_path_buf();
    let drip = TlsServer::dripping(&dir("db1"));
    let garbage = TlsServer::start(&dir("app1"), Tls::V12, Behaviour::GarbageSignature);
    // Names only the nodes resolve: the handshakes go through their SSH sessions.
    let text = std::fs::read_to_string(&f.inventory).unwrap();
    let mut text = text;
    for (node, port) in [("db1", drip.port), ("app1", garbage.port)] {
        let header = format!("[nodes.{node}]\n");
        let line = format!("tls_address = \"{node}{INTERNAL_SUFFIX}:{port}\"\n");
        assert!(text.contains(&header), "{text}");
        text = text.replacen(&header, &format!("{header}{line}"), 1);
    }
    std::fs::write(&f.inventory, text).unwrap();
    // What the rest of verify takes here (SSH sessions, reading files), for the bound.
    let start = Instant::now();
    f.certroll(&["verify"]).expect_code(exit::VERIFY_OK);
    let baseline = start.elapsed();

    let start = Instant::now();
    let run = f.certroll(&["verify", "--live", "--probe-timeout", "5s"]);
    let took = start.elapsed();
    run.expect_code(exit::VERIFY_CRITICAL)
        .expect_output(&format!(
            "node db1 at db1{INTERNAL_SUFFIX}:{} (as reached from the node): no complete TLS handshake within 5s",
            drip.port
        ))
        .expect_output("does not verify with the public key of the certificate it served");
    // Generous for a loaded machine; before, the drip held verify for hundreds of seconds.
    let bound = baseline + Duration::from_secs(5 + 3);
    assert!(took < bound, "took {took:?} (bound {bound:?})\n{run}");
    assert_eq!(drip.connections(), 1, "{run}");
}
