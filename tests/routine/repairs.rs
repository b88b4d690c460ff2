//! One regression test per finding kind a routine `apply` used to ignore ("nothing to do"
//! while `verify` was CRITICAL): each is now repaired, and `verify` is clean after it.

use time::{Duration, OffsetDateTime};

use crate::{converges, converges_from, ok, plan_json, show, stderr, stdout, verify_json, Fleet};

#[test]
fn routine_apply_repairs_a_key_that_does_not_match_its_certificate() {
    let fleet = Fleet::bootstrapped();
    let other = fleet.read("db", "key.pem");
    fleet.write("app", "key.pem", other);
    converges(&fleet, "app", "key-mismatch", "renew", "does not belong");
}

#[test]
fn routine_apply_repairs_a_leaf_that_is_not_yet_valid() {
    let fleet = Fleet::bootstrapped();
    let ca = fleet.current_ca();
    let future = OffsetDateTime::now_utc() + Duration::days(3);
    let leaf = fleet.leaf(&ca, "app", &["app.test"], future);
    fleet.install("app", &leaf);
    converges(&fleet, "app", "not-yet-valid", "renew", "valid only from");
}

#[test]
fn routine_apply_repairs_a_garbage_trust_bundle() {
    let fleet = Fleet::bootstrapped();
    fleet.write("app", "ca.pem", "this is not a certificate\n");
    converges(&fleet, "app", "empty-bundle", "install", "ca.pem");
}

#[test]
fn routine_apply_repairs_a_trust_bundle_that_is_not_pem() {
    let fleet = Fleet::bootstrapped();
    fleet.write(
        "db",
        "ca.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    );
    converges(&fleet, "db", "corrupt", "install", "ca.pem");
}

#[test]
fn routine_apply_repairs_an_empty_trust_bundle() {
    let fleet = Fleet::bootstrapped();
    fleet.write("lb", "ca.pem", "");
    converges(
        &fleet,
        "lb",
        "empty-bundle",
        "install",
        "holds no certificate",
    );
}

#[test]
fn routine_apply_repairs_a_leaf_from_another_ca() {
    let fleet = Fleet::bootstrapped();
    let inv = certroll::inventory::load(&fleet.inventory()).expect("inventory");
    let mut spec = inv.cas[0].clone();
    spec.subject = "CN=Someone Else's CA".into();
    let other = certroll::pki::new_ca(&spec, 1, OffsetDateTime::now_utc()).expect("other CA");
    let leaf = fleet.leaf(&other, "db", &["db.test"], OffsetDateTime::now_utc());
    fleet.install("db", &leaf);
    converges(
        &fleet,
        "db",
        "leaf-not-current",
        "renew",
        "not by the CA in use",
    );
}

#[test]
fn routine_apply_repairs_a_leaf_without_the_names_of_the_inventory() {
    let fleet = Fleet::bootstrapped();
    let ca = fleet.current_ca();
    let leaf = fleet.leaf(&ca, "app", &["wrong.test"], OffsetDateTime::now_utc());
    fleet.install("app", &leaf);
    converges(&fleet, "app", "name-not-covered", "renew", "app.test");
}

#[test]
fn routine_apply_repairs_leaves_after_the_first_dns_name_changed() {
    let fleet = Fleet::bootstrapped();
    fleet.write_inventory(&["lb.test"], &["app.example.test", "app.test"]);
    converges(
        &fleet,
        "app",
        "name-not-covered",
        "renew",
        "app.example.test",
    );
}

#[test]
fn routine_apply_repairs_a_world_readable_key_with_a_fresh_one() {
    let fleet = Fleet::bootstrapped();
    let exposed = fleet.read("lb", "key.pem");
    fleet.chmod("lb", "key.pem", 0o644);
    converges(&fleet, "lb", "key-mode", "renew", "mode 0644");
    assert_eq!(fleet.mode("lb", "key.pem"), 0o600);
    assert_ne!(
        fleet.read("lb", "key.pem"),
        exposed,
        "a key others could read is replaced, not only closed"
    );
    // The exposed key is gone from the node once the run completes: no backup of it stays
    // beside the served files or in the hidden store (docs/layout.md).
    let mut left = Vec::new();
    let mut dirs = vec![fleet.dir.path().join("nodes/lb")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir)
            .expect("list a directory of lb")
            .flatten()
        {
            let (path, kind) = (e.path(), e.file_type().expect("file type"));
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() && std::fs::read(&path).ok().as_ref() == Some(&exposed) {
                left.push(path);
            }
        }
    }
    assert!(
        left.is_empty(),
        "the exposed key is still on the node: {left:?}"
    );
}

