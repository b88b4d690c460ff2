//! certroll's built-in TLS confirm (`tls_address`) and `verify --live` against servers that
//! show the node's real certificate without holding its key, that drip one byte every few
//! seconds, or that require a client certificate certroll cannot make them accept, through
//! the real binary on local nodes (servers: `support::hostile_tls`).
//!
//! A copy of a certificate is public: only the server's handshake signature (TLS 1.2
//! ServerKeyExchange, TLS 1.3 CertificateVerify), verified with the served leaf's key,
//! proves that the server holds the key. One deadline bounds each handshake, whatever the
//! server sends.

use std::time::{Duration, Instant};

mod support;
use support::hostile_tls::{
    bootstrapped, certroll, db_failure, db_proofs, node_dir, write_inventory, Behaviour, Tls,
    TlsServer,
};

const SIGNATURE_REFUSED: &str = "does not verify with the public key of the certificate it served";

#[test]
fn confirm_refuses_a_server_whose_handshake_signature_is_garbage() {
    for tls in [Tls::V12, Tls::V13] {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = TlsServer::start(
            &node_dir(dir.path(), "db"),
            tls,
            Behaviour::GarbageSignature,
        );
        write_inventory(dir.path(), Some(server.port), "3s");
        let run = certroll(dir.path(), &["apply", "--yes"]);
        run.expect_code(75);
        let error = db_failure(dir.path(), &run);
        assert!(
            error.contains("node db did not confirm at 127.0.0.1:"),
            "{tls:?}: {error}"
        );
        let message = match tls {
            Tls::V12 => "the signature of its TLS 1.2 ServerKeyExchange does not verify",
            Tls::V13 => "the signature of its TLS 1.3 CertificateVerify does not verify",
        };
        assert!(error.contains(message), "{tls:?}: {error}");
        assert!(
            error.contains("does not hold that certificate's private key"),
            "{error}"
        );
    }
}

#[test]
fn confirm_refuses_a_server_that_serves_the_new_certificate_with_the_old_key() {
    for tls in [Tls::V12, Tls::V13] {
        let dir = bootstrapped();
        let old_key = std::fs::read(node_dir(dir.path(), "db").join("key.pem")).expect("key");
        let server = TlsServer::start(
            &node_dir(dir.path(), "db"),
            tls,
            Behaviour::SignsWith(old_key),
        );
        write_inventory(dir.path(), Some(server.port), "3s");
        // While the old leaf is on disk, the server holds its key: it passes.
        certroll(dir.path(), &["verify", "--live"]).expect_code(0);
        // db's first step of the rotation is its leaf swap (it verifies no client).
        let run = certroll(dir.path(), &["apply", "--rotate", "--yes"]);
        run.expect_code(75);
        let error = db_failure(dir.path(), &run);
        assert!(error.contains(SIGNATURE_REFUSED), "{tls:?}: {error}");
        assert!(db_proofs(dir.path()).is_empty(), "{run}");
    }
}

#[test]
fn verify_live_refuses_a_server_whose_handshake_signature_is_garbage() {
    for tls in [Tls::V12, Tls::V13] {
        let dir = bootstrapped();
        let server = TlsServer::start(
            &node_dir(dir.path(), "db"),
            tls,
            Behaviour::GarbageSignature,
        );
        write_inventory(dir.path(), Some(server.port), "5s");
        let run = certroll(dir.path(), &["verify", "--live"]);
        run.expect_code(2)
            .expect_output(&format!(
                "node db at 127.0.0.1:{} (as reached from the node): the signature of its",
                server.port
            ))
            .expect_output(SIGNATURE_REFUSED);
    }
}

#[test]
fn verify_live_refuses_a_server_that_serves_the_new_certificate_with_the_old_key() {
    for tls in [Tls::V12, Tls::V13] {
        let dir = bootstrapped();
        let old_key = std::fs::read(node_dir(dir.path(), "db").join("key.pem")).expect("key");
        certroll(dir.path(), &["apply", "--rotate", "--yes"]).expect_code(0);
        let server = TlsServer::start(
            &node_dir(dir.path(), "db"),
            tls,
            Behaviour::SignsWith(old_key),
        );
        write_inventory(dir.path(), Some(server.port), "5s");
        certroll(dir.path(), &["verify", "--live"])
            .expect_code(2)
            .expect_output(SIGNATURE_REFUSED);
    }
}

