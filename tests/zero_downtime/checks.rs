//! The end state of a rotation, read from the nodes' real files: every leaf chains only to
//! the new generation (checked with `openssl verify`, the stricter path builder), no bundle
//! holds the old root, the cross certificate is gone, and every peer serves those files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use certroll::pki::{parse_pem_certs, CaStore};
use sha2::{Digest, Sha256};

use crate::harness::Zdt;
use crate::support::topology::{Topology, CA_NAME, TLS_DIR};
use crate::support::traffic::Snapshot;

/// The CA generations of a finished rotation, as PEM files on the control host.
pub struct Generations {
    pub old_pem: PathBuf,
    pub new_pem: PathBuf,
    old_der: Vec<u8>,
    new_der: Vec<u8>,
}

impl Generations {
    /// Reads the archived `old` and the current `new` generation from the CA store.
    pub fn of(zdt: &Zdt, old: u32, new: u32) -> Generations {
        let inv = certroll::inventory::load(&zdt.inventory).expect("load the inventory");
        let spec = inv
            .cas
            .iter()
            .find(|c| c.name == CA_NAME)
            .expect("the inventory has the test CA");
        let store = CaStore::new(&zdt.state_dir);
        let current = store
            .current(spec)
            .expect("read CA store")
            .expect("a current CA");
        assert_eq!(current.generation, new, "current CA generation");
        assert!(
            store.next(spec).expect("read CA store").is_none(),
            "no rotation may be in progress"
        );
        let archived = store.archived(spec).expect("read archived CAs");
        let previous = archived
            .iter()
            .find(|c| c.generation == old)
            .unwrap_or_else(|| panic!("G{old} is archived, found {archived:?}"));
        let dir = zdt.fleet.dir().join("generations");
        fs::create_dir_all(&dir).expect("create dir");
        let old_pem = dir.join(format!("g{old}.pem"));
        let new_pem = dir.join(format!("g{new}.pem"));
        fs::write(&old_pem, &previous.cert_pem).expect("write old root");
        fs::write(&new_pem, &current.cert_pem).expect("write new root");
        Generations {
            old_pem,
            new_pem,
            old_der: previous.cert_der.clone(),
            new_der: current.cert_der.clone(),
        }
    }
}

/// `openssl verify` of `leaf` (first certificate of `cert_file`, the others untrusted)
/// against `anchor` only, for server name `dns`. Returns whether it passed and its output.
pub fn openssl_verify(anchor: &Path, cert_file: &Path, dns: &str) -> (bool, String) {
    let text = fs::read_to_string(cert_file)
        .unwrap_or_else(|e| panic!("read {}: {e}", cert_file.display()));
    let blocks: Vec<&str> = text
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|b| b.contains("BEGIN CERTIFICATE"))
        .collect();
    assert!(
        !blocks.is_empty(),
        "{} holds no certificate",
        cert_file.display()
    );
    let leaf = cert_file.with_extension("leaf.pem");
    let rest = cert_file.with_extension("chain.pem");
    fs::write(&leaf, blocks[0]).expect("write leaf");
    fs::write(&rest, blocks[1..].concat()).expect("write chain");
    let mut cmd = Command::new("openssl");
    cmd.arg("verify").arg("-CAfile").arg(anchor);
    if blocks.len() > 1 {
        cmd.arg("-untrusted").arg(&rest);
    }
    cmd.args(["-purpose", "sslserver", "-verify_hostname", dns])
        .arg(&leaf);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run openssl ({e}): install it: apt-get install -y openssl"));
    let _ = fs::remove_file(&leaf);
    let _ = fs::remove_file(&rest);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Panics unless every node of `zdt` holds only the new generation: its leaf verifies with
/// the new root alone and not with the old root alone, its bundle is exactly the new root,
/// and no cross certificate is left.
pub fn assert_all_on_new_generation(zdt: &Zdt, gens: &Generations) {
    for node in zdt.topo.names() {
        let tls = zdt.fleet.node(node).dir.join(TLS_DIR);
        let cert = tls.join("cert.pem");
        let dns = Topology::dns_name(node);
        let (ok, out) = openssl_verify(&gens.new_pem, &cert, &dns);
        assert!(
            ok,
            "leaf of {node} does not verify with the new root only:\n{out}"
        );
        let (ok, out) = openssl_verify(&gens.old_pem, &cert, &dns);
        assert!(
            !ok,
            "leaf of {node} still verifies with the old root:\n{out}"
        );

        let bundle = fs::read(tls.join("ca.pem")).expect("read bundle");
        let roots = parse_pem_certs(&bundle).expect("bundle parses");
        assert!(
            roots.iter().all(|r| r.der != gens.old_der),
            "bundle of {node} still holds the old root"
        );
        assert!(
            roots.len() == 1 && roots[0].der == gens.new_der,
            "bundle of {node} must be exactly the new root, holds {} certificates",
            roots.len()
        );
        assert!(
            !tls.join("cross.pem").exists(),
            "the cross certificate of {node} must be removed after the prune"
        );
    }
}

/// Panics unless every peer serves exactly the files now on its node (it reloaded after
/// the last change) and reloaded at least `reloads` times since it started.
pub fn assert_peers_serve_files_on_disk(zdt: &Zdt, snap: &Snapshot, reloads: u64) {
    for node in zdt.topo.names() {
        let stats = &snap.nodes[node];
        let tls = zdt.fleet.node(node).dir.join(TLS_DIR);
        for (field, file) in [
            ("bundle_sha256", "ca.pem"),
            ("cert_sha256", "cert.pem"),
            ("key_sha256", "key.pem"),
        ] {
            let on_disk = hex::encode(Sha256::digest(fs::read(tls.join(file)).expect("read")));
            assert_eq!(
                stats["loaded"][field].as_str(),
                Some(on_disk.as_str()),
                "peer {node} does not serve the {file} on disk: {stats:#}"
            );
        }
        let ok = stats["reloads"]["ok"].as_u64().unwrap_or(0);
        assert!(
            ok >= reloads,
            "peer {node} loaded its files {ok} times, expected at least {reloads}: {stats:#}"
        );
    }
}
