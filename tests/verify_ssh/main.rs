//! `certroll verify` end to end: the real binary reads a fleet of real sshd nodes that
//! `certroll apply --yes` bootstrapped, and its exit code, text and JSON are checked for
//! a healthy fleet, for each fault injected on one node, between the phases of a
//! rotation, with `--live` probes, and through the cron wrapper of `examples/cron/`.
//!
//! Fleets (see `support::verify_kit`): `lb1 → app1` one-way and `app1 ⇄ db1` mutual,
//! each node keeping its files at `/srv/certroll-node/tls/` as it sees them. This file
//! holds the healthy fleet: OK in text and JSON, every node and link described, nothing
//! changed; the other cases are in the modules below.

#[path = "../support/mod.rs"]
mod support;

mod faults;
mod hostile;
mod monitoring;
mod rotation;

use certroll::exit;
use sha2::{Digest, Sha256};

use support::verify_kit::{mode_of, FleetSpec, TlsFile, VerifyFleet};

/// SHA-256 and mode of every file of every node, to prove verify wrote nothing.
fn fingerprint(f: &VerifyFleet) -> Vec<(String, String, u32)> {
    let mut out = Vec::new();
    for node in f.spec.node_names() {
        for file in [TlsFile::Bundle, TlsFile::Cert, TlsFile::Key] {
            let digest = hex::encode(Sha256::digest(f.read(&node, file)));
            out.push((
                format!("{node}:{}", file.file_name()),
                digest,
                mode_of(&f.path(&node, file)),
            ));
        }
    }
    out
}

#[test]
fn healthy_fleet_is_ok_in_text_and_changes_nothing() {
    let f = FleetSpec::standard().bootstrap();
    let before = fingerprint(&f);

    let run = f.certroll(&["verify"]);
    run.expect_code(exit::VERIFY_OK)
        .expect_stdout("CA internal (G1)")
        .expect_stdout("every link handshakes");
    let last = run.stdout.lines().rev().find(|l| !l.trim().is_empty());
    assert_eq!(
        last,
        Some("verify: 3 nodes, 2 links — OK"),
        "the last line is the summary\n{run}"
    );
    for row in ["lb1 → app1", "app1 ⇄ db1"] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.contains(row) && l.contains("ok")),
            "the link table shows {row} as ok\n{run}"
        );
    }
    assert!(
        !run.stdout.contains('\u{1b}'),
        "NO_COLOR and no terminal: no escape codes\n{run}"
    );

    assert_eq!(
        before,
        fingerprint(&f),
        "verify must not change any node file"
    );
}

#[test]
fn healthy_fleet_json_describes_every_node_and_link() {
    let f = FleetSpec::standard().bootstrap();
    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_OK, "{}", r.run);
    assert_eq!(r.status(), "ok", "{}", r.run);
    assert_eq!(
        r.json["summary"], "verify: 3 nodes, 2 links — OK",
        "{}",
        r.run
    );
    let ca = r.ca();
    assert_eq!(ca["ca"], "internal", "{}", r.run);
    assert_eq!(ca["generation"]["current"], 1, "{}", r.run);
    assert!(ca["generation"]["next"].is_null(), "{}", r.run);
    assert_eq!(ca["rotating"], false, "{}", r.run);
    assert_eq!(r.safe(), Some(true), "{}", r.run);

    for node in ["app1", "db1", "lb1"] {
        let n = r.node(node);
        assert_eq!(r.phase(node), "current", "{}", r.run);
        assert_eq!(n["status"], "ok", "{}", r.run);
        assert_eq!(n["key_mode"], "0600", "{}", r.run);
        assert_eq!(n["leaf"]["generation"], "current", "{}", r.run);
        assert_eq!(n["leaf"]["generation_number"], 1, "{}", r.run);
        assert_eq!(n["leaf"]["subject"], format!("CN={node}"), "{}", r.run);
        let anchors = n["anchors"].as_array().expect("anchors array");
        assert_eq!(anchors.len(), 1, "one anchor on {node}\n{}", r.run);
        assert_eq!(anchors[0]["generation"], "current", "{}", r.run);
        assert!(r.finding_kinds(node).is_empty(), "{}", r.run);
    }
    assert_eq!(r.node("app1")["leaf"]["sans"][0], "app1.internal");
    assert_eq!(r.node("lb1")["leaf"]["sans"][0], "lb1");

    let one_way = r.link("lb1", "app1");
    assert_eq!(one_way["mutual"], false, "{}", r.run);
    assert_eq!(one_way["server_name"], "app1.internal", "{}", r.run);
    let mutual = r.link("app1", "db1");
    assert_eq!(mutual["mutual"], true, "{}", r.run);
    assert_eq!(mutual["server_name"], "db1.internal", "{}", r.run);
    for link in [one_way, mutual] {
        assert_eq!(link["result"], "ok", "{}", r.run);
        assert_eq!(link["status"], "ok", "{}", r.run);
        assert!(link["live"].is_null(), "no --live, no probe\n{}", r.run);
        assert_eq!(link["order_violations"], serde_json::json!([]), "{}", r.run);
    }

    // Selecting the CA by name gives the same verdict; an unknown CA is a usage error.
    let by_name = f.verify_json(&["--ca", "internal"]);
    assert_eq!(by_name.code(), exit::VERIFY_OK, "{}", by_name.run);
    let run = f.certroll(&["verify", "--ca", "intrenal"]);
    run.expect_code(exit::USAGE);
    assert!(run.stderr.contains("intrenal"), "names the CA\n{run}");
}
