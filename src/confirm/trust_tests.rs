//! Proving trust with throwaway client certificates against an in-process rustls server
//! whose CertificateRequest names no CA (the server and fixtures of the confirm's tests):
//! the defect "a server that sends no CA names can never be confirmed", the acceptance of
//! the new generation after trust-add and the refusal of the old one at trust-prune, over
//! TLS 1.2 and TLS 1.3 (whose verdict comes after the handshake), a server that still
//! trusts the old generation, and a refusal that proves nothing without an acceptance.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};

use super::*;
use crate::confirm::tests::{certs, expect, local, node, pki, Pki, Server};
use crate::confirm::{confirm_tls, TlsConfirmError};
use crate::inventory::Starttls;
use crate::pki::Leaf;

const VERSIONS: [&SupportedProtocolVersion; 2] = [&rustls::version::TLS12, &rustls::version::TLS13];

/// Serves `leaf` over `version` only; requires a client certificate that chains to one
/// of `trusts`, asking for it with no CA name (as Redis and MariaDB do).
fn no_names(
    leaf: &Leaf,
    trusts: &[&CaCert],
    version: &'static SupportedProtocolVersion,
) -> Arc<ServerConfig> {
    let mut roots = RootCertStore::empty();
    for ca in trusts {
        roots
            .add(rustls::pki_types::CertificateDer::from(ca.cert_der.clone()))
            .unwrap();
    }
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .clear_root_hint_subjects()
        .build()
        .unwrap();
    let key = pem::parse(&leaf.key_pem).unwrap().into_contents();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key));
    Arc::new(
        ServerConfig::builder_with_protocol_versions(&[version])
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&leaf.cert_pem), key)
            .unwrap(),
    )
}

fn both(p: &Pki) -> Throwaways {
    Throwaways::new("internal", vec![p.g1.clone(), p.g2.clone()])
}

fn verdicts(proof: &TrustProof) -> Vec<(u32, bool, bool)> {
    proof
        .generations
        .iter()
        .map(|g| (g.generation, g.trusted, g.verdict == Verdict::Accepted))
        .collect()
}

#[test]
fn a_server_that_sends_no_ca_names_is_not_a_mismatch_of_its_names() {
    let p = pki();
    for version in VERSIONS {
        let server = Server::start(no_names(&p.old_leaf, &[&p.g1], version), None);
        let (n, target) = node(server.port, Starttls::None, Duration::from_secs(5));
        let seen = look(&local(), &n, &target, Duration::from_secs(5), None).unwrap();
        assert_eq!(seen.ca_names, Some(Vec::new()), "{version:?}");
        let exp = expect(&p.old_leaf, &[&p.g1, &p.g2], &p);
        // Before: "it asks for client certificates from no CA in particular but not from
        // CN=Probe Test CA G1 of its trust bundle …: it has not loaded that bundle".
        assert_eq!(exp.mismatch(&seen), None, "{version:?}");
        assert!(names_say_nothing(&exp, seen.ca_names.as_ref()));
    }
}

#[test]
fn a_throwaway_of_the_new_generation_is_accepted_after_trust_add_and_one_of_the_old_refused_at_prune(
) {
    let p = pki();
    for version in VERSIONS {
        let server = Server::start(no_names(&p.old_leaf, &[&p.g1, &p.g2], version), None);
        let (n, target) = node(server.port, Starttls::None, Duration::from_secs(10));
        let throwaways = both(&p);
        // Trust-add: the bundle holds G1 and G2; the server accepts both.
        let exp = expect(&p.old_leaf, &[&p.g1, &p.g2], &p);
        let done = confirm_tls(&local(), &n, &target, &exp, None, &throwaways).unwrap();
        let trust = done.trust.clone().expect("a proof by throwaways");
        assert_eq!(
            verdicts(&trust),
            [(1, true, true), (2, true, true)],
            "{version:?}"
        );
        assert!(trust.complete());
        assert!(
            done.to_string()
                .ends_with("throwaway client certificates: G1's accepted, G2's accepted"),
            "{done}"
        );
        // Trust-prune: the bundle holds G2 only and the server reloaded it.
        server.reload(no_names(&p.new_leaf, &[&p.g2], version));
        let exp = expect(&p.new_leaf, &[&p.g2], &p);
        let done = confirm_tls(&local(), &n, &target, &exp, None, &throwaways).unwrap();
        let trust = done.trust.clone().expect("a proof by throwaways");
        assert_eq!(
            verdicts(&trust),
            [(2, true, true), (1, false, false)],
            "{version:?}"
        );
        assert!(
            matches!(&trust.generations[1].verdict, Verdict::Refused(how) if how.starts_with("it ")),
            "{trust:?}"
        );
        assert!(trust.complete(), "{trust}");
    }
}

