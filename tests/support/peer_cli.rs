//! Helpers for the `certroll-peer` tests: CAs and leaves made with rcgen, per-node file
//! sets on disk, a handle on a running peer process (stopped and reaped on drop), the CLI
//! commands, and a bare rustls client that reports which leaf a server presents.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_certroll-peer");
/// Generous: the tests share a small machine with other builds.
const DEADLINE: Duration = Duration::from_secs(20);

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A CA: its self-signed root and the means to sign leaves.
pub struct Ca {
    pub pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, both PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    der: Vec<u8>,
}

impl Leaf {
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}

impl Ca {
    pub fn new(common_name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca {
            pem: issuer.pem(),
            issuer,
        }
    }

    /// A leaf usable as TLS server (for `dns_names`) and as TLS client.
    pub fn leaf(&self, common_name: &str, dns_names: &[&str]) -> Leaf {
        let names: Vec<String> = dns_names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// A temporary directory holding every node of one test.
pub struct Tmp {
    pub dir: tempfile::TempDir,
}

impl Tmp {
    pub fn new() -> Tmp {
        Tmp {
            dir: tempfile::Builder::new().prefix("crp").tempdir().unwrap(),
        }
    }

    /// Paths for node `name`, with nothing written yet.
    pub fn missing_files(&self, name: &str) -> Files {
        let dir = self.dir.path().join(format!("{name}-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        Files {
            bundle: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    /// Files for node `name`: a bundle of `anchors` and `leaf`.
    pub fn files(&self, name: &str, anchors: &[&Ca], leaf: &Leaf) -> Files {
        let files = self.missing_files(name);
        files.write_bundle(anchors);
        files.write_leaf(leaf);
        files
    }
}

/// One node's trust bundle, certificate and key.
pub struct Files {
    pub bundle: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Files {
    pub fn write_bundle(&self, anchors: &[&Ca]) {
        let pem: String = anchors.iter().map(|ca| ca.pem.as_str()).collect();
        std::fs::write(&self.bundle, pem).unwrap();
    }

    pub fn write_leaf(&self, leaf: &Leaf) {
        std::fs::write(&self.cert, &leaf.cert_pem).unwrap();
        std::fs::write(&self.key, &leaf.key_pem).unwrap();
    }
}

/// What a CLI command printed and returned.
#[derive(Debug)]
pub struct CliOut {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run_cli(args: &[&str]) -> CliOut {
    let out = Command::new(BIN).args(args).output().unwrap();
    CliOut {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn read_stats_file(state_dir: &Path) -> Value {
    let text = std::fs::read_to_string(state_dir.join("stats.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A running `certroll-peer run` process.
pub struct Peer {
    pub state_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Peer {
    /// Starts a peer for node `name` and waits until its control socket answers.
    pub fn start(tmp: &Tmp, name: &str, files: &Files, extra: &[&str]) -> Peer {
        let state_dir = tmp.dir.path().join(name);
        let log = tmp.dir.path().join(format!("{name}.log"));
        let child = Command::new(BIN)
            .arg("run")
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("--bundle")
            .arg(&files.bundle)
            .arg("--cert")
            .arg(&files.cert)
            .arg("--key")
            .arg(&files.key)
            .args(["--interval-ms", "10"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let peer = Peer {
            state_dir,
            log,
            child: Some(child),
        };
        peer.wait_for("the peer to start", |_| true);
        peer
    }

    fn dir_arg(&self) -> &str {
        self.state_dir.to_str().unwrap()
    }

    /// Runs `certroll-peer <args[0]> --state-dir <dir> <args[1..]>`.
    pub fn cli(&self, args: &[&str]) -> CliOut {
        let mut all = vec![args[0], "--state-dir", self.dir_arg()];
        all.extend_from_slice(&args[1..]);
        run_cli(&all)
    }

    pub fn stats(&self) -> Value {
        let out = self.cli(&["stats", "--json"]);
        assert_eq!(
            out.code,
            0,
            "stats failed: {out:?}\nlog:\n{}",
            self.log_text()
        );
        serde_json::from_str(&out.stdout).unwrap()
    }

    /// Polls the stats until `pred` holds; panics with the last stats and the log otherwise.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < DEADLINE {
            let out = self.cli(&["stats", "--json"]);
            if out.code == 0 && self.state_dir.join("control.sock").exists() {
                last = serde_json::from_str(&out.stdout).unwrap();
                if pred(&last) {
                    return last;
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        panic!(
            "timed out waiting for {what}; last stats: {last:#}\nlog:\n{}",
            self.log_text()
        );
    }

    /// `host:port` the peer's TLS server listens on.
    pub fn addr(&self) -> String {
        let s = self.stats();
        s["server"]["listen"]
            .as_str()
            .expect("peer has no --listen")
            .to_string()
    }

    /// A `--target` argument pointing at this peer's server.
    pub fn target(&self, name: &str) -> String {
        format!("{name}={}@localhost", self.addr())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops the peer through its control socket and waits for the process to exit 0.
    pub fn stop(mut self) {
        let out = self.cli(&["stop"]);
        assert_eq!(
            out.code,
            0,
            "stop failed: {out:?}\nlog:\n{}",
            self.log_text()
        );
        let mut child = self.child.take().unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "peer exited with {status}\nlog:\n{}",
            self.log_text()
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Handshakes with the TLS server at `addr` trusting `ca_pem`, presenting `client` if given,
/// and reads the server's greeting. Returns the DER of the leaf the server presented.
pub fn raw_handshake(addr: &str, ca_pem: &str, client: Option<&Leaf>) -> Result<Vec<u8>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(leaf) => {
            let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let mut greeting = Vec::new();
    tls.read_to_end(&mut greeting).map_err(|e| e.to_string())?;
    if greeting != b"certroll-peer ok\n" {
        return Err(format!("unexpected greeting {greeting:?}"));
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no server certificate")?;
    Ok(leaf.to_vec())
}
