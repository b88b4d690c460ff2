//! Rollback under live traffic: a rotation killed with SIGKILL in the middle of its leaf
//! swaps (the second wave) is rolled back with `certroll apply --rollback`; once straight
//! through, once with the rollback itself killed and resumed by a plain `certroll apply`.
//! Not one handshake may fail, traffic never stops, and every node ends on G1 alone.

use std::fs;
use std::time::Duration;

use certroll::pki::{parse_pem_certs, CaStore};

use crate::checks::openssl_verify;
use crate::crash::{kill_after_steps, step_states};
use crate::harness::{serial, wait_with_timeout, Zdt, GROWTH, MAX_STALL, SAMPLE_EVERY};
use crate::support::topology::{Topology, CA_NAME, TLS_DIR};
use crate::support::traffic::Sampler;
use crate::three_tier;

/// Trust-adds of the three-tier plan (every node verifies someone): the first wave.
const TRUST_ADDS: usize = 7;

/// Starts `apply --rotate` and kills it once every trust-add and two leaf swaps are
/// confirmed: the fleet is left in the middle of the second wave, with swaps in flight.
fn rotation_killed_in_wave_two(zdt: &Zdt) {
    let baseline = zdt.journal_steps_done();
    kill_after_steps(
        zdt,
        &["apply", "--rotate", "--yes"],
        baseline,
        TRUST_ADDS + 2,
        "rotate",
    );
    let (total, done, interrupted) = step_states(zdt);
    eprintln!("rotation killed after {done} of {total} steps ({interrupted} interrupted)");
    assert!(
        done < total,
        "the rotation must be stopped before its end to be rolled back"
    );
}

/// Panics unless every node trusts G1 alone, its leaf verifies with G1 alone (OpenSSL),
/// no cross certificate is left, G1 is still current and G2 is archived as rolled back.
fn assert_all_back_on_old_generation(zdt: &Zdt) {
    let inv = certroll::inventory::load(&zdt.inventory).expect("load the inventory");
    let spec = inv.cas.iter().find(|c| c.name == CA_NAME).expect("test CA");
    let store = CaStore::new(&zdt.state_dir);
    let current = store
        .current(spec)
        .expect("read store")
        .expect("current CA");
    assert_eq!(current.generation, 1, "G1 stays current after a rollback");
    assert!(store.next(spec).expect("read store").is_none());
    let note = store
        .rolled_back_note(spec, 2)
        .expect("G2 archived with a note");
    assert!(note.contains("rolled back"), "{note}");
    let g1 = zdt.fleet.dir().join("g1.pem");
    fs::write(&g1, &current.cert_pem).expect("write G1 root");
    for node in zdt.topo.names() {
        let tls = zdt.fleet.node(node).dir.join(TLS_DIR);
        let bundle = fs::read(tls.join("ca.pem")).expect("read bundle");
        let roots = parse_pem_certs(&bundle).expect("bundle parses");
        assert!(
            roots.len() == 1 && roots[0].der == current.cert_der,
            "bundle of {node} must be exactly G1, holds {} certificates",
            roots.len()
        );
        let (ok, out) = openssl_verify(&g1, &tls.join("cert.pem"), &Topology::dns_name(node));
        assert!(ok, "leaf of {node} does not verify with G1 alone:\n{out}");
        assert!(
            !tls.join("cross.pem").exists(),
            "{node} still holds the cross certificate"
        );
    }
}

#[test]
fn rotation_killed_in_wave_two_rolls_back_without_a_failed_handshake() {
    let _one = serial();
    let mut zdt = Zdt::bootstrapped(three_tier());
    let before = zdt.peers.live_snapshot();
    let sampler = Sampler::start(zdt.peers.state_dirs(), SAMPLE_EVERY);
    rotation_killed_in_wave_two(&zdt);
    let run = zdt.observed(
        &["apply", "--rollback", "--yes", "--format", "json"],
        "rollback",
    );
    run.assert_zero_downtime("rollback");
    let timeline = sampler.finish();
    timeline.assert_continuous(MAX_STALL, "rotation then rollback");
    zdt.assert_no_failures(&run.after, "rotation then rollback");
    assert!(run.after.stalled_since(&before, GROWTH).is_empty());
    eprintln!(
        "rollback took {:?}, {} successful handshakes during it, 0 failed",
        run.timeline.duration(),
        run.handshakes()
    );

    let settled = zdt
        .peers
        .wait_for_growth(&run.after, GROWTH, "traffic after the rollback");
    zdt.assert_no_failures(&settled, "after the rollback");
    zdt.peers.stop();
    assert_all_back_on_old_generation(&zdt);
    zdt.certroll(&["verify"])
        .success("verify after the rollback");
    let status = zdt
        .certroll(&["status"])
        .success("status after the rollback");
    assert!(
        status.stdout.contains("rollback of run "),
        "{}",
        status.stdout
    );
}

#[test]
fn rollback_killed_with_sigkill_resumes_without_a_failed_handshake() {
    let _one = serial();
    let mut zdt = Zdt::bootstrapped(three_tier());
    let before = zdt.peers.live_snapshot();
    let sampler = Sampler::start(zdt.peers.state_dirs(), SAMPLE_EVERY);
    rotation_killed_in_wave_two(&zdt);

    let baseline = zdt.journal_steps_done();
    kill_after_steps(
        &zdt,
        &["apply", "--rollback", "--yes"],
        baseline,
        2,
        "rollback",
    );
    let (total, done, interrupted) = step_states(&zdt);
    eprintln!("rollback killed after {done} of {total} steps ({interrupted} interrupted)");
    let status = zdt.certroll(&["status"]);
    assert!(
        status.stdout.contains("rollback of run "),
        "{}",
        status.stdout
    );

    let mut resume = zdt.spawn(&["apply", "--yes", "--format", "json"], "resume");
    let code = wait_with_timeout(&mut resume, Duration::from_secs(180), "resume");
    let output = zdt.spawned_output("resume");
    assert_eq!(
        code,
        Some(0),
        "the resumed rollback must complete\n{output}"
    );
    assert!(
        output.contains("\"resumed\":true"),
        "a plain apply must resume the rollback\n{output}"
    );

    let after = zdt.peers.live_snapshot();
    let timeline = sampler.finish();
    zdt.assert_no_failures(&after, "rotation, rollback, kill and resume");
    let stalled = after.stalled_since(&before, GROWTH);
    assert!(
        stalled.is_empty(),
        "links without traffic:\n{}",
        stalled.join("\n")
    );
    timeline.assert_continuous(MAX_STALL, "rollback with a kill");
    let settled = zdt
        .peers
        .wait_for_growth(&after, GROWTH, "traffic after the resumed rollback");
    zdt.assert_no_failures(&settled, "after the resumed rollback");
    zdt.peers.stop();
    assert_all_back_on_old_generation(&zdt);
    zdt.certroll(&["verify"])
        .success("verify after the resumed rollback");
}
