//! The negative control: a naive rollover that writes the new CA's bundle and leaf to every
//! node at once and then reloads the nodes one after another (like a rolling restart).
//! While some nodes hold only the new CA and others only the old one, handshakes across
//! them must fail, and the peers must count it; otherwise a "zero failures" result of the
//! other scenarios would prove nothing.

use std::fs;

use certroll::pki::{issue_leaf, new_ca};
use time::OffsetDateTime;

use crate::harness::{serial, Zdt, GROWTH};
use crate::support::topology::{Topology, CA_NAME, TLS_DIR};

/// Issues generation 2 of the test CA with certroll's own PKI code and writes, on the host,
/// every node's bundle (G2 only), leaf and key, without reloading anything.
fn write_new_generation_everywhere(zdt: &Zdt) {
    let inv = certroll::inventory::load(&zdt.inventory).expect("load the inventory");
    let spec = inv
        .cas
        .iter()
        .find(|c| c.name == CA_NAME)
        .expect("the inventory has the test CA");
    let now = OffsetDateTime::now_utc();
    let g2 = new_ca(spec, 2, now).expect("create G2");
    for node in zdt.topo.names() {
        let leaf =
            issue_leaf(spec, &g2, node, &[Topology::dns_name(node)], now).expect("issue a G2 leaf");
        let tls = zdt.fleet.node(node).dir.join(TLS_DIR);
        fs::write(tls.join("ca.pem"), &g2.cert_pem).expect("write bundle");
        fs::write(tls.join("cert.pem"), &leaf.cert_pem).expect("write cert");
        fs::write(tls.join("key.pem"), &leaf.key_pem).expect("write key");
    }
}

#[test]
fn naive_rollover_is_seen_as_failed_handshakes() {
    let _one = serial();
    let zdt = Zdt::bootstrapped(
        Topology::new()
            .one_way(&["lb1"], &["app1"])
            .mutual(&["app1"], &["db1"]),
    );
    let clean = zdt.peers.snapshot();
    zdt.assert_no_failures(&clean, "before the naive rollover");

    write_new_generation_everywhere(&zdt);
    let mut nodes = zdt.topo.names().into_iter();
    let first = nodes.next().expect("a node");
    let out = zdt.peers.reload(first);
    assert!(
        out.status.success(),
        "reload of {first}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // app1 now presents a G2 leaf to lb1 and db1, which trust G1 only, and trusts only G2
    // itself: every link through it must fail until the others reload.
    let broken = zdt
        .peers
        .wait_until("the peers to count failed handshakes", |s| {
            s.total_failed() > 0
        });
    let failures = broken.failures().join("\n");
    // One-way: lb1 trusts only G1 and app1 presents G2. Mutual: app1 trusts only G2 and db1
    // presents G1 (and refuses app1's G2 leaf). Both links are down, not merely flaky.
    let links = ["lb1 → app1", "app1 → db1"];
    let first_fail = zdt.peers.live_snapshot().counts();
    let down = zdt
        .peers
        .wait_until("both links through app1 to keep failing", |s| {
            let c = s.counts();
            links
                .iter()
                .all(|l| c[*l].failed >= first_fail[*l].failed + 3)
        })
        .counts();
    for link in links {
        assert_eq!(
            down[link].ok,
            first_fail[link].ok,
            "{link} must not succeed while only app1 holds G2:\n{}",
            broken.describe()
        );
    }
    assert!(
        failures.contains("UnknownIssuer") || failures.contains("UnknownCA"),
        "failures must name the unknown issuer:\n{failures}"
    );

    for node in nodes {
        let out = zdt.peers.reload(node);
        assert!(
            out.status.success(),
            "reload of {node}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Once every node reloaded, the fleet is consistent again on G2: the failures came from
    // the order, not from bad material.
    let reloaded = zdt.peers.live_snapshot();
    zdt.peers
        .wait_for_growth(&reloaded, GROWTH, "traffic on G2 after every reload");
    let base = zdt.peers.live_snapshot();
    let healed = zdt
        .peers
        .wait_for_growth(&base, GROWTH, "more traffic on G2");
    assert_eq!(
        healed.total_failed(),
        base.total_failed(),
        "handshakes still fail once every node holds G2:\n{}",
        healed.failures().join("\n")
    );
    eprintln!(
        "negative control: {} failed handshakes counted during the naive rollover:\n{failures}",
        healed.total_failed()
    );
}