#[test]
fn a_server_that_sends_no_ca_names_and_still_trusts_the_old_generation_fails_the_prune() {
    let p = pki();
    for version in VERSIONS {
        let server = Server::start(no_names(&p.new_leaf, &[&p.g1, &p.g2], version), None);
        let (n, target) = node(server.port, Starttls::None, Duration::from_millis(1500));
        let exp = expect(&p.new_leaf, &[&p.g2], &p);
        let e = confirm_tls(&local(), &n, &target, &exp, None, &both(&p)).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, TlsConfirmError::NotConfirmed { .. })
                && msg.contains(
                    "still accepts a throwaway client certificate of G1, which its trust \
                     bundle /etc/tls/ca.pem no longer holds: it has not loaded that bundle"
                ),
            "{version:?}: {msg}"
        );
    }
}

#[test]
fn a_refusal_proves_nothing_without_an_acceptance() {
    let p = pki();
    let server = Server::start(
        no_names(&p.new_leaf, &[&p.g2], &rustls::version::TLS13),
        None,
    );
    let (n, target) = node(server.port, Starttls::None, Duration::from_secs(5));
    let mut g2 = p.g2.clone();
    g2.key = None;
    let throwaways = Throwaways::new("internal", vec![p.g1.clone(), g2]);
    let exp = expect(&p.new_leaf, &[&p.g2], &p);
    let trust = prove(&local(), &n, &target, &exp, &throwaways, &|| {
        Duration::from_secs(5)
    })
    .unwrap();
    assert!(!trust.complete());
    let text = trust.to_string();
    assert!(
        text.contains("G2's acceptance cannot be proven (generation G2 was imported without its private key")
            && text.contains("G1's refusal cannot be proven (no throwaway of a generation its bundle holds could be shown accepted")
            && text.ends_with("node db1 has no confirm command either: nothing else proves it"),
        "{text}"
    );
}

#[test]
fn a_tls_1_3_refusal_after_the_handshake_is_the_servers_verdict() {
    let p = pki();
    let server = Server::start(
        no_names(&p.new_leaf, &[&p.g2], &rustls::version::TLS13),
        None,
    );
    let (n, target) = node(server.port, Starttls::None, Duration::from_secs(5));
    let old = both(&p).client_cert(&p.g1).unwrap();
    let seen = look(&local(), &n, &target, Duration::from_secs(5), Some(&old)).unwrap();
    match &seen.proof {
        Proof::KeyOnly { ended, offered, .. } => assert!(
            ended.starts_with("it sent alert")
                && offered.as_deref() == Some("a throwaway client certificate of G1")
                && seen.proof.to_string().ends_with(
                    "after the handshake (it sent alert UnknownCA after certroll offered a \
                     throwaway client certificate of G1)"
                ),
            "{}",
            seen.proof
        ),
        other => panic!("a refused certificate was taken for accepted: {other}"),
    }
    let new = both(&p).client_cert(&p.g2).unwrap();
    let seen = look(&local(), &n, &target, Duration::from_secs(5), Some(&new)).unwrap();
    assert!(matches!(seen.proof, Proof::Complete(_)), "{}", seen.proof);
}

#[test]
fn throwaways_are_reused_while_they_last_and_never_shown() {
    let p = pki();
    let throwaways = both(&p);
    let a = throwaways.client_cert(&p.g2).unwrap();
    let b = throwaways.client_cert(&p.g2).unwrap();
    assert!(Arc::ptr_eq(&a.key, &b.key));
    let shown = format!("{throwaways:?} {a:?}");
    assert!(
        !shown.contains("PRIVATE") && shown.contains("G2"),
        "{shown}"
    );
}
