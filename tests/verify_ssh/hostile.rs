//! Node files an attacker or an accident made hostile: a FIFO where `cert.pem` should
//! be, a link to `/dev/zero`, a file far too large. verify must neither hang nor run out
//! of memory: each becomes a finding on its node that names the file and says why.

use std::time::{Duration, Instant};

use certroll::exit;
use certroll::transport::limits::MAX_FILE_BYTES;

use crate::support::verify_kit::{FleetSpec, TlsFile};

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
