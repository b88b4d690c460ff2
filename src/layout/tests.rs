//! The layout on real files: the script run by the local transport in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::inventory::{FileSettings, Node, TransportKind};
use crate::transport::local::LocalTransport;

pub(super) fn node(dir: &Path) -> Node {
    let at = |f: &str| dir.join("tls").join(f).display().to_string();
    Node {
        name: "app1".into(),
        transport: TransportKind::Local,
        via: None,
        trust_bundle: at("ca.pem"),
        cert: at("cert.pem"),
        key: at("key.pem"),
        proof_cert: Some(at("cross.pem")),
        reload: None,
        confirm: None,
        confirm_timeout: Duration::from_secs(10),
        probe: None,
        dns_names: vec![],
        tls: None,
        become_with: Become::Login,
        files: FileSettings::default(),
        stores: Default::default(),
    }
}

pub(super) fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| format!("<{e}>"))
}

pub(super) fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Plain files as an operator left them: pair `tag`, a bundle, a 0640 key.
pub(super) fn plain_files(dir: &Path, tag: &str) {
    let tls = dir.join("tls");
    fs::create_dir_all(&tls).unwrap();
    fs::write(tls.join("cert.pem"), format!("CERT-{tag}")).unwrap();
    fs::write(tls.join("key.pem"), format!("KEY-{tag}")).unwrap();
    fs::write(tls.join("ca.pem"), "BUNDLE-OLD").unwrap();
    fs::set_permissions(tls.join("key.pem"), fs::Permissions::from_mode(0o640)).unwrap();
}

/// The pair the paths show now: `Some(tag)` when key and cert belong together.
pub(super) fn pair(dir: &Path) -> Option<String> {
    let tls = dir.join("tls");
    let c = read(&tls.join("cert.pem"));
    let k = read(&tls.join("key.pem"));
    let (c, k) = (c.strip_prefix("CERT-")?, k.strip_prefix("KEY-")?);
    (c == k).then(|| c.to_string())
}

pub(super) fn swap<'a>(cert: &'a str, key: &'a str) -> Vec<(Role, Change<'a>)> {
    vec![
        (Role::Cert, Change::Write(cert.as_bytes())),
        (Role::Key, Change::Write(key.as_bytes())),
    ]
}

pub(super) fn apply_at(
    t: &LocalTransport,
    n: &Node,
    run: &str,
    ch: &[(Role, Change<'_>)],
    stop: u8,
) {
    let opts = ApplyOptions {
        stop_at: stop,
        ..ApplyOptions::default()
    };
    let r = apply(t, n, "internal", run, ch, &opts);
    if stop == 0 {
        r.unwrap_or_else(|e| panic!("apply: {e}"));
    } else {
        assert!(r.is_err(), "stopped at phase {stop} but succeeded");
    }
}

/// Names in a directory, sorted, without a store's own bookkeeping (its lock, owner and node).
pub(super) fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !BOOKKEEPING.contains(&n.as_str()))
        .collect();
    v.sort();
    v
}

