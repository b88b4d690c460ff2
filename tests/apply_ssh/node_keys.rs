//! Leaf keys made on the node (`key_source = "node"`) on real sshd nodes, beyond the root
//! login and ECDSA keys of `tests/zero_downtime/node_keys.rs`:
//!
//! - through `become = "sudo"` for an unprivileged login, with files given to a service
//!   account and a group-readable key (`key_mode = "0640"`, as PostgreSQL wants it): the
//!   key made by root in the store ends owned by the service account, 0640, and matches
//!   the certificate; no pending key directory is left;
//! - RSA-3072 and RSA-4096 keys under an ECDSA CA: openssl reads each key as the size the
//!   inventory asked for, every chain verifies, and the slow RSA-4096 keys of different
//!   nodes are made in parallel (their steps overlap in the NDJSON event stream).
//!
//! Every key is checked against its certificate by openssl on the host side of the node's
//! directory (`openssl pkey -pubout` against `openssl x509 -pubkey`), independently of
//! certroll's own read-back, and the journal must record it as a key made on the node
//! (by its public key's hash, `spki:`), so that a fall-back to control-made keys fails.
//! With `--parallel 1` the overlap check fails, so it can see serial steps.

use crate::rotate::{bootstrap_then_rotate_runs, store_entries};
use crate::rsa::key_kind;
use crate::support::cli::{Control, Run};
use crate::support::inventory::{FleetInventory, CERT, KEY};
use crate::support::users::{self, ensure_user, owner, OPERATOR, SERVICE};
use crate::support::Fleet;
use crate::{assert_node_on_with_key_mode, assert_verify_ok, last_run, on_node, openssl};

/// The node's key is the private half of its certificate's public key.
#[track_caller]
fn assert_key_matches_cert(fleet: &Fleet, node: &str) {
    let from_key = openssl(&["pkey", "-pubout"], &on_node(fleet, node, KEY));
    let from_cert = openssl(&["x509", "-noout", "-pubkey"], &on_node(fleet, node, CERT));
    assert!(
        from_key.contains("BEGIN PUBLIC KEY"),
        "openssl derived no public key from node {node}'s key: {from_key}"
    );
    assert_eq!(
        from_key.trim(),
        from_cert.trim(),
        "node {node}'s key does not match its certificate"
    );
}

/// No pending key directory (`.key-*`) is left in the node's store.
#[track_caller]
fn assert_no_pending_keys(fleet: &Fleet, node: &str, run: &Run) {
    let store = store_entries(fleet, node);
    assert!(
        !store.iter().any(|e| e.starts_with(".key-")),
        "node {node}'s store keeps a pending key directory: {store:?}\n{run}"
    );
}

/// The last run made node `node`'s key on the node: its journal records the key file by
/// the hash of the public key (`spki:<sha256>`, a key made here is recorded by its bytes),
/// and that public key is the certificate's.
#[track_caller]
fn assert_journaled_as_node_key(ctl: &Control, fleet: &Fleet, node: &str) {
    let records = ctl.journal();
    let run = last_run(&records);
    let cert_spki = openssl(&["x509", "-noout", "-pubkey"], &on_node(fleet, node, CERT));
    let der = pem::parse(cert_spki.trim())
        .expect("openssl prints the certificate's public key as PEM")
        .into_contents();
    let want = format!("spki:{}", certroll::transport::sha256_hex(&der));
    let hashes: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["run"] == run && r["record"] == "step-start" && r["node"] == node)
        .flat_map(|r| r["files"].as_array().into_iter().flatten())
        .filter(|f| f["path"] == KEY)
        .map(|f| &f["sha256"])
        .collect();
    assert!(
        hashes.last().is_some_and(|h| *h == want.as_str()),
        "node {node}'s key is journaled as {want} (made on the node, the certificate's key): {hashes:?}"
    );
}

/// One step's life in an NDJSON event stream: the lines of its `step-started` and
/// `step-done` events and their times.
#[derive(Debug)]
struct StepSpan {
    node: String,
    actions: Vec<String>,
    started: usize,
    done: usize,
    started_at: time::OffsetDateTime,
    done_at: time::OffsetDateTime,
}

/// The steps of a `--format json` run that started and finished, in order of start.
fn step_spans(run: &Run) -> Vec<StepSpan> {
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{run}")))
        .collect();
    let at = |e: &serde_json::Value| {
        let t = e["time"]
            .as_str()
            .unwrap_or_else(|| panic!("event without time: {e}"));
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|err| panic!("event time {t:?} is not RFC 3339: {err}"))
    };
    let mut spans = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e["event"] != "step-started" {
            continue;
        }
        let Some((j, done)) = events
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(_, d)| d["event"] == "step-done" && d["step"] == e["step"])
        else {
            continue;
        };
        spans.push(StepSpan {
            node: e["node"].as_str().unwrap_or_default().to_string(),
            actions: e["actions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            started: i,
            done: j,
            started_at: at(e),
            done_at: at(done),
        });
    }
    spans
}

/// Whether a step issues a leaf (so, with `key_source = "node"`, makes a key on its node).
fn makes_a_key(span: &StepSpan) -> bool {
    span.actions
        .iter()
        .any(|a| ["install", "renew", "leaf-swap", "leaf-restore"].contains(&a.as_str()))
}

