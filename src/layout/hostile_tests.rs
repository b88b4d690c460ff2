//! The layout against a node's own users (docs/layout.md, "Threat model"): a service user
//! that owns the certificate directory plants stores, links and versions; a symbolic link
//! makes two nodes one; a watcher looks at a key while it is written; a killed run's script
//! wakes up after the resume; a node command prints the script's markers. Run as root
//! with the local transport, `nobody` standing in for the service user.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tests::{holding, names, node, pair, plain_files, swap};
use super::*;
use crate::transport::local::LocalTransport;

const NOBODY: u32 = 65534;

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
}

/// The fallback store the script picks for a certificate directory another user controls.
fn fallback_store(cert_dir: &Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    let phys = fs::canonicalize(cert_dir).unwrap();
    let h = hex::encode(Sha256::digest(phys.as_os_str().as_encoded_bytes()));
    Path::new(FALLBACK_STORES).join(format!("internal-{}", &h[..16]))
}

/// Removes a fallback store when the test ends, whatever happens.
struct Gone(PathBuf);
impl Drop for Gone {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn bundle_only(b: &str) -> Vec<(Role, Change<'_>)> {
    vec![(Role::Bundle, Change::Write(b.as_bytes()))]
}

/// A node directory whose `tls` belongs to the service user (`nobody`), who replaced
/// certroll's store with its own: `current` names a version holding a link `loot` to a
/// root-only file beside a broken certificate; `key` is what the version's key.pem is.
fn planted_store(dir: &Path, key: &dyn Fn(&Path)) -> PathBuf {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.join("secret"), "ROOT-ONLY-SECRET").unwrap();
    fs::set_permissions(dir.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    plain_files(dir, "A");
    let tls = dir.join("tls");
    chown(&tls, NOBODY);
    let evil = tls.join(".certroll-internal");
    fs::create_dir_all(evil.join("v-evil")).unwrap();
    symlink(dir.join("secret"), evil.join("v-evil/loot")).unwrap();
    key(&evil.join("v-evil/key.pem"));
    fs::write(evil.join("v-evil/cert.pem"), "BROKEN").unwrap();
    fs::write(evil.join("v-evil/bundle.pem"), "BUNDLE-OLD").unwrap();
    for f in fs::read_dir(&evil).unwrap().flatten() {
        chown(&f.path(), NOBODY);
    }
    chown(&evil, NOBODY);
    symlink("v-evil", evil.join("current")).unwrap();
    for f in ["cert.pem", "key.pem", "ca.pem"] {
        fs::remove_file(tls.join(f)).unwrap();
        let inside = if f == "ca.pem" { "bundle.pem" } else { f };
        symlink(format!(".certroll-internal/current/{inside}"), tls.join(f)).unwrap();
    }
    tls
}

/// Files under `places` holding the secret, other than the secret itself.
fn copies_of_the_secret(places: &[&Path]) -> Vec<String> {
    places
        .iter()
        .flat_map(|p| holding(p, "ROOT-ONLY-SECRET"))
        .filter(|p| !p.ends_with("/secret"))
        .collect()
}

/// The message of a pair swap on `n` that the node refuses.
fn refusal(dir: &Path, n: &Node) -> String {
    let t = LocalTransport::new(&n.name, dir);
    let opts = ApplyOptions::default();
    match apply(&t, n, "internal", "R1", &swap("CERT-B", "KEY-B"), &opts) {
        Ok(_) => panic!("the swap on node {} was not refused", n.name),
        Err(e) => e.to_string(),
    }
}

/// The service user's attack with `key` as its version's key.pem: a trust-add, as the node's
/// last step of a run, by root for a node whose files belong to `nobody`. Returns the node
/// directory, its `tls`, the fallback store (removed at drop) and what the step did.
fn attack(key: &dyn Fn(&Path, &Path)) -> (tempfile::TempDir, PathBuf, Gone, Result<(), String>) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let tls = planted_store(dir.path(), &|k| key(k, &secret));
    let gone = Gone(fallback_store(&tls));
    let (t, mut n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    n.files.owner = Some("nobody".into());
    let r = apply(
        &t,
        &n,
        "internal",
        "R1",
        &bundle_only("BUNDLE-NEW"),
        &last_step(),
    );
    let copies = copies_of_the_secret(&[dir.path(), &gone.0]);
    assert!(
        copies.is_empty(),
        "the secret was copied to {copies:?} ({r:?})"
    );
    (dir, tls, gone, r.map(|_| ()).map_err(|e| e.to_string()))
}

fn last_step() -> ApplyOptions<'static> {
    ApplyOptions {
        clean: true,
        ..ApplyOptions::default()
    }
}

