//! The lock: one `apply` at a time, and released by the kernel when its holder dies.

use std::path::Path;
use std::time::Duration;

use certroll::journal::{Lock, LockError};

const CHILD_ENV: &str = "CERTROLL_TEST_LOCK_HOLDER_DIR";

/// Not a test on its own: the child process of `lock_dies_with_its_holder` re-enters the
/// test binary here, takes the lock, says so, and waits to be killed.
#[test]
fn lock_holder_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let _lock = Lock::acquire(Path::new(&dir), "certroll apply (child)").unwrap();
    println!("LOCKED");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn lock_dies_with_its_holder() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--exact",
            "lock::lock_holder_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    assert!(
        lines.any(|l| l.unwrap().contains("LOCKED")),
        "the child never took the lock"
    );

    let err = Lock::acquire(dir.path(), "certroll apply").unwrap_err();
    match &err {
        LockError::Held { holder, .. } => {
            assert_eq!(holder.pid, child.id());
            assert_eq!(holder.command, "certroll apply (child)");
        }
        other => panic!("expected the child as holder, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&format!("pid {}", child.id())),
        "{err}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let lock = Lock::acquire(dir.path(), "certroll apply").unwrap();
    assert_eq!(lock.holder().pid, std::process::id());
}
