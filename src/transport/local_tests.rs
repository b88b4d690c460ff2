//! Tests of the local transport: commands, deadlines and process groups, and atomic
//! writes, on this machine.

use super::*;
use std::time::Instant;

fn opts(mode: u32, tag: Option<&str>) -> WriteOptions<'_> {
    WriteOptions {
        mode,
        backup_tag: tag,
        what: "key",
    }
}

#[test]
fn write_creates_parents_mode_and_backup() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("n1", dir.path());
    t.write_file("tls/key.pem", b"one", opts(0o600, Some("g1")))
        .unwrap();
    assert_eq!(
        t.read_file("tls/key.pem").unwrap().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(t.file_mode("tls/key.pem").unwrap(), Some(0o600));
    assert_eq!(
        t.read_file("tls/key.pem.g1.bak").unwrap(),
        None,
        "no backup of nothing"
    );
    t.write_file("tls/key.pem", b"two", opts(0o644, Some("g1")))
        .unwrap();
    assert_eq!(
        t.read_file("tls/key.pem").unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert_eq!(t.file_mode("tls/key.pem").unwrap(), Some(0o644));
    assert_eq!(
        t.read_file("tls/key.pem.g1.bak").unwrap().as_deref(),
        Some(&b"one"[..])
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path().join("tls"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("certroll-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn absolute_paths_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("n1", Path::new("/nonexistent-workdir"));
    let abs = dir.path().join("a.pem");
    let abs = abs.to_str().unwrap();
    assert_eq!(t.read_file(abs).unwrap(), None);
    assert_eq!(t.file_mode(abs).unwrap(), None);
    t.remove_file(abs, Some("x")).unwrap();
    t.write_file(abs, b"data", opts(0o644, None)).unwrap();
    t.remove_file(abs, Some("g7")).unwrap();
    assert_eq!(t.read_file(abs).unwrap(), None);
    assert_eq!(
        t.read_file(&format!("{abs}.g7.bak")).unwrap().as_deref(),
        Some(&b"data"[..])
    );
}

#[test]
fn write_errors_name_action_file_and_node() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("file"), b"x").unwrap();
    let t = LocalTransport::new("app1", dir.path());
    let err = t.write_file(
        "file/ca.pem",
        b"x",
        WriteOptions {
            mode: 0o644,
            backup_tag: None,
            what: "trust bundle",
        },
    );
    let err = err.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Io);
    let text = err.to_string();
    assert!(
        text.starts_with("failed to write trust bundle file/ca.pem on node app1: "),
        "{text}"
    );
}

#[test]
fn exec_runs_in_workdir_and_captures_output() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("marker"), b"here").unwrap();
    let t = LocalTransport::new("n1", dir.path());
    let out = t
        .exec("cat marker; echo oops >&2; exit 3", Duration::from_secs(10))
        .unwrap();
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stdout, "here");
    assert_eq!(out.stderr, "oops\n");
    assert!(t.exec("true", Duration::from_secs(10)).unwrap().success());
}

#[test]
fn exec_timeout_kills_the_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("n1", dir.path());
    let start = Instant::now();
    // The background sleep keeps stdout open: only a group kill lets the call return.
    let out = t
        .exec("sleep 60 & echo started; sleep 60", Duration::from_secs(3))
        .unwrap();
    assert_eq!(out.status, None);
    assert_eq!(out.stdout, "started\n");
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn node_files_that_are_not_regular_or_too_large_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("app1", dir.path());
    let fifo = dir.path().join("cert.pem");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.pem")).unwrap();
    let big = File::create(dir.path().join("big.pem")).unwrap();
    big.set_len(MAX_FILE_BYTES + 1).unwrap();
    for (path, says) in [
        ("cert.pem", "it is a FIFO, not a regular file"),
        ("zero.pem", "it is a character device, not a regular file"),
        (".", "it is a directory, not a regular file"),
        ("big.pem", "it is larger than certroll reads"),
    ] {
        // Without the check a FIFO read blocks for ever: fail instead of hanging.
        let (tx, rx) = std::sync::mpsc::channel();
        let (t2, p2) = (t.clone(), path.to_string());
        std::thread::spawn(move || tx.send(t2.read_file(&p2)));
        let got = rx.recv_timeout(Duration::from_secs(60));
        let err = got.expect("read_file hung").unwrap_err();
        assert_eq!(err.kind, ErrorKind::FileRefused, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("failed to read {path} on node app1: {says}")),
            "{text}"
        );
    }
}

#[test]
fn stale_temp_files_of_a_killed_write_are_removed_by_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("n1", dir.path());
    let keep = [
        "ca.pem.certroll-0123456789ab",
        ".ca.pem.certroll-0123456789ab.bak",
        ".cert.pem.certroll-0123456789ab",
        ".ca.pem.certroll-notours",
    ];
    for n in keep {
        fs::write(dir.path().join(n), b"x").unwrap();
    }
    fs::write(dir.path().join(".ca.pem.certroll-0123456789ab"), b"x").unwrap();
    fs::write(dir.path().join(".ca.pem.certroll-ba9876543210"), b"x").unwrap();
    fs::create_dir(dir.path().join(".ca.pem.certroll-aaaaaaaaaaaa")).unwrap();
    t.write_file("ca.pem", b"new", opts(0o644, None)).unwrap();
    let mut left: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    want.push(".ca.pem.certroll-aaaaaaaaaaaa".into());
    want.push("ca.pem".into());
    want.sort();
    assert_eq!(left, want);
}
