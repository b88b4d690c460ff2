//! Taking over a fleet certroll did not build (docs/takeover.md): every node starts with a
//! leaf, key and bundle made by `openssl req` / `openssl x509` under the operator's own CA,
//! with partner CAs in the bundles, and the peers handshake on those files throughout.
//!
//! - public-only import of the operator's root, then `apply --rotate` onto a certroll CA;
//! - an intermediate under an offline root, imported with its key, rotated to the next
//!   intermediate of the same root (`ca import --next`): leaf swaps only.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use certroll::pki::{parse_pem_certs, CaStore};

use crate::checks::openssl_verify;
use crate::harness::{serial, Zdt, GROWTH};
use crate::support::fleet::Fleet;
use crate::support::topology::{Topology, CA_NAME, TLS_DIR};

const EXTENSIONS: &str = "\
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[inter]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:${ENV::SAN}
";

/// The operator's PKI, made with the openssl command line in `dir`.
struct Operator {
    dir: PathBuf,
    serial: u32,
}

/// A certificate and its key, as files.
#[derive(Clone)]
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Operator {
    fn new(dir: PathBuf) -> Operator {
        fs::create_dir_all(&dir).expect("create operator dir");
        fs::write(dir.join("ext.cnf"), EXTENSIONS).expect("write openssl extensions");
        Operator {
            dir,
            serial: 0x1000,
        }
    }

    fn openssl(&self, args: &[&str], san: &str) {
        let out = Command::new("openssl")
            .args(args)
            .env("SAN", san)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("run openssl ({e}): install it: apt-get install -y openssl")
            });
        assert!(
            out.status.success(),
            "openssl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn paths(&self, name: &str) -> Pair {
        Pair {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        }
    }

    /// A self-signed root (`openssl req -x509`).
    fn root(&mut self, name: &str, cn: &str) -> Pair {
        let p = self.paths(name);
        let subj = format!("/CN={cn}/O=Operator");
        let (cert, key) = (s(&p.cert), s(&p.key));
        self.openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &cert,
                "-days",
                "3650",
                "-subj",
                &subj,
                "-extensions",
                "ca",
                "-config",
                "ext.cnf",
            ],
            "unused",
        );
        p
    }

    /// A CSR signed by `ca` (`openssl req -new` + `openssl x509 -req`).
    fn signed(&mut self, name: &str, cn: &str, ca: &Pair, ext: &str, san: &str) -> Pair {
        let p = self.paths(name);
        let csr = self.dir.join(format!("{name}.csr"));
        let subj = format!("/CN={cn}");
        let (cert, key, csr) = (s(&p.cert), s(&p.key), s(&csr));
        self.openssl(
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &subj,
                "-config",
                "ext.cnf",
            ],
            san,
        );
        self.serial += 1;
        let serial = self.serial.to_string();
        self.openssl(
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &s(&ca.cert),
                "-CAkey",
                &s(&ca.key),
                "-set_serial",
                &serial,
                "-days",
                "400",
                "-extfile",
                "ext.cnf",
                "-extensions",
                ext,
                "-out",
                &cert,
            ],
            san,
        );
        p
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// DER of every certificate of a PEM file.
fn ders(p: &Path) -> Vec<Vec<u8>> {
    parse_pem_certs(read(p).as_bytes())
        .expect("certificates parse")
        .into_iter()
        .map(|c| c.der)
        .collect()
}

/// Writes a node's files as the operator's tooling would: leaf (+ chain), key 0600, bundle.
fn install(fleet: &Fleet, node: &str, leaf: &Pair, chain: &[&Path], bundle: &[&Path]) {
    use std::os::unix::fs::PermissionsExt;
    let tls = fleet.node(node).dir.join(TLS_DIR);
    fs::create_dir_all(&tls).expect("create tls dir");
    let cert: String = std::iter::once(leaf.cert.as_path())
        .chain(chain.iter().copied())
        .map(read)
        .collect();
    fs::write(tls.join("cert.pem"), cert).expect("write cert");
    fs::write(tls.join("key.pem"), read(&leaf.key)).expect("write key");
    fs::set_permissions(tls.join("key.pem"), fs::Permissions::from_mode(0o600)).expect("chmod");
    let b: String = bundle.iter().map(|p| read(p)).collect();
    fs::write(tls.join("ca.pem"), b).expect("write bundle");
}