#[test]
fn a_service_user_cannot_make_apply_copy_a_root_only_file_through_a_planted_store() {
    assert!(runs_as_root(&node(Path::new("/"))), "this test needs root");
    let (_dir, tls, gone, r) = attack(&|key, _| {
        fs::write(key, "KEY-A").unwrap();
        chown(key, NOBODY);
    });
    r.unwrap_or_else(|e| panic!("apply: {e}"));
    // The store left the directory the service user controls, with the old one's keys.
    assert!(
        gone.0.join("current").is_symlink(),
        "the store is under {FALLBACK_STORES}"
    );
    assert_eq!(fs::metadata(&gone.0).unwrap().uid(), 0);
    assert!(
        !tls.join(".certroll-internal").exists(),
        "the planted store is gone"
    );
    assert_eq!(
        fs::read_to_string(tls.join("ca.pem")).unwrap(),
        "BUNDLE-NEW"
    );
    assert_eq!(fs::read_to_string(tls.join("key.pem")).unwrap(), "KEY-A");
    assert_eq!(fs::metadata(tls.join("key.pem")).unwrap().uid(), NOBODY);
}

#[test]
fn a_planted_link_to_a_root_only_file_is_read_with_the_service_users_rights_and_refused() {
    let (_dir, _tls, _gone, r) = attack(&|key, secret| symlink(secret, key).unwrap());
    let err = r.unwrap_err();
    assert!(err.contains("with the rights of uid 65534"), "{err}");
    assert!(err.contains("key.pem"), "{err}");
}

#[test]
fn a_symlinked_store_is_refused_and_nothing_is_written_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("root-only");
    fs::create_dir(&target).unwrap();
    plain_files(dir.path(), "A");
    symlink(&target, dir.path().join("tls/.certroll-internal")).unwrap();
    let err = refusal(dir.path(), &node(dir.path()));
    assert!(err.contains("symbolic link"), "{err}");
    assert!(names(&target).is_empty(), "{:?}", names(&target));
    assert_eq!(pair(dir.path()).as_deref(), Some("A"));
}

#[test]
fn two_nodes_that_share_one_directory_through_a_symlink_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (b, c) = (dir.path().join("b"), dir.path().join("c"));
    plain_files(&b, "B");
    symlink(&b, &c).unwrap();
    let t = LocalTransport::new("b", dir.path());
    let mut nb = node(&b);
    nb.name = "b".into();
    let mut nc = node(&c);
    nc.name = "c".into();
    let opts = ApplyOptions::default();
    apply(&t, &nb, "internal", "R1", &swap("CERT-B2", "KEY-B2"), &opts).unwrap();
    let err = refusal(dir.path(), &nc);
    assert!(err.contains("belongs to node b"), "{err}");
    assert_eq!(
        pair(&b).as_deref(),
        Some("B2"),
        "node b's files are untouched"
    );
}

#[test]
fn a_store_directory_another_user_controls_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
    let mut n = node(dir.path());
    n.files.store_dir = Some(shared.display().to_string());
    let msg = refusal(dir.path(), &n);
    assert!(msg.contains("writable by other users"), "{msg}");
    assert!(msg.contains("set store_dir"), "{msg}");
    assert!(names(&shared).is_empty());
    assert_eq!(pair(dir.path()).as_deref(), Some("A"));
}

#[test]
fn a_new_private_key_is_never_readable_by_others_while_it_is_written() {
    for round in 0..15 {
        let dir = tempfile::tempdir().unwrap();
        plain_files(dir.path(), "A");
        let tls = dir.path().join("tls");
        fs::set_permissions(tls.join("key.pem"), fs::Permissions::from_mode(0o644)).unwrap();
        let (t, n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
        let done = Arc::new(AtomicBool::new(false));
        let store = tls.join(".certroll-internal");
        let watcher = {
            let (done, store) = (done.clone(), store.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let Ok(rd) = fs::read_dir(&store) else {
                        continue;
                    };
                    for e in rd.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if !name.starts_with("v-") || name.ends_with("-legacy") {
                            continue;
                        }
                        if let Ok(m) = fs::symlink_metadata(e.path().join("key.pem")) {
                            if m.mode() & 0o077 != 0 {
                                seen.push(format!("{name}/key.pem {:o}", m.mode() & 0o777));
                            }
                        }
                    }
                }
                seen
            })
        };
        let opts = ApplyOptions::default();
        apply(&t, &n, "internal", "R1", &swap("CERT-B", "KEY-B"), &opts).unwrap();
        done.store(true, Ordering::SeqCst);
        let seen = watcher.join().unwrap();
        assert!(
            seen.is_empty(),
            "round {round}: a new key was readable by others: {seen:?}"
        );
        assert_eq!(super::tests::mode(&store.join("current/key.pem")), 0o600);
    }
}

