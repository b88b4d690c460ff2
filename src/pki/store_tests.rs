//! Tests of the CA store: layout, modes, idempotence, archiving, reload from disk.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use time::OffsetDateTime;

use super::*;

fn spec() -> CaSpec {
    CaSpec::new("internal", "CN=Test CA,O=Example")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_private_layout_and_refuses_twice() {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    let spec = spec();
    assert!(store.current(&spec).unwrap().is_none());
    let ca = store.init(&spec, OffsetDateTime::now_utc()).unwrap();
    assert_eq!(ca.generation, 1);
    let root = state.path().join("ca/internal");
    assert_eq!(
        fs::read_to_string(root.join("current")).unwrap().trim(),
        "1"
    );
    assert_eq!(mode(&root.join("g1/ca.key")), 0o600);
    assert_eq!(mode(&root.join("g1")), 0o700);
    assert_eq!(mode(&root), 0o700);
    assert!(!root.join("next").exists());
    let err = store
        .init(&spec, OffsetDateTime::now_utc())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already exists") && err.contains("current"),
        "{err}"
    );
}

#[test]
fn reload_from_disk_round_trips() {
    let state = tempfile::tempdir().unwrap();
    let spec = spec();
    let created = CaStore::new(state.path())
        .init(&spec, OffsetDateTime::now_utc())
        .unwrap();
    let loaded = CaStore::new(state.path()).current(&spec).unwrap().unwrap();
    assert_eq!(loaded.generation, 1);
    assert_eq!(loaded.cert_pem, created.cert_pem);
    assert_eq!(loaded.cert_der, created.cert_der);
    assert_eq!(loaded.key_pem(), created.key_pem());
    assert_eq!(loaded.not_after, created.not_after);
}

#[test]
fn begin_rotation_is_idempotent_and_persisted() {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    let spec = spec();
    let now = OffsetDateTime::now_utc();
    let err = store.begin_rotation(&spec, now).unwrap_err().to_string();
    assert!(err.contains("no current generation"), "{err}");
    store.init(&spec, now).unwrap();
    let (first, cross1) = store.begin_rotation(&spec, now).unwrap();
    let (again, cross2) = CaStore::new(state.path())
        .begin_rotation(&spec, now)
        .unwrap();
    assert_eq!(first.generation, 2);
    assert_eq!(again.cert_pem, first.cert_pem);
    assert_eq!(again.key_pem(), first.key_pem());
    assert_eq!(cross1, cross2);
    assert_eq!(store.next(&spec).unwrap().unwrap().cert_pem, first.cert_pem);
    assert_eq!(store.cross(&spec).unwrap(), cross1);
    assert_eq!(store.current(&spec).unwrap().unwrap().generation, 1);
    let root = state.path().join("ca/internal");
    assert_eq!(mode(&root.join("g2/ca.key")), 0o600);
    assert_eq!(mode(&root.join("g2/cross.pem")), 0o600);
}

#[test]
fn finish_rotation_archives_and_repeats_safely() {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    let spec = spec();
    let now = OffsetDateTime::now_utc();
    let g1 = store.init(&spec, now).unwrap();
    let (g2, _) = store.begin_rotation(&spec, now).unwrap();
    store.finish_rotation(&spec).unwrap();
    let root = state.path().join("ca/internal");
    assert!(!root.join("next").exists());
    assert!(!root.join("g1").exists());
    assert!(root.join("archive/g1/ca.key").exists());
    assert_eq!(mode(&root.join("archive")), 0o700);
    assert_eq!(store.current(&spec).unwrap().unwrap().cert_pem, g2.cert_pem);
    assert!(store.next(&spec).unwrap().is_none());
    assert!(store.cross(&spec).unwrap().is_none());
    let archived = store.archived(&spec).unwrap();
    assert_eq!(archived.len(), 1);
    assert_eq!(
        (archived[0].generation, &archived[0].cert_pem),
        (1, &g1.cert_pem)
    );

    store.finish_rotation(&spec).unwrap();
    assert_eq!(store.current(&spec).unwrap().unwrap().generation, 2);

    let (g3, _) = store.begin_rotation(&spec, now).unwrap();
    assert_eq!(g3.generation, 3);
    store.finish_rotation(&spec).unwrap();
    let gens: Vec<u32> = store
        .archived(&spec)
        .unwrap()
        .iter()
        .map(|c| c.generation)
        .collect();
    assert_eq!(gens, vec![1, 2]);
}

