//! Real in-memory TLS handshakes between node files: the accepted cases of a rollover
//! (one-way, mutual, cross-signed chain, two-generation bundle) and every failure class,
//! each blamed on the right side.

use std::time::{Duration, Instant};

use certroll::inventory::{CaSpec, KeyAlgorithm};
use certroll::pki::{cross_sign, issue_leaf, new_ca, CaCert, Leaf};
use certroll::tls::{handshake, Endpoint, FailureKind, HandshakeError, Side};
use time::OffsetDateTime;

mod support;
use support::pki::{self, ALGORITHMS, DAY};

fn spec(alg: KeyAlgorithm) -> CaSpec {
    pki::spec(alg, "CN=Handshake Test CA")
}

/// A node's files, owned.
struct Files {
    bundle: String,
    chain: String,
    key: String,
}

impl Files {
    fn new(bundle: &[&CaCert], leaf: &Leaf, extra_chain: &[&str]) -> Files {
        let mut chain = leaf.cert_pem.clone();
        extra_chain.iter().for_each(|c| chain.push_str(c));
        Files {
            bundle: bundle.iter().map(|c| c.cert_pem.as_str()).collect(),
            chain,
            key: leaf.key_pem.clone(),
        }
    }

    fn endpoint(&self) -> Endpoint<'_> {
        Endpoint {
            bundle_pem: self.bundle.as_bytes(),
            chain_pem: self.chain.as_bytes(),
            key_pem: self.key.as_bytes(),
        }
    }
}

/// One CA generation with a client leaf and a server leaf (`app1.internal`, 10.0.0.21).
struct Fleet {
    spec: CaSpec,
    ca: CaCert,
    client: Leaf,
    server: Leaf,
}

fn fleet(alg: KeyAlgorithm, generation: u32) -> Fleet {
    let spec = spec(alg);
    let now = OffsetDateTime::now_utc();
    let ca = new_ca(&spec, generation, now).unwrap();
    let client = issue_leaf(&spec, &ca, "lb1", &["lb1.internal".into()], now).unwrap();
    let server = issue_leaf(
        &spec,
        &ca,
        "app1",
        &["app1.internal".into(), "10.0.0.21".into()],
        now,
    )
    .unwrap();
    Fleet {
        spec,
        ca,
        client,
        server,
    }
}

fn run(
    client: &Files,
    server: &Files,
    name: &str,
    mutual: bool,
    now: Option<u64>,
) -> Result<(), HandshakeError> {
    handshake(client.endpoint(), server.endpoint(), name, mutual, now)
}

fn expect(result: Result<(), HandshakeError>, side: Side, kind: FailureKind) -> HandshakeError {
    let err = result.expect_err("the handshake should have failed");
    assert_eq!((err.side, err.kind), (side, kind), "{err}");
    assert!(!err.detail.is_empty());
    assert!(!err.detail.contains("PRIVATE KEY"), "{err}");
    err
}

#[test]
fn one_way_and_mutual_handshakes_succeed_for_every_algorithm() {
    for alg in ALGORITHMS {
        let f = fleet(alg, 1);
        let client = Files::new(&[&f.ca], &f.client, &[]);
        let server = Files::new(&[&f.ca], &f.server, &[]);
        run(&client, &server, "app1.internal", false, None)
            .unwrap_or_else(|e| panic!("{alg:?} one-way: {e}"));
        run(&client, &server, "10.0.0.21", false, None)
            .unwrap_or_else(|e| panic!("{alg:?} by IP: {e}"));
        run(&client, &server, "app1.internal", true, None)
            .unwrap_or_else(|e| panic!("{alg:?} mutual: {e}"));
    }
}

#[test]
fn one_way_ignores_the_clients_own_files() {
    let f = fleet(KeyAlgorithm::EcdsaP256, 1);
    let client = Files {
        bundle: f.ca.cert_pem.clone(),
        chain: "garbage".into(),
        key: String::new(),
    };
    let server = Files {
        bundle: String::new(),
        ..Files::new(&[&f.ca], &f.server, &[])
    };
    run(&client, &server, "app1.internal", false, None).unwrap();
    expect(
        run(&client, &server, "app1.internal", true, None),
        Side::Client,
        FailureKind::BadPem,
    );
}

#[test]
fn unknown_issuer_is_refused_by_the_client() {
    let (a, b) = (
        fleet(KeyAlgorithm::EcdsaP256, 1),
        fleet(KeyAlgorithm::EcdsaP256, 2),
    );
    let client = Files::new(&[&b.ca], &b.client, &[]);
    let server = Files::new(&[&a.ca], &a.server, &[]);
    expect(
        run(&client, &server, "app1.internal", false, None),
        Side::Client,
        FailureKind::UnknownIssuer,
    );
}