fn topology() -> Topology {
    Topology::new()
        .one_way(&["lb1"], &["app1"])
        .mutual(&["app1"], &["db1"])
}

fn current_der(zdt: &Zdt) -> (Vec<u8>, Option<String>) {
    let inv = certroll::inventory::load(&zdt.inventory).expect("load the inventory");
    let spec = inv.cas.iter().find(|c| c.name == CA_NAME).expect("test CA");
    let cur = CaStore::new(&zdt.state_dir)
        .current(spec)
        .expect("read the store")
        .expect("a current generation");
    (cur.anchor_der(), cur.anchor_pem.clone())
}

#[test]
fn a_fleet_of_another_ca_is_taken_over_public_only_without_a_failed_handshake() {
    let _one = serial();
    let mut made = None;
    let mut zdt = Zdt::with_files(topology(), |fleet, topo| {
        let mut op = Operator::new(fleet.dir().join("operator"));
        let legacy = op.root("legacy", "Legacy Corp CA");
        let partner = op.root("partner", "Partner CA");
        let second = op.root("second", "Second PKI Root");
        for node in topo.names() {
            let dns = Topology::dns_name(node);
            let leaf = op.signed(node, node, &legacy, "leaf", &dns);
            install(
                fleet,
                node,
                &leaf,
                &[],
                &[&partner.cert, &legacy.cert, &second.cert],
            );
        }
        made = Some((legacy, partner, second));
    });
    let (legacy, partner, second) = made.expect("the operator's PKI");
    // A bootstrap over those files would break the links: refused, nothing written.
    let boot = zdt.certroll(&["apply", "--yes"]);
    assert_eq!(boot.code, Some(77), "{}{}", boot.stdout, boot.stderr);
    for needle in ["refusing to bootstrap", "lb1", "app1", "db1", "ca import"] {
        assert!(boot.stderr.contains(needle), "{needle}: {}", boot.stderr);
    }
    assert!(
        !zdt.state_dir.join("ca").exists(),
        "a refused bootstrap created a CA"
    );

    let import = zdt
        .certroll(&["ca", "import", CA_NAME, "--cert", &s(&legacy.cert)])
        .success("ca import (public-only)");
    assert!(import.stdout.contains("public-only"), "{}", import.stdout);

    // Routine runs and cross-signed chains refuse, saying why and what to do.
    let routine = zdt.certroll(&["apply", "--yes"]);
    assert_eq!(routine.code, Some(77), "{}", routine.stderr);
    assert!(
        routine.stderr.contains("public-only") && routine.stderr.contains("apply --rotate"),
        "{}",
        routine.stderr
    );
    let crossed = zdt.certroll(&["plan", "--rotate", "--chain", "cross-signed"]);
    assert_eq!(crossed.code, Some(64), "{}", crossed.stderr);
    assert!(crossed.stderr.contains("public-only"), "{}", crossed.stderr);

    let plan = zdt
        .certroll(&["plan", "--rotate", "--check"])
        .success("plan --rotate --check");
    assert!(
        plan.stdout
            .contains("serve a leaf of the current generation")
            && plan.stdout.contains("foreign anchors"),
        "{}",
        plan.stdout
    );

    let run = zdt.observed(
        &["apply", "--rotate", "--yes", "--format", "json"],
        "takeover",
    );
    if run.code != Some(0) {
        eprintln!("peer logs:\n{}", zdt.peers.logs());
    }
    run.assert_zero_downtime("takeover of a public-only CA");
    crate::assert_gates_respected(&zdt.topo, &run.output);
    let after = zdt
        .peers
        .wait_for_growth(&run.after, GROWTH, "traffic after the takeover");
    zdt.assert_no_failures(&after, "after the takeover");
    zdt.peers.stop();

    // Every bundle: the partner CAs where they were, the legacy root replaced by certroll's.
    let (new_anchor, _) = current_der(&zdt);
    let expected = vec![
        ders(&partner.cert)[0].clone(),
        new_anchor,
        ders(&second.cert)[0].clone(),
    ];
    for node in zdt.topo.names() {
        let tls = zdt.fleet.node(node).dir.join(TLS_DIR);
        assert_eq!(ders(&tls.join("ca.pem")), expected, "bundle of {node}");
        let (ok, out) = openssl_verify(
            &legacy.cert,
            &tls.join("cert.pem"),
            &Topology::dns_name(node),
        );
        assert!(!ok, "leaf of {node} still chains to the legacy CA: {out}");
    }
    let verify = zdt
        .certroll(&["verify"])
        .success("verify after the takeover");
    assert!(
        verify.stdout.contains("foreign anchor"),
        "{}",
        verify.stdout
    );
    eprintln!(
        "takeover: {} successful handshakes during the run, 0 failed",
        run.handshakes()
    );
}