#[test]
fn finish_rotation_resumes_after_crash_between_pointer_writes() {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    let spec = spec();
    let now = OffsetDateTime::now_utc();
    store.init(&spec, now).unwrap();
    store.begin_rotation(&spec, now).unwrap();
    let root = state.path().join("ca/internal");
    fs::write(root.join("current"), "2\n").unwrap();
    store.finish_rotation(&spec).unwrap();
    assert!(!root.join("next").exists());
    assert!(root.join("archive/g1").is_dir());
    assert_eq!(store.current(&spec).unwrap().unwrap().generation, 2);
}

#[test]
fn damaged_store_is_refused_without_leaking_the_key() {
    let state = tempfile::tempdir().unwrap();
    let store = CaStore::new(state.path());
    let spec = spec();
    let ca = store.init(&spec, OffsetDateTime::now_utc()).unwrap();
    assert!(!format!("{ca:?}").contains("PRIVATE"));
    let key = state.path().join("ca/internal/g1/ca.key");

    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = store.current(&spec).unwrap_err().to_string();
    assert!(err.contains("0600") && err.contains("ca.key"), "{err}");

    let other = crate::pki::new_ca(&spec, 1, OffsetDateTime::now_utc()).unwrap();
    fs::write(&key, other.key_pem().unwrap()).unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let err = store.current(&spec).unwrap_err().to_string();
    assert!(err.contains("does not belong"), "{err}");
    assert!(
        !err.contains("PRIVATE") && !err.contains(other.key_pem().unwrap().lines().nth(1).unwrap()),
        "{err}"
    );

    fs::write(state.path().join("ca/internal/current"), "zwei").unwrap();
    let err = store.current(&spec).unwrap_err().to_string();
    assert!(
        err.contains("generation number") && err.contains("current"),
        "{err}"
    );
}

#[test]
fn refuses_path_like_ca_names() {
    let state = tempfile::tempdir().unwrap();
    let mut spec = spec();
    spec.name = "../evil".into();
    assert!(CaStore::new(state.path()).current(&spec).is_err());
}

#[test]
fn abandon_rotation_archives_the_next_generation_with_a_note_and_repeats_safely() {
    let dir = tempfile::tempdir().unwrap();
    let store = CaStore::new(dir.path());
    let spec = spec();
    let now = OffsetDateTime::now_utc();
    store.init(&spec, now).unwrap();
    let (next, _) = store.begin_rotation(&spec, now).unwrap();
    assert_eq!(next.generation, 2);
    let archived = store
        .abandon_rotation(&spec, "rolled back by run r2 (rotation run r1)\n")
        .unwrap();
    assert_eq!(archived, Some(2));
    assert!(store.next(&spec).unwrap().is_none());
    assert_eq!(store.current(&spec).unwrap().unwrap().generation, 1);
    let note = store.rolled_back_note(&spec, 2).unwrap();
    assert!(note.contains("rolled back by run r2"), "{note}");
    // Never deleted: the key is archived, still private.
    let key = dir.path().join("ca/internal/archive/g2/ca.key");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(store.abandon_rotation(&spec, "again").unwrap(), None);
    // A later rotation makes a fresh generation, numbered after the abandoned one.
    let (fresh, _) = store.begin_rotation(&spec, now).unwrap();
    assert_eq!(fresh.generation, 3);
    assert_ne!(fresh.cert_pem, next.cert_pem);
}

#[test]
fn abandon_rotation_finishes_after_a_crash_before_the_move() {
    let dir = tempfile::tempdir().unwrap();
    let store = CaStore::new(dir.path());
    let spec = spec();
    let now = OffsetDateTime::now_utc();
    store.init(&spec, now).unwrap();
    store.begin_rotation(&spec, now).unwrap();
    // The crash: note written, pointer removed, directory not moved yet.
    let g2 = dir.path().join("ca/internal/g2");
    std::fs::write(g2.join("ROLLED-BACK"), "rolled back\n").unwrap();
    std::fs::remove_file(dir.path().join("ca/internal/next")).unwrap();
    assert_eq!(store.abandon_rotation(&spec, "x").unwrap(), Some(2));
    assert!(dir.path().join("ca/internal/archive/g2/ca.key").exists());
}