/// At least two of `nodes` had their leaf steps in flight at once in `run`: each started
/// before the other was done (by the order of the events, which are written as they
/// happen, and by their times).
#[track_caller]
fn assert_leaf_steps_overlap(run: &Run, nodes: &[&str], what: &str) {
    let spans: Vec<StepSpan> = step_spans(run)
        .into_iter()
        .filter(|s| nodes.contains(&s.node.as_str()) && makes_a_key(s))
        .collect();
    for node in nodes {
        assert!(
            spans.iter().any(|s| s.node == *node),
            "{what}: no finished leaf step for node {node}: {spans:?}\n{run}"
        );
    }
    let overlap = spans.iter().enumerate().any(|(i, a)| {
        spans[i + 1..].iter().any(|b| {
            a.node != b.node
                && a.started < b.done
                && b.started < a.done
                && a.started_at <= b.done_at
                && b.started_at <= a.done_at
        })
    });
    assert!(
        overlap,
        "{what}: the leaf steps of {nodes:?} ran one after the other, not in parallel: {spans:#?}\n{run}"
    );
}

#[test]
fn node_made_keys_through_sudo_end_owned_by_the_service_account_with_key_mode_0640() {
    let (svc_uid, svc_gid) = ensure_user(SERVICE);
    let fleet = users::sudo_fleet(&["lb1", "db1"]);
    // Both nodes: an unprivileged login that becomes root with sudo; db1's files belong
    // to the service account, whose key is readable by its group (as PostgreSQL allows).
    let inv = FleetInventory::new(&fleet)
        .default_key("key_source", "node")
        .mutual_link("lb1", "db1")
        .login_user("lb1", OPERATOR)
        .node_key("lb1", "become", "sudo")
        .login_user("db1", OPERATOR)
        .node_key("db1", "become", "sudo")
        .node_key("db1", "owner", SERVICE)
        .node_key("db1", "group", SERVICE)
        .node_key("db1", "key_mode", "0640");
    let ctl = Control::new(&fleet, &inv);
    let check = |generation: u32, run: &Run| {
        for (node, who, key_mode) in [("lb1", (0, 0), 0o600), ("db1", (svc_uid, svc_gid), 0o640)] {
            assert_node_on_with_key_mode(
                &fleet,
                node,
                generation,
                &ctl.ca_pem(generation),
                key_mode,
            );
            let key = on_node(&fleet, node, KEY);
            assert_eq!(
                owner(&key),
                who,
                "node {node}'s key {} after G{generation}\n{run}",
                key.display()
            );
            assert_eq!(
                owner(&on_node(&fleet, node, CERT)),
                who,
                "node {node}'s cert"
            );
            assert_key_matches_cert(&fleet, node);
            assert_journaled_as_node_key(&ctl, &fleet, node);
            assert_no_pending_keys(&fleet, node, run);
        }
    };

    let run = ctl.apply_ok(&[]);
    check(1, &run);
    let db1_key = || std::fs::read(on_node(&fleet, "db1", KEY)).expect("read db1's key");
    let key_before = db1_key();

    let run = ctl.apply_ok(&["--rotate"]);
    run.expect_output("rotation of CA internal complete");
    assert_eq!(ctl.current_generation(), 2, "G2 is current\n{run}");
    check(2, &run);
    assert!(
        key_before != db1_key(),
        "the rotation made db1 a new key on the node\n{run}"
    );
    // verify matches each key on its node through sudo (the service account's key too).
    assert_verify_ok(&ctl);
}

#[test]
fn node_made_rsa_3072_and_4096_keys_under_an_ecdsa_ca_bootstrap_and_rotate_in_parallel() {
    let fleet = Fleet::start(&["lb1", "app1", "app2", "db1"]);
    users::quiet_root_shells(&fleet);
    // An ECDSA CA; app1 and app2 are alike (same links, both RSA-4096), so their leaf
    // steps become ready together in both runs.
    let inv = FleetInventory::new(&fleet)
        .default_key("key_source", "node")
        .node_key("lb1", "key_algorithm", "rsa-3072")
        .node_key("app1", "key_algorithm", "rsa-4096")
        .node_key("app2", "key_algorithm", "rsa-4096")
        .link("lb1", "app1")
        .link("lb1", "app2")
        .mutual_link("app1", "db1")
        .mutual_link("app2", "db1");
    let json = ["--format", "json"];
    let (ctl, bootstrap, rotation) = bootstrap_then_rotate_runs(&fleet, &inv, &json, &json);

    for (node, kind) in [
        ("lb1", "Private-Key: (3072 bit, 2 primes)"),
        ("app1", "Private-Key: (4096 bit, 2 primes)"),
        ("app2", "Private-Key: (4096 bit, 2 primes)"),
        ("db1", "Private-Key: (256 bit)"),
    ] {
        assert_eq!(key_kind(&fleet, node), kind, "node {node}'s key");
        assert_key_matches_cert(&fleet, node);
        assert_journaled_as_node_key(&ctl, &fleet, node);
        assert_no_pending_keys(&fleet, node, &rotation);
    }
    // bootstrap_then_rotate_runs checked every chain with openssl verify and ran verify.
    let root = openssl(&["x509", "-noout", "-text"], &ctl.ca_pem(2));
    assert!(root.contains("id-ecPublicKey"), "the CA is ECDSA: {root}");
    assert_leaf_steps_overlap(&bootstrap, &["app1", "app2"], "bootstrap");
    assert_leaf_steps_overlap(&rotation, &["app1", "app2"], "rotation");
}
