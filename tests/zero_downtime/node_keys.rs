//! Keys that never travel (`key_source = "node"`): a fleet bootstrapped with keys made on
//! the control host sets `key_source = "node"` and rotates under continuous handshakes
//! (the documented move: every leaf, so every key, is replaced by the rotation). Every
//! byte that crosses a transport is traced (the debug-build hook
//! `CERTROLL_TRACE_TRANSPORT`): the trace of the rotation and of `verify` holds no private
//! key block and no key of any node. The negative control moves back to
//! `key_source = "control"`, rotates again and finds the new keys in its trace, so the
//! search can see one.

use std::fs;
use std::path::Path;

use crate::checks::{assert_all_on_new_generation, Generations};
use crate::harness::{serial, Zdt, GROWTH};
use crate::support::topology::{Topology, TLS_DIR};

/// app ⇄ db mutual, lb → app one-way.
fn small() -> Topology {
    Topology::new()
        .one_way(&["lb"], &["app"])
        .mutual(&["app"], &["db"])
}

/// Sets `key_source` in the inventory's `[defaults]`.
fn set_key_source(zdt: &Zdt, source: &str) {
    let text = fs::read_to_string(&zdt.inventory).expect("read inventory");
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("key_source"))
        .map(|l| {
            if l == "[defaults]" {
                format!("{l}\nkey_source = {source:?}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(&zdt.inventory, text).expect("write inventory");
}

/// The base64 lines of every node's key as it is on disk now (read on the node's side).
fn key_lines(zdt: &Zdt) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for node in zdt.topo.names() {
        let path = zdt.fleet.node(node).dir.join(TLS_DIR).join("key.pem");
        let pem = fs::read_to_string(&path).expect("read a node key");
        assert!(
            pem.contains("PRIVATE KEY"),
            "{node}: not a key: {}",
            path.display()
        );
        for line in pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 32)
        {
            out.push((node.to_string(), line.to_string()));
        }
        let der = pem::parse(&pem).expect("key PEM").into_contents();
        out.push((node.to_string(), format!("DER:{}", hex::encode(der))));
    }
    out
}

/// Which of `keys` the trace at `path` holds (as base64 text or raw DER bytes).
fn leaked(path: &Path, keys: &[(String, String)]) -> Vec<String> {
    let trace = fs::read(path).expect("read the transport trace");
    let text = String::from_utf8_lossy(&trace);
    let mut found = Vec::new();
    if text.contains("PRIVATE KEY") {
        found.push("a PRIVATE KEY block".to_string());
    }
    for (node, k) in keys {
        let hit = match k.strip_prefix("DER:") {
            Some(h) => {
                let der = hex::decode(h).expect("hex");
                trace
                    .windows(der.len().min(32))
                    .any(|w| w == &der[der.len() - 32..])
            }
            None => text.contains(k.as_str()),
        };
        if hit {
            found.push(format!("key of {node}: {}", &k[..k.len().min(24)]));
        }
    }
    found
}

fn no_pending_dirs(zdt: &Zdt) {
    for node in zdt.topo.names() {
        let tls = zdt.fleet.node(node).dir.join(TLS_DIR);
        for store in fs::read_dir(&tls).expect("tls dir").flatten() {
            if !store
                .file_name()
                .to_string_lossy()
                .starts_with(".certroll-")
            {
                continue;
            }
            for e in fs::read_dir(store.path()).expect("store").flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(!name.starts_with(".key-"), "{node}: leftover {name}");
            }
        }
    }
}

#[test]
fn node_made_keys_rotate_without_a_failed_handshake_and_never_cross_the_transport() {
    let _one = serial();
    let mut zdt = Zdt::bootstrapped(small());
    let trace = zdt.fleet.dir().join("node-keys.trace");
    zdt.trace = Some(trace.clone());

    // The documented move: set key_source = "node"; the rotation replaces every key.
    set_key_source(&zdt, "node");
    let run = zdt.observed(
        &["apply", "--rotate", "--yes", "--format", "json"],
        "rotate-node",
    );
    run.assert_zero_downtime("rotation with node-made keys");
    let after = zdt
        .peers
        .wait_for_growth(&run.after, GROWTH, "traffic after the rotation");
    zdt.assert_no_failures(&after, "after the rotation with node-made keys");
    let gens = Generations::of(&zdt, 1, 2);
    assert_all_on_new_generation(&zdt, &gens);
    zdt.certroll(&["verify"])
        .success("verify after the rotation with node-made keys");
    no_pending_dirs(&zdt);

    let keys = key_lines(&zdt);
    let found = leaked(&trace, &keys);
    assert!(
        found.is_empty(),
        "the transport carried private keys:\n{}",
        found.join("\n")
    );
    assert!(
        fs::read_to_string(&trace).unwrap().contains("keygen"),
        "the trace shows no keygen: the hook traced nothing"
    );

    // Negative control: keys made on the control host are in the trace.
    set_key_source(&zdt, "control");
    let control = zdt.fleet.dir().join("control-keys.trace");
    zdt.trace = Some(control.clone());
    zdt.certroll(&["apply", "--rotate", "--yes"])
        .success("rotation with control-made keys");
    let keys = key_lines(&zdt);
    let found = leaked(&control, &keys);
    assert!(
        found.iter().any(|f| f.contains("PRIVATE KEY")),
        "the check cannot see a key sent to a node"
    );
    for node in zdt.topo.names() {
        assert!(
            found
                .iter()
                .any(|f| f.starts_with(&format!("key of {node}:"))),
            "the check did not find the key sent to {node}: {found:?}"
        );
    }
    zdt.peers.stop();
}