#[test]
fn name_mismatch_is_refused_by_the_client() {
    let f = fleet(KeyAlgorithm::EcdsaP384, 1);
    let client = Files::new(&[&f.ca], &f.client, &[]);
    let server = Files::new(&[&f.ca], &f.server, &[]);
    let err = expect(
        run(&client, &server, "db1.internal", false, None),
        Side::Client,
        FailureKind::NameMismatch,
    );
    assert!(
        err.detail.contains("app1.internal") && err.detail.contains("db1.internal"),
        "{err}"
    );
    expect(
        run(&client, &server, "10.0.0.22", false, None),
        Side::Client,
        FailureKind::NameMismatch,
    );
}

#[test]
fn validity_is_checked_at_the_given_instant() {
    let f = fleet(KeyAlgorithm::Ed25519, 1);
    let client = Files::new(&[&f.ca], &f.client, &[]);
    let server = Files::new(&[&f.ca], &f.server, &[]);
    let expiry = f.server.not_after.unix_timestamp() as u64;
    run(&client, &server, "app1.internal", false, Some(expiry - DAY)).unwrap();
    let err = expect(
        run(&client, &server, "app1.internal", false, Some(expiry + DAY)),
        Side::Client,
        FailureKind::Expired,
    );
    assert!(err.detail.contains("expired at"), "{err}");
    let issued = OffsetDateTime::now_utc().unix_timestamp() as u64;
    expect(
        run(
            &client,
            &server,
            "app1.internal",
            false,
            Some(issued - 2 * DAY),
        ),
        Side::Client,
        FailureKind::NotYetValid,
    );
    // The server checks the client's certificate against the same clock: a client leaf
    // issued ten days earlier expires while the server's is still valid.
    let earlier = OffsetDateTime::now_utc() - time::Duration::days(10);
    let old_client = issue_leaf(&f.spec, &f.ca, "lb1", &["lb1.internal".into()], earlier).unwrap();
    let client = Files::new(&[&f.ca], &old_client, &[]);
    let client_expiry = old_client.not_after.unix_timestamp() as u64;
    run(
        &client,
        &server,
        "app1.internal",
        false,
        Some(client_expiry + DAY),
    )
    .unwrap();
    let result = run(
        &client,
        &server,
        "app1.internal",
        true,
        Some(client_expiry + DAY),
    );
    expect(result, Side::Server, FailureKind::Expired);
}

#[test]
fn mutual_client_from_another_ca_is_refused_by_the_server() {
    let (a, b) = (
        fleet(KeyAlgorithm::EcdsaP256, 1),
        fleet(KeyAlgorithm::EcdsaP256, 2),
    );
    let client = Files::new(&[&a.ca], &b.client, &[]);
    let server = Files::new(&[&a.ca], &a.server, &[]);
    run(&client, &server, "app1.internal", false, None).unwrap();
    expect(
        run(&client, &server, "app1.internal", true, None),
        Side::Server,
        FailureKind::UnknownIssuer,
    );
}

#[test]
fn key_mismatch_is_found_before_handshaking() {
    let f = fleet(KeyAlgorithm::EcdsaP256, 1);
    let client = Files::new(&[&f.ca], &f.client, &[]);
    let mut server = Files::new(&[&f.ca], &f.server, &[]);
    server.key = f.client.key_pem.clone();
    let err = expect(
        run(&client, &server, "app1.internal", false, None),
        Side::Server,
        FailureKind::KeyMismatch,
    );
    assert!(err.detail.contains("server"), "{err}");
    let server = Files::new(&[&f.ca], &f.server, &[]);
    let mut client = Files::new(&[&f.ca], &f.client, &[]);
    client.key = f.server.key_pem.clone();
    expect(
        run(&client, &server, "app1.internal", true, None),
        Side::Client,
        FailureKind::KeyMismatch,
    );
    client.key = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into();
    expect(
        run(&client, &server, "app1.internal", true, None),
        Side::Client,
        FailureKind::BadKey,
    );
}

