//! RSA for the software that still needs it: an RSA-3072 CA whose nodes hold RSA-2048,
//! RSA-3072 and (chosen per node) ECDSA leaves is bootstrapped and rotated on real sshd
//! nodes; openssl reads every node's key as the algorithm the inventory asked for and
//! verifies its chain, and `verify` (rustls handshakes on every link) passes.

use crate::rotate::bootstrap_then_rotate;
use crate::support::inventory::{FleetInventory, KEY};
use crate::support::Fleet;
use crate::{on_node, openssl};

/// What `openssl pkey -text` says the node's private key is (its first line).
pub(crate) fn key_kind(fleet: &Fleet, node: &str) -> String {
    let text = openssl(&["pkey", "-noout", "-text"], &on_node(fleet, node, KEY));
    text.lines().next().unwrap_or_default().trim().to_string()
}

#[test]
fn an_rsa_ca_with_rsa_and_ecdsa_leaves_bootstraps_and_rotates() {
    let fleet = Fleet::start(&["lb1", "app1", "db1"]);
    let inv = FleetInventory::new(&fleet)
        .ca("key_algorithm", "rsa-3072")
        .node_key("lb1", "key_algorithm", "rsa-2048")
        .node_key("db1", "key_algorithm", "ecdsa-p256")
        .link("lb1", "app1")
        .mutual_link("app1", "db1");
    let ctl = bootstrap_then_rotate(&fleet, &inv, &[]);
    let root = std::fs::read_to_string(ctl.ca_pem(2)).expect("read the G2 root");
    let ca = certroll::pki::parse_pem_certs(root.as_bytes()).expect("parse the G2 root");
    assert_eq!(ca.len(), 1);
    let (_, x) = x509_parser::parse_x509_certificate(&ca[0].der).expect("G2 parses");
    assert_eq!(
        certroll::pki::keys::rsa_modulus_bits(x.public_key().raw),
        Some(3072),
        "the CA's own key is RSA-3072"
    );
    for (node, kind) in [
        ("lb1", "Private-Key: (2048 bit, 2 primes)"),
        ("app1", "Private-Key: (3072 bit, 2 primes)"),
        ("db1", "Private-Key: (256 bit)"),
    ] {
        assert_eq!(key_kind(&fleet, node), kind, "node {node}'s key");
    }
}
