//! `os_trust` through the real script on this machine: anchors installed one file each and
//! the update command run only when they change, after the switch and before the reload;
//! a failed update fails the step and is run again by the next script even though the
//! files are in place (a resumed step); a planted link is replaced, never followed; an
//! anchors directory other users can change, or a missing update command, stops the step
//! before anything changes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::tests::{mode, node, read};
use super::*;
use crate::inventory::{Node, OsTrustSettings};
use crate::stores::os_trust::{anchor_file_name, OsTrust};
use crate::transport::local::LocalTransport;

fn anchor(name: &str) -> Vec<u8> {
    rcgen::generate_simple_self_signed(vec![name.to_string()])
        .unwrap()
        .cert
        .der()
        .to_vec()
}

/// app1 with its anchors directory in `dir`; the update command logs each run to `ran`
/// and exits with the number in `status` (0 when there is none).
fn with_os_trust(dir: &Path, update: Option<&str>) -> Node {
    let mut n = node(dir);
    let anchors = dir.join("anchors");
    fs::create_dir_all(&anchors).unwrap();
    fs::set_permissions(&anchors, fs::Permissions::from_mode(0o755)).unwrap();
    let (ran, status, log) = (dir.join("ran"), dir.join("status"), dir.join("log"));
    let update = update.map(str::to_string).unwrap_or(format!(
        "echo update >> {}; echo ran >> {}; exit \"$(cat {} 2>/dev/null || echo 0)\"",
        log.display(),
        ran.display(),
        status.display()
    ));
    n.stores.os_trust = Some(OsTrustSettings {
        family: OsTrust::Debian,
        dir: anchors.display().to_string(),
        update,
    });
    n
}

fn step(t: &LocalTransport, n: &Node, run: &str, anchors: &[Vec<u8>]) -> Applied {
    let reload = format!(
        "echo reload >> {}",
        Path::new(&n.cert).with_file_name("../log").display()
    );
    let data = format!("CERT-{run}").into_bytes();
    let opts = ApplyOptions {
        reload: Some(&reload),
        os_trust: OsTrustInstall::of(n, anchors),
        ..ApplyOptions::default()
    };
    apply(
        t,
        n,
        "internal",
        run,
        &[(Role::Cert, Change::Write(&data))],
        &opts,
    )
    .unwrap_or_else(|e| panic!("apply: {e}"))
}

fn runs(dir: &Path) -> usize {
    fs::read_to_string(dir.join("ran")).map_or(0, |s| s.lines().count())
}

fn installed(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("anchors"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn anchors_change_only_when_the_bundle_does_and_an_interrupted_update_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let (t, n) = (
        LocalTransport::new("app1", dir.path()),
        with_os_trust(dir.path(), None),
    );
    let (a1, a2) = (anchor("one"), anchor("two"));
    let (f1, f2) = (
        anchor_file_name("internal", &a1),
        anchor_file_name("internal", &a2),
    );
    let r = step(&t, &n, "R1", std::slice::from_ref(&a1));
    assert_eq!(r.os_update.map(|o| o.status), Some(Some(0)));
    assert_eq!(installed(dir.path()), std::slice::from_ref(&f1));
    let p1 = dir.path().join("anchors").join(&f1);
    assert_eq!(mode(&p1), 0o644);
    assert_eq!(
        crate::stores::pem_certs(read(&p1).as_bytes()),
        std::slice::from_ref(&a1)
    );
    assert_eq!(
        read(&dir.path().join("log")),
        "update\nreload\n",
        "the update runs before the reload"
    );

    // The same anchors: nothing to update.
    let r = step(&t, &n, "R2", std::slice::from_ref(&a1));
    assert_eq!((r.os_update, runs(dir.path())), (None, 1));

    // A failed update fails the step before the reload; the files are in place.
    fs::write(dir.path().join("status"), "3").unwrap();
    fs::write(dir.path().join("log"), "").unwrap();
    let both = [a1.clone(), a2.clone()];
    let r = step(&t, &n, "R3", &both);
    assert_eq!(r.os_update.map(|o| o.status), Some(Some(3)));
    assert_eq!(
        (r.reload, read(&dir.path().join("log"))),
        (None, "update\n".to_string())
    );
    let mut want = vec![f1.clone(), f2.clone()];
    want.sort();
    assert_eq!(installed(dir.path()), want);
    // Resumed (the anchors alone, files in place): the update runs again until it exits 0.
    fs::remove_file(dir.path().join("status")).unwrap();
    let install = OsTrustInstall::of(&n, &both).unwrap();
    let out = install_os_trust(&t, &n, "internal", &install).unwrap();
    assert_eq!(out.map(|o| o.status), Some(Some(0)));
    assert_eq!(runs(dir.path()), 3);
    let out = install_os_trust(&t, &n, "internal", &install).unwrap();
    assert_eq!((out, runs(dir.path())), (None, 3), "done: not again");

    // The prune: the first anchor's file goes. A link planted at the kept name is
    // replaced, and what it pointed at is untouched.
    let victim = dir.path().join("victim");
    fs::write(&victim, "mine").unwrap();
    let p2 = dir.path().join("anchors").join(&f2);
    fs::remove_file(&p2).unwrap();
    std::os::unix::fs::symlink(&victim, &p2).unwrap();
    let r = step(&t, &n, "R4", std::slice::from_ref(&a2));
    assert_eq!(r.os_update.map(|o| o.status), Some(Some(0)));
    assert_eq!(installed(dir.path()), [f2]);
    assert!(!fs::symlink_metadata(&p2).unwrap().file_type().is_symlink());
    assert_eq!(read(&victim), "mine");
    // Files of other CAs and of the system stay.
    fs::write(
        dir.path()
            .join("anchors/certroll-other-anchor-0123456789abcdef.crt"),
        "x",
    )
    .unwrap();
    fs::write(dir.path().join("anchors/company.crt"), "x").unwrap();
    step(&t, &n, "R5", &[]);
    assert_eq!(
        installed(dir.path()),
        ["certroll-other-anchor-0123456789abcdef.crt", "company.crt"]
    );
}

#[test]
fn an_unsafe_anchors_directory_or_a_missing_update_command_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("app1", dir.path());
    let a = [anchor("one")];
    let data = b"CERT".to_vec();
    let try_step = |n: &Node| {
        let opts = ApplyOptions {
            os_trust: OsTrustInstall::of(n, &a),
            ..ApplyOptions::default()
        };
        apply(
            &t,
            n,
            "internal",
            "R1",
            &[(Role::Cert, Change::Write(&data))],
            &opts,
        )
        .map(|_| ())
        .unwrap_err()
        .to_string()
    };
    let n = with_os_trust(dir.path(), Some("no-such-update-ca-certificates --fresh"));
    let e = try_step(&n);
    assert!(
        e.contains("no-such-update-ca-certificates is not installed on node app1"),
        "{e}"
    );
    let n = with_os_trust(dir.path(), None);
    fs::set_permissions(
        dir.path().join("anchors"),
        fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let e = try_step(&n);
    assert!(e.contains("is writable by other users"), "{e}");
    assert!(installed(dir.path()).is_empty());
    assert!(
        !dir.path().join("tls/cert.pem").exists(),
        "nothing was switched"
    );
    assert_eq!(runs(dir.path()), 0);
}