/// Every file under `dir` (recursively, symlinks not followed) whose content contains `needle`.
pub(super) fn holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.extend(holding(&p, needle));
        } else if meta.is_file() && read(&p).contains(needle) {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn links_sit_beside_the_store_or_point_to_it_absolutely() {
    let store = "/etc/tls/.certroll-internal";
    assert_eq!(
        link_target("/etc/tls/cert.pem", store, Role::Cert),
        ".certroll-internal/current/cert.pem"
    );
    assert_eq!(
        link_target("/etc/ssl/private/k.pem", store, Role::Key),
        "/etc/tls/.certroll-internal/current/key.pem"
    );
    let paths = node(Path::new("/n")).paths("internal");
    assert_eq!(store_dir(&paths, "internal"), "/n/tls/.certroll-internal");
    assert_eq!(Role::of(&paths, "/n/tls/key.pem"), Some(Role::Key));
    assert_eq!(Role::of(&paths, "/n/tls/other.pem"), None);
}

#[test]
fn first_change_migrates_plain_files_behind_one_switched_link() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let (t, n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    apply_at(&t, &n, "R1", &swap("CERT-B", "KEY-B"), 0);
    let tls = dir.path().join("tls");
    assert_eq!(pair(dir.path()).as_deref(), Some("B"));
    for (f, role) in [
        ("cert.pem", "cert.pem"),
        ("key.pem", "key.pem"),
        ("ca.pem", "bundle.pem"),
    ] {
        let link = fs::read_link(tls.join(f)).unwrap();
        assert_eq!(
            link,
            Path::new(&format!(".certroll-internal/current/{role}"))
        );
    }
    assert_eq!(
        read(&tls.join("ca.pem")),
        "BUNDLE-OLD",
        "the bundle is carried over"
    );
    assert_eq!(mode(&tls.join("key.pem")), 0o640, "the key keeps its mode");
    assert_eq!(mode(&tls.join("cert.pem")), 0o644);
    assert_eq!(
        names(&tls),
        [".certroll-internal", "ca.pem", "cert.pem", "key.pem"],
        "nothing but the hidden store is added to the served directory"
    );
    let before = tls.join(".certroll-internal/before-R1");
    assert_eq!(read(&before.join("key.pem")), "KEY-A", "the run's way back");
    assert_eq!(
        mode(&before.join("key.pem")),
        0o640,
        "a key backup keeps the key's mode"
    );
    assert!(
        !fs::read_link(tls.join(".certroll-internal/current"))
            .unwrap()
            .to_string_lossy()
            .contains("legacy"),
        "current is the new version"
    );
}

#[test]
fn every_stop_point_leaves_a_matching_pair_and_a_rerun_finishes() {
    for stop in 1..=8u8 {
        let dir = tempfile::tempdir().unwrap();
        plain_files(dir.path(), "A");
        let (t, n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
        apply_at(&t, &n, "R1", &swap("CERT-B", "KEY-B"), stop);
        let seen = pair(dir.path());
        assert!(
            matches!(seen.as_deref(), Some("A" | "B")),
            "stopped at phase {stop}: the pair on disk is {seen:?}"
        );
        apply_at(&t, &n, "R1", &swap("CERT-C", "KEY-C"), 0);
        assert_eq!(pair(dir.path()).as_deref(), Some("C"), "phase {stop}");
        cleanup(&t, &n, "internal").unwrap();
        for old in ["KEY-A", "KEY-B"] {
            let left = holding(dir.path(), old);
            assert!(left.is_empty(), "phase {stop}: {old} left in {left:?}");
        }
        let store = dir.path().join("tls/.certroll-internal");
        let left: Vec<String> = names(&store)
            .into_iter()
            .filter(|n| n != "current")
            .collect();
        assert_eq!(
            left.len(),
            1,
            "phase {stop}: only current's version stays: {left:?}"
        );
    }
}

#[test]
fn the_first_backup_of_a_run_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let (t, n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    apply_at(&t, &n, "R1", &swap("CERT-B", "KEY-B"), 0);
    apply_at(&t, &n, "R1", &swap("CERT-C", "KEY-C"), 0);
    let store = dir.path().join("tls/.certroll-internal");
    assert_eq!(read(&store.join("before-R1/key.pem")), "KEY-A");
    apply_at(&t, &n, "R2", &swap("CERT-D", "KEY-D"), 0);
    assert_eq!(read(&store.join("before-R2/key.pem")), "KEY-C");
    let mut keep = n.clone();
    keep.files.keep_backups = 1;
    cleanup(&t, &keep, "internal").unwrap();
    assert!(!store.join("before-R1").exists(), "older runs' backups go");
    assert_eq!(
        read(&store.join("before-R2/key.pem")),
        "KEY-C",
        "keep_backups = 1"
    );
    cleanup(&t, &n, "internal").unwrap();
    assert!(
        holding(dir.path(), "KEY-C").is_empty(),
        "keep_backups = 0 keeps no old key"
    );
}

#[test]
fn new_files_get_default_modes_and_explicit_modes_win() {
    let dir = tempfile::tempdir().unwrap();
    let (t, mut n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    let mut ch = swap("CERT-A", "KEY-A");
    ch.push((Role::Bundle, Change::Write(b"BUNDLE")));
    apply_at(&t, &n, "R1", &ch, 0);
    let tls = dir.path().join("tls");
    assert_eq!(pair(dir.path()).as_deref(), Some("A"));
    assert_eq!(mode(&tls.join("key.pem")), 0o600);
    assert_eq!(mode(&tls.join("cert.pem")), 0o644);
    assert_eq!(mode(&tls.join("ca.pem")), 0o644);
    assert!(
        !tls.join("cross.pem").exists(),
        "no proof-key certificate, no link"
    );
    n.files.key_mode = Some(0o640);
    n.files.bundle_mode = Some(0o600);
    apply_at(&t, &n, "R2", &[(Role::Proof, Change::Write(b"PROOF"))], 0);
    assert_eq!(
        mode(&tls.join("key.pem")),
        0o640,
        "explicit key_mode, carried key"
    );
    assert_eq!(mode(&tls.join("cross.pem")), 0o600);
    assert_eq!(mode(&tls.join("ca.pem")), 0o600);
    let store = tls.join(".certroll-internal");
    assert_eq!(
        mode(&store.join("before-R2/key.pem")),
        0o600,
        "the older version is untouched"
    );
    apply_at(&t, &n, "R3", &[(Role::Proof, Change::Remove)], 0);
    assert!(
        fs::symlink_metadata(tls.join("cross.pem")).is_err(),
        "removed"
    );
    assert_eq!(pair(dir.path()).as_deref(), Some("A"));
}

#[test]
fn a_removed_plain_file_goes_and_the_reload_runs_after_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let tls = dir.path().join("tls");
    fs::write(tls.join("cross.pem"), "PROOF").unwrap();
    let (t, n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    let opts = ApplyOptions {
        reload: Some("cat tls/key.pem > seen; echo reloaded; exit 3"),
        ..ApplyOptions::default()
    };
    let mut ch = swap("CERT-B", "KEY-B");
    ch.push((Role::Proof, Change::Remove));
    let done = apply(&t, &n, "internal", "R1", &ch, &opts).unwrap();
    let reload = done.reload.expect("the reload ran");
    assert_eq!(reload.status, Some(3));
    assert_eq!(reload.stdout, "reloaded");
    assert_eq!(
        read(&dir.path().join("seen")),
        "KEY-B",
        "reload runs in the work directory, after the switch"
    );
    assert!(fs::symlink_metadata(tls.join("cross.pem")).is_err());
    assert_eq!(
        read(&tls.join(".certroll-internal/before-R1/proof.pem")),
        "PROOF",
        "the removed file is in the run's backup"
    );
}

#[test]
fn paths_with_shell_metacharacters_are_data() {
    let dir = tempfile::tempdir().unwrap();
    let weird = dir.path().join("a b$(touch pwned)'x");
    let mut n = node(&weird);
    n.proof_cert = None;
    let t = LocalTransport::new("app1", dir.path());
    let mut ch = swap("CERT-A", "KEY-A");
    ch.push((Role::Bundle, Change::Write(b"B")));
    apply_at(&t, &n, "R1", &ch, 0);
    assert_eq!(pair(&weird).as_deref(), Some("A"));
    assert!(!dir.path().join("pwned").exists());
}

#[test]
fn a_path_that_is_a_directory_fails_before_the_switch() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let tls = dir.path().join("tls");
    fs::remove_file(tls.join("ca.pem")).unwrap();
    fs::create_dir(tls.join("ca.pem")).unwrap();
    let (t, n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    let err = apply(
        &t,
        &n,
        "internal",
        "R1",
        &swap("CERT-B", "KEY-B"),
        &ApplyOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("failed to write the files of CA internal through "),
        "{err}"
    );
    assert!(err.contains("node app1"), "{err}");
    assert_eq!(
        pair(dir.path()).as_deref(),
        Some("A"),
        "the served pair is unchanged"
    );
}

#[test]
fn data_cut_short_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let t = LocalTransport::new("app1", dir.path());
    let tls = dir.path().join("tls");
    let store = tls.join(".certroll-internal").display().to_string();
    let mut args: Vec<String> = [
        "apply", &store, "-", "internal", "app1", "R1.x", "R1", "", "", "0", "0", "", "",
        END_MARKER, "-",
    ]
    .map(String::from)
    .to_vec();
    for (name, file, size) in [("cert.pem", "cert.pem", "6"), ("key.pem", "key.pem", "5")] {
        let path = tls.join(file).display().to_string();
        args.extend([name, &path, "w", size, "-", "644"].map(String::from));
    }
    // The key's bytes and the end marker never arrive.
    let out = t
        .exec_input(&command(&args), b"CERT-BKE", Duration::from_secs(30))
        .unwrap();
    assert_eq!(out.status, Some(12), "{out:?}");
    assert!(out.stderr.contains("arrived incomplete"), "{out:?}");
    assert_eq!(pair(dir.path()).as_deref(), Some("A"), "nothing switched");
}

#[test]
fn the_last_step_of_a_run_removes_the_old_versions_after_its_switch() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let (t, n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    apply_at(&t, &n, "R1", &swap("CERT-B", "KEY-B"), 0);
    let last = ApplyOptions {
        clean: true,
        ..ApplyOptions::default()
    };
    apply(&t, &n, "internal", "R1", &swap("CERT-C", "KEY-C"), &last).unwrap();
    assert_eq!(pair(dir.path()).as_deref(), Some("C"));
    for old in ["KEY-A", "KEY-B"] {
        assert!(holding(dir.path(), old).is_empty(), "{old} is gone");
    }
    let store = dir.path().join("tls/.certroll-internal");
    assert_eq!(names(&store).len(), 2, "{:?}", names(&store));
}