#[test]
fn routine_apply_repairs_an_expired_leaf() {
    let fleet = Fleet::bootstrapped();
    let ca = fleet.current_ca();
    let old = OffsetDateTime::now_utc() - Duration::days(91);
    let leaf = fleet.leaf(&ca, "db", &["db.test"], old);
    fleet.install("db", &leaf);
    converges(&fleet, "db", "expired", "renew", "expired");
}

#[test]
fn routine_apply_repairs_missing_files() {
    let fleet = Fleet::bootstrapped();
    std::fs::remove_file(fleet.path("app", "cert.pem")).expect("remove cert");
    converges(&fleet, "app", "missing", "renew", "does not exist");
}

#[test]
fn routine_apply_names_a_bundle_it_must_not_rewrite_and_exits_non_zero() {
    let fleet = Fleet::bootstrapped();
    // app trusts only another CA, which also issued db's leaf: app ⇄ db still works
    // through it, so neither app's bundle nor db's leaf may be touched by a routine run.
    let inv = certroll::inventory::load(&fleet.inventory()).expect("inventory");
    let mut spec = inv.cas[0].clone();
    spec.subject = "CN=Partner CA".into();
    let partner = certroll::pki::new_ca(&spec, 1, OffsetDateTime::now_utc()).expect("partner");
    fleet.write("app", "ca.pem", &partner.cert_pem);
    let db_leaf = fleet.leaf(&partner, "db", &["db.test"], OffsetDateTime::now_utc());
    fleet.install("db", &db_leaf);
    let db_before = fleet.read("db", "cert.pem");
    // lb's key does not match: that one is repaired regardless.
    fleet.write("lb", "key.pem", fleet.read("app", "key.pem"));

    let plan = plan_json(&fleet);
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["node"].as_str())
        .collect();
    assert_eq!(steps, ["lb"], "only lb is repaired: {plan:#}");
    let left = plan["unrepaired"].to_string();
    assert!(
        left.contains("does not trust the current generation"),
        "{plan:#}"
    );
    assert!(
        left.contains("leaf of node db is from another CA but not replaced"),
        "{plan:#}"
    );

    let out = fleet.run(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot repair") && err.contains("app"),
        "{}",
        show(&out)
    );
    assert_eq!(
        fleet.read("db", "cert.pem"),
        db_before,
        "db's leaf is held back"
    );
    let (_, report) = verify_json(&fleet);
    let lb = report["cas"][0]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node"] == "lb")
        .cloned()
        .expect("lb");
    assert_eq!(lb["status"], "ok", "lb was repaired: {report:#}");
}

#[test]
fn routine_apply_with_nothing_broken_still_has_nothing_to_do() {
    let fleet = Fleet::bootstrapped();
    let out = ok(fleet.run(&["apply", "--yes"]));
    assert!(stdout(&out).contains("nothing to do"), "{}", show(&out));
}

/// Issue 20, item 5: a fleet that completed a cross-signed rotation before the prune
/// dropped the cross certificate still serves `[leaf, cross(G2←G1)]`. verify warns, and a
/// routine run gives the node a fresh leaf, served without it.
#[test]
fn routine_apply_renews_a_leaf_that_still_carries_a_retired_cross_certificate() {
    let fleet = Fleet::bootstrapped();
    ok(fleet.run(&["apply", "--rotate", "--chain", "cross-signed", "--yes"]));
    ok(fleet.run(&["verify"]));
    let cross = std::fs::read(fleet.dir.path().join(".certroll/ca/internal/g2/cross.pem"))
        .expect("the cross certificate of G2");
    let mut chain = fleet.read("app", "cert.pem");
    chain.extend_from_slice(&cross);
    fleet.write("app", "cert.pem", chain);
    converges_from(
        &fleet,
        1,
        "app",
        "retired-cross-certificate",
        "renew",
        "archived generation G1",
    );
    let served = certroll::pki::parse_pem_certs(&fleet.read("app", "cert.pem")).unwrap();
    assert_eq!(served.len(), 1, "the fresh leaf is served alone");
}