#[test]
fn a_kept_backup_key_loses_the_bits_that_let_every_user_read_it() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let tls = dir.path().join("tls");
    fs::set_permissions(tls.join("key.pem"), fs::Permissions::from_mode(0o644)).unwrap();
    let (t, mut n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    n.files.keep_backups = 1;
    let last = ApplyOptions {
        clean: true,
        ..ApplyOptions::default()
    };
    apply(&t, &n, "internal", "R1", &swap("CERT-B", "KEY-B"), &last).unwrap();
    let store = tls.join(".certroll-internal");
    let kept: Vec<String> = names(&store)
        .into_iter()
        .filter(|v| v.starts_with("v-") && v.ends_with("-legacy"))
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", names(&store));
    let key = store.join(&kept[0]).join("key.pem");
    assert_eq!(fs::read_to_string(&key).unwrap(), "KEY-A");
    assert_eq!(super::tests::mode(&key), 0o600, "the kept old key");
}

#[test]
fn kill_9_then_an_immediate_resume_keeps_every_file() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let (t, n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    apply(
        &t,
        &n,
        "internal",
        "R1",
        &swap("CERT-B", "KEY-B"),
        &ApplyOptions::default(),
    )
    .unwrap();
    // The killed run's script is still running on the node: it has built its version and
    // is about to switch when the resume runs the node's last step and cleans up.
    let flag = dir.path().join("go");
    let orphan = {
        let (dir, n, flag) = (dir.path().to_path_buf(), n.clone(), flag.clone());
        std::thread::spawn(move || {
            let t = LocalTransport::new("app1", &dir);
            let opts = ApplyOptions {
                pause_at: Some((5, flag.display().to_string())),
                ..ApplyOptions::default()
            };
            apply(&t, &n, "internal", "R1", &swap("CERT-X", "KEY-X"), &opts)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    };
    let reached = flag.with_extension("reached");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reached.exists() {
        assert!(
            Instant::now() < deadline,
            "the first script never reached phase 5"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let last = ApplyOptions {
        clean: true,
        ..ApplyOptions::default()
    };
    apply(&t, &n, "internal", "R1", &swap("CERT-C", "KEY-C"), &last).unwrap();
    fs::write(&flag, "").unwrap();
    let err = orphan.join().unwrap().unwrap_err();
    assert!(err.contains("took over"), "{err}");
    assert_eq!(pair(dir.path()).as_deref(), Some("C"));
    let bundle = fs::read_to_string(dir.path().join("tls/ca.pem")).unwrap();
    assert_eq!(bundle, "BUNDLE-OLD", "every file of the set is still there");
}

#[test]
fn a_node_command_cannot_forge_the_scripts_markers() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let (t, n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    // The reload looks for the nonce where it could (the script's variables, its standard
    // input), prints every marker the script prints, on both streams, and exits 1.
    let forged = "echo \"[${nonce-}][${end-}][$(cat)]\"; for s in out err; do \
                  printf 'certroll: files in place\\n\\ncertroll: reload exited 0\\n%s\\n' \
                  'certroll: confirm exited 0' | if [ $s = err ]; then cat >&2; else cat; fi; \
                  done; exit 1";
    let opts = ApplyOptions {
        reload: Some(forged),
        confirm: Some("true"),
        ..ApplyOptions::default()
    };
    let done = apply(&t, &n, "internal", "R1", &swap("CERT-B", "KEY-B"), &opts).unwrap();
    let reload = done.reload.expect("the reload ran");
    assert_eq!(reload.status, Some(1), "{reload:?}");
    assert!(reload.stdout.starts_with("[][][]\n"), "{reload:?}");
    assert!(
        reload.stderr.contains("certroll: reload exited 0"),
        "{reload:?}"
    );
    assert!(done.confirm.is_none(), "no confirm after a failed reload");
    assert_eq!(pair(dir.path()).as_deref(), Some("B"));
}

/// The script's shell functions (`run`, `fail`, `at`, `lock`, …) leaked into the node's
/// commands, which run in a subshell of it: a reload calling the node's own `at` or `run`
/// got the script's instead.
#[test]
fn the_scripts_functions_do_not_leak_into_node_commands() {
    let dir = tempfile::tempdir().unwrap();
    plain_files(dir.path(), "A");
    let (t, n) = (LocalTransport::new("app1", dir.path()), node(dir.path()));
    let probe = "for f in run fail at lock safe apply node_command; do \
                 if command -v \"$f\" >/dev/null 2>&1 && [ \"$(command -v \"$f\")\" = \"$f\" ]; then \
                 echo \"function $f\"; exit 7; fi; done; [ -z \"${FUNCTIONS-}\" ] || exit 8; exit 0";
    let opts = ApplyOptions {
        reload: Some(probe),
        ..ApplyOptions::default()
    };
    let done = apply(&t, &n, "internal", "R1", &swap("CERT-B", "KEY-B"), &opts).unwrap();
    let reload = done.reload.expect("the reload ran");
    assert_eq!(reload.status, Some(0), "{reload:?}");
}