#[test]
fn an_intermediate_under_an_offline_root_rotates_with_leaf_swaps_only() {
    let _one = serial();
    let mut made = None;
    let mut zdt = Zdt::with_files(topology(), |fleet, topo| {
        let mut op = Operator::new(fleet.dir().join("operator"));
        let root = op.root("root", "Offline Root");
        let i1 = op.signed("issuing1", "Issuing CA 1", &root, "inter", "unused");
        for node in topo.names() {
            let dns = Topology::dns_name(node);
            let leaf = op.signed(node, node, &i1, "leaf", &dns);
            install(fleet, node, &leaf, &[&i1.cert], &[&root.cert]);
        }
        let i2 = op.signed("issuing2", "Issuing CA 2", &root, "inter", "unused");
        made = Some((root, i1, i2));
    });
    let (root, i1, i2) = made.expect("the operator's PKI");

    zdt.certroll(&[
        "ca",
        "import",
        CA_NAME,
        "--cert",
        &s(&i1.cert),
        "--key",
        &s(&i1.key),
        "--anchor",
        &s(&root.cert),
    ])
    .success("ca import of the issuing intermediate");
    zdt.certroll(&[
        "ca",
        "import",
        CA_NAME,
        "--next",
        "--cert",
        &s(&i2.cert),
        "--key",
        &s(&i2.key),
        "--anchor",
        &s(&root.cert),
    ])
    .success("ca import --next of the new intermediate");

    let plan = zdt
        .certroll(&["plan", "--rotate", "--check"])
        .success("plan --rotate --check");
    assert!(plan.stdout.contains("leaf swaps only"), "{}", plan.stdout);
    let json = zdt
        .certroll(&["plan", "--rotate", "--format", "json"])
        .success("plan --rotate --format json");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan JSON");
    let steps = doc["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3, "{doc:#}");
    for step in steps {
        assert_eq!(step["actions"], serde_json::json!(["leaf-swap"]), "{doc:#}");
        assert_eq!(step["after"], serde_json::json!([]), "{doc:#}");
    }

    let run = zdt.observed(
        &["apply", "--rotate", "--yes", "--format", "json"],
        "intermediate",
    );
    run.assert_zero_downtime("rotation of the intermediate");
    assert!(
        !run.output.contains("trust-add") && !run.output.contains("trust-prune"),
        "{}",
        run.output
    );
    let after = zdt
        .peers
        .wait_for_growth(&run.after, GROWTH, "traffic after the rotation");
    zdt.assert_no_failures(&after, "after the intermediate rotation");
    zdt.peers.stop();

    let (anchor, _) = current_der(&zdt);
    assert_eq!(
        anchor,
        ders(&root.cert)[0],
        "the anchor stays the offline root"
    );
    let i2_der = ders(&i2.cert)[0].clone();
    for node in zdt.topo.names() {
        let tls = zdt.fleet.node(node).dir.join(TLS_DIR);
        assert_eq!(
            ders(&tls.join("ca.pem")),
            ders(&root.cert),
            "bundle of {node}"
        );
        let chain = ders(&tls.join("cert.pem"));
        assert_eq!(chain.len(), 2, "{node} serves [leaf, intermediate]");
        assert_eq!(chain[1], i2_der, "{node} serves the new intermediate");
        let (ok, out) =
            openssl_verify(&root.cert, &tls.join("cert.pem"), &Topology::dns_name(node));
        assert!(
            ok,
            "leaf of {node} does not chain to the offline root: {out}"
        );
    }
    zdt.certroll(&["verify"])
        .success("verify after the rotation");
}