#[test]
fn corrupt_or_empty_files_are_blamed_on_their_owner() {
    let f = fleet(KeyAlgorithm::EcdsaP256, 1);
    let good_client = Files::new(&[&f.ca], &f.client, &[]);
    let good_server = Files::new(&[&f.ca], &f.server, &[]);
    let corrupt = |pem: &str| pem.replacen("MII", "M*I", 1).replacen('\n', "\n#", 2);

    let client = Files {
        bundle: corrupt(&f.ca.cert_pem),
        ..Files::new(&[&f.ca], &f.client, &[])
    };
    expect(
        run(&client, &good_server, "app1.internal", false, None),
        Side::Client,
        FailureKind::BadPem,
    );
    let server = Files {
        chain: corrupt(&f.server.cert_pem),
        ..Files::new(&[&f.ca], &f.server, &[])
    };
    expect(
        run(&good_client, &server, "app1.internal", false, None),
        Side::Server,
        FailureKind::BadPem,
    );
    let server = Files {
        key: "not a key at all".into(),
        ..Files::new(&[&f.ca], &f.server, &[])
    };
    let err = expect(
        run(&good_client, &server, "app1.internal", false, None),
        Side::Server,
        FailureKind::BadPem,
    );
    assert!(!err.detail.contains("not a key at all"), "{err}");
    let truncated = f.server.cert_pem[..f.server.cert_pem.len() / 2].to_string();
    let server = Files {
        chain: truncated,
        ..Files::new(&[&f.ca], &f.server, &[])
    };
    expect(
        run(&good_client, &server, "app1.internal", false, None),
        Side::Server,
        FailureKind::BadPem,
    );

    let client = Files {
        bundle: "\n".into(),
        ..Files::new(&[&f.ca], &f.client, &[])
    };
    expect(
        run(&client, &good_server, "app1.internal", false, None),
        Side::Client,
        FailureKind::EmptyBundle,
    );
    let server = Files {
        bundle: String::new(),
        ..Files::new(&[&f.ca], &f.server, &[])
    };
    expect(
        run(&good_client, &server, "app1.internal", true, None),
        Side::Server,
        FailureKind::EmptyBundle,
    );
    let server = Files {
        chain: f.server.key_pem.clone(),
        ..Files::new(&[&f.ca], &f.server, &[])
    };
    expect(
        run(&good_client, &server, "app1.internal", false, None),
        Side::Server,
        FailureKind::MissingCertificate,
    );
}

#[test]
fn cross_signed_chain_is_accepted_by_a_client_trusting_only_the_old_root() {
    for alg in ALGORITHMS {
        let old = fleet(alg, 1);
        let new = fleet(alg, 2);
        let cross = cross_sign(&old.spec, &new.ca, &old.ca, OffsetDateTime::now_utc()).unwrap();
        let old_client = Files::new(&[&old.ca], &old.client, &[]);
        let bare = Files::new(&[&old.ca, &new.ca], &new.server, &[]);
        let crossed = Files::new(&[&old.ca, &new.ca], &new.server, &[&cross]);
        expect(
            run(&old_client, &bare, "app1.internal", false, None),
            Side::Client,
            FailureKind::UnknownIssuer,
        );
        run(&old_client, &crossed, "app1.internal", false, None)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        // Mutual: the old client is checked by a server whose bundle holds both roots,
        // and a new client presenting the cross chain passes a server trusting only old.
        run(&old_client, &crossed, "app1.internal", true, None)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        let new_client = Files::new(&[&old.ca, &new.ca], &new.client, &[&cross]);
        let old_server = Files::new(&[&old.ca], &old.server, &[]);
        run(&new_client, &old_server, "app1.internal", true, None)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        let new_root_client = Files::new(&[&new.ca], &new.client, &[]);
        run(&new_root_client, &crossed, "app1.internal", false, None)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    }
}

#[test]
fn two_generation_bundle_accepts_old_and_new_leaves() {
    let old = fleet(KeyAlgorithm::EcdsaP256, 1);
    let new = fleet(KeyAlgorithm::EcdsaP256, 2);
    for bundle in [[&old.ca, &new.ca], [&new.ca, &old.ca]] {
        let client = Files::new(&bundle, &old.client, &[]);
        for leaf in [&old.server, &new.server] {
            run(
                &client,
                &Files::new(&bundle, leaf, &[]),
                "app1.internal",
                true,
                None,
            )
            .unwrap();
        }
    }
    let pruned = Files::new(&[&new.ca], &new.client, &[]);
    expect(
        run(
            &pruned,
            &Files::new(&[&old.ca], &old.server, &[]),
            "app1.internal",
            false,
            None,
        ),
        Side::Client,
        FailureKind::UnknownIssuer,
    );
}

#[test]
fn handshakes_are_fast_enough_for_simulation() {
    for alg in ALGORITHMS {
        let f = fleet(alg, 1);
        let client = Files::new(&[&f.ca], &f.client, &[]);
        let server = Files::new(&[&f.ca], &f.server, &[]);
        for mutual in [false, true] {
            let rounds = 50;
            let start = Instant::now();
            for _ in 0..rounds {
                run(&client, &server, "app1.internal", mutual, None).unwrap();
            }
            let per = start.elapsed() / rounds;
            eprintln!(
                "{alg:?} mutual={mutual}: {} µs per handshake",
                per.as_micros()
            );
            assert!(
                per < Duration::from_millis(100),
                "{alg:?}: {per:?} per handshake"
            );
        }
    }
}