#[test]
fn an_honest_server_passes_the_confirm_and_verify_live_over_tls_1_2_and_1_3() {
    for (tls, version) in [(Tls::V12, "TLS 1.2"), (Tls::V13, "TLS 1.3")] {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = TlsServer::start(&node_dir(dir.path(), "db"), tls, Behaviour::Honest);
        write_inventory(dir.path(), Some(server.port), "20s");
        certroll(dir.path(), &["apply", "--yes"]).expect_code(0);
        certroll(dir.path(), &["apply", "--rotate", "--yes"])
            .expect_code(0)
            .expect_output(&format!("chain, key and handshake proven ({version})"));
        let proofs = db_proofs(dir.path());
        assert!(proofs.len() >= 2, "{proofs:?}");
        for proof in &proofs {
            assert_eq!(
                proof,
                &format!(
                    "TLS at 127.0.0.1:{}: chain, key and handshake proven ({version})",
                    server.port
                )
            );
        }
        certroll(dir.path(), &["verify", "--live"]).expect_code(0);
    }
}

#[test]
fn a_tls_1_2_server_that_refuses_every_client_certificate_proves_chain_and_key_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TlsServer::start(
        &node_dir(dir.path(), "db"),
        Tls::V12,
        Behaviour::RefusesEveryClient,
    );
    write_inventory(dir.path(), Some(server.port), "20s");
    // The server's alert may be lost to the reset of its close: "it sent alert …" or "it
    // closed the connection".
    let proven = "chain and key proven (TLS 1.2 ServerKeyExchange signature); handshake aborted \
                  by the server after CertificateRequest (it ";
    certroll(dir.path(), &["apply", "--yes"])
        .expect_code(0)
        .expect_output(proven);
    let proofs = db_proofs(dir.path());
    assert!(
        proofs.len() == 1
            && proofs[0].contains(proven)
            && proofs[0].contains("after certroll offered the node's own certificate"),
        "{proofs:?}"
    );
    // verify --live says so, as information, not as a problem.
    certroll(dir.path(), &["verify", "--live"])
        .expect_code(0)
        .expect_output(proven);
    // Over TLS 1.3 the server sends its Finished before it sees the client's certificate:
    // its refusal comes after the handshake, where certroll reads it as any client would.
    let server13 = TlsServer::start(
        &node_dir(dir.path(), "db"),
        Tls::V13,
        Behaviour::RefusesEveryClient,
    );
    write_inventory(dir.path(), Some(server13.port), "20s");
    certroll(dir.path(), &["verify", "--live"])
        .expect_code(0)
        .expect_output(
            "chain and key proven (TLS 1.3 CertificateVerify signature); the server refused \
             the client certificate it had asked for, after the handshake (it sent alert \
             AccessDenied after certroll offered the node's own certificate)",
        );
}

/// Generous for a loaded machine, small next to what a dripping server held before (one
/// byte per read timeout, for hundreds of reads).
const MARGIN: Duration = Duration::from_secs(3);

#[test]
fn verify_live_probe_timeout_bounds_the_whole_handshake_of_a_dripping_server() {
    let dir = bootstrapped();
    let server = TlsServer::dripping(&node_dir(dir.path(), "db"));
    write_inventory(dir.path(), Some(server.port), "5s");
    let start = Instant::now();
    let run = certroll(dir.path(), &["verify", "--live", "--probe-timeout", "5s"]);
    let took = start.elapsed();
    run.expect_code(2)
        .expect_output("no complete TLS handshake within 5s");
    assert!(
        took < Duration::from_secs(5) + MARGIN,
        "took {took:?}\n{run}"
    );
    assert_eq!(server.connections(), 1, "{run}");
}

#[test]
fn confirm_timeout_bounds_the_confirm_of_a_dripping_server() {
    let dir = bootstrapped();
    let server = TlsServer::dripping(&node_dir(dir.path(), "db"));
    write_inventory(dir.path(), Some(server.port), "5s");
    // The rotation's first step on db confirms against the dripping server.
    let start = Instant::now();
    let run = certroll(dir.path(), &["apply", "--rotate", "--yes"]);
    let took = start.elapsed();
    run.expect_code(75);
    let error = db_failure(dir.path(), &run);
    assert!(
        error.contains("did not confirm at 127.0.0.1:") && error.contains("within 5s"),
        "{error}"
    );
    assert!(
        error.contains("no complete TLS handshake within"),
        "{error}"
    );
    // The run ends with db's failed step; the rest of the run (a new CA, app's quick
    // steps) gets a margin of its own.
    assert!(
        took < Duration::from_secs(5) + MARGIN + Duration::from_secs(5),
        "took {took:?}\n{run}"
    );
}
