//! verify between the phases of a rotation: a node's confirm fails, `apply --rotate`
//! stops (exit 75) with the fleet half rolled over, verify still finds it safe and names
//! each node's phase (and the step that ran early when a bundle is put back by hand);
//! once confirm works again a plain `apply` resumes and verify sees generation 2
//! everywhere.
//!
//! The plan of `lb1 → app1, app1 ⇄ db1` (phased): trust-add on every node; db1's
//! leaf-swap waits for app1 and db1 only; app1's and lb1's leaf-swaps wait for lb1. So
//! when lb1's confirm fails, the run stops with app1 and lb1 trusting both generations
//! (lb1's bundle was written, only its confirmation failed) and db1 switched to G2.
//! With `--chain cross-signed` the leaf-swaps are not gated, and verify follows the
//! cross certificate that lets a verifier trusting only G1 check a G2 leaf.

use certroll::exit;

use crate::support::verify_kit::{FleetSpec, TlsFile};

#[test]
fn verify_during_and_after_an_interrupted_rotation() {
    let f = FleetSpec::standard().bootstrap();
    f.fail_confirm("lb1");
    let run = f.certroll(&["apply", "--rotate", "--yes"]);
    run.expect_code(exit::INCOMPLETE);
    assert!(
        run.stderr.contains("node lb1 did not confirm"),
        "the run stops at lb1's confirmation\n{run}"
    );

    // Half way: safe, and every node's phase is the one the plan left it in.
    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_OK, "{}", r.run);
    assert_eq!(r.ca()["rotating"], true, "{}", r.run);
    assert_eq!(r.ca()["generation"]["current"], 1, "{}", r.run);
    assert_eq!(r.ca()["generation"]["next"], 2, "{}", r.run);
    assert_eq!(r.safe(), Some(true), "{}", r.run);
    for (node, phase) in [
        ("app1", "trusting-both"),
        ("db1", "switched"),
        ("lb1", "trusting-both"),
    ] {
        assert_eq!(r.phase(node), phase, "phase of {node}\n{}", r.run);
        assert!(r.finding_kinds(node).is_empty(), "{}", r.run);
    }
    assert_eq!(r.node("db1")["leaf"]["generation"], "next", "{}", r.run);
    assert_eq!(r.node("db1")["leaf"]["generation_number"], 2, "{}", r.run);
    r.expect_link_ok("lb1", "app1");
    r.expect_link_ok("app1", "db1");
    let text = f.certroll(&["verify"]);
    text.expect_code(exit::VERIFY_OK)
        .expect_stdout("G1 → G2, rotation in progress")
        .expect_stdout("SAFE");

    // Put app1's bundle back to {G1} by hand: db1's G2 leaf is now a swap too early.
    let both = f.read("app1", TlsFile::Bundle);
    f.write("app1", TlsFile::Bundle, &f.current_ca().cert_pem);
    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    assert_eq!(r.safe(), Some(false), "{}", r.run);
    assert_eq!(r.phase("app1"), "old", "{}", r.run);
    r.expect_link_failed("app1", "db1", "client", "unknown-issuer");
    let violations = r.link("app1", "db1")["order_violations"].to_string();
    assert!(
        violations.contains("leaf swap too early") && violations.contains("db1"),
        "the report names the step that ran early\n{}",
        r.run
    );
    f.write("app1", TlsFile::Bundle, both);

    // Confirm works again: a plain apply resumes and finishes the rotation.
    f.fix_confirm("lb1");
    f.certroll(&["apply", "--yes"]).expect_code(exit::OK);
    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_OK, "{}", r.run);
    assert_eq!(r.ca()["rotating"], false, "{}", r.run);
    assert_eq!(r.ca()["generation"]["current"], 2, "{}", r.run);
    assert_eq!(
        r.ca()["generation"]["previous"],
        serde_json::json!([1]),
        "{}",
        r.run
    );
    for node in ["app1", "db1", "lb1"] {
        assert_eq!(r.phase(node), "current", "phase of {node}\n{}", r.run);
        let n = r.node(node);
        assert_eq!(n["leaf"]["generation_number"], 2, "{}", r.run);
        let anchors = n["anchors"].as_array().expect("anchors array");
        assert_eq!(anchors.len(), 1, "only G2 is trusted on {node}\n{}", r.run);
        assert_eq!(anchors[0]["generation_number"], 2, "{}", r.run);
        assert!(r.finding_kinds(node).is_empty(), "{}", r.run);
    }
    f.certroll(&["verify"])
        .expect_code(exit::VERIFY_OK)
        .expect_stdout("CA internal (G2)")
        .expect_stdout("verify: 3 nodes, 2 links — OK");
}

#[test]
fn cross_signed_chain_keeps_a_verifier_that_trusts_only_g1() {
    let f = FleetSpec::standard().bootstrap();
    f.fail_confirm("lb1");
    let run = f.certroll(&["apply", "--rotate", "--chain", "cross-signed", "--yes"]);
    run.expect_code(exit::INCOMPLETE);
    // Without the leaf-swap gate, app1 and db1 switched while lb1 failed to confirm; db1
    // pruned, app1 did not: its prune drops the cross certificate, so it waits for its
    // verifier lb1 to trust G2. Put lb1 back to trusting G1 only, like a peer that never
    // took the new anchor.
    f.write("lb1", TlsFile::Bundle, &f.current_ca().cert_pem);

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_OK, "{}", r.run);
    assert_eq!(r.safe(), Some(true), "{}", r.run);
    for (node, phase) in [("app1", "switched"), ("db1", "pruned"), ("lb1", "old")] {
        assert_eq!(r.phase(node), phase, "phase of {node}\n{}", r.run);
    }
    assert_eq!(
        r.node("app1")["chain_extra"],
        1,
        "app1 serves [leaf G2, G2-by-G1]\n{}",
        r.run
    );
    r.expect_link_ok("lb1", "app1");

    // Without the cross certificate, lb1 can no longer check app1's G2 leaf.
    let chain = String::from_utf8(f.read("app1", TlsFile::Cert)).unwrap();
    let end = "-----END CERTIFICATE-----\n";
    let leaf_only = &chain[..chain.find(end).expect("a PEM chain") + end.len()];
    f.write("app1", TlsFile::Cert, leaf_only);
    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    assert_eq!(r.node("app1")["chain_extra"], 0, "{}", r.run);
    r.expect_link_failed("lb1", "app1", "client", "unknown-issuer");
    let violations = r.link("lb1", "app1")["order_violations"].to_string();
    assert!(
        violations.contains("leaf swap too early") && violations.contains("lb1"),
        "the report names the step that ran early\n{}",
        r.run
    );
    r.expect_link_ok("app1", "db1");
}
