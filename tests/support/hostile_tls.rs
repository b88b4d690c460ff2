//! TLS servers on 127.0.0.1, honest and hostile, for the tests of certroll's built-in TLS
//! confirm (`tls_address`) and of `verify --live`, with the local-node inventory they run
//! against.
//!
//! A server reads the node's `cert.pem` and `key.pem` again for every connection, so it
//! follows what `apply` writes like a server that reloads at once. The hostile ones show
//! the node's real certificate without proving its key (a garbage handshake signature, or
//! a signature by another key: the new certificate with the old key), require a client
//! certificate and refuse whatever is offered, or drip one byte every few seconds. Any of
//! them may speak a protocol before TLS first ([`Preamble`], for the node's `starttls`).
//! The tests drive the binary on the inventory of [`write_inventory`] with [`certroll`] and
//! read what its journal says of node db.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, ServerConnection,
    SignatureAlgorithm, SignatureScheme, SupportedProtocolVersion,
};

use super::run::{self, Run};
pub use super::starttls_server::Preamble;

/// How long a server accepts connections at most (a test that forgets it does not hang).
const LIFETIME: Duration = Duration::from_secs(300);
/// At most this many bytes from a dripping server per connection.
const DRIP_BYTES: usize = 60;

/// The TLS version a server speaks (one only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    V12,
    V13,
}

impl Tls {
    fn version(self) -> &'static SupportedProtocolVersion {
        match self {
            Tls::V12 => &rustls::version::TLS12,
            Tls::V13 => &rustls::version::TLS13,
        }
    }
}

/// What a server does.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Serves the node's certificate, signed with the node's key.
    Honest,
    /// Serves the node's certificate; its handshake signature is garbage (the real one
    /// with bytes flipped).
    GarbageSignature,
    /// Serves the node's certificate, signs with this key (PEM): e.g. the key the node had
    /// before a leaf swap.
    SignsWith(Vec<u8>),
    /// Honest, but requires a client certificate, names the CAs of the node's trust bundle
    /// in its CertificateRequest and refuses every certificate offered.
    RefusesEveryClient,
    /// Sends one byte (of a TLS record that never ends) every `Duration`, whatever the
    /// client says.
    Drip(Duration),
    /// Honest; requires a client certificate with a CertificateRequest that names no CA
    /// (as Redis, MariaDB and mosquitto do) and accepts exactly those that chain to the
    /// node's trust bundle as it is on disk at each connection.
    NamesNoCa,
    /// As [`Behaviour::NamesNoCa`], but trusting this bundle (PEM) whatever the disk says:
    /// a server never reloaded.
    NamesNoCaTrusting(Vec<u8>),
}

/// A server running in the test process until dropped.
pub struct TlsServer {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TlsServer {
    /// A TLS 1.3 server for `node_dir` that drips one byte every 2 s (at most 60 bytes).
    pub fn dripping(node_dir: &Path) -> TlsServer {
        TlsServer::start(node_dir, Tls::V13, Behaviour::Drip(Duration::from_secs(2)))
    }

    /// Serves the files of the node directory `node_dir` (`cert.pem`, `key.pem`,
    /// `ca.pem`) over `tls` with `behaviour`, TLS from the first byte.
    pub fn start(node_dir: &Path, tls: Tls, behaviour: Behaviour) -> TlsServer {
        TlsServer::with_preamble(node_dir, tls, behaviour, Preamble::None)
    }

    /// Like [`TlsServer::start`], with `preamble` spoken before TLS.
    pub fn with_preamble(
        node_dir: &Path,
        tls: Tls,
        behaviour: Behaviour,
        preamble: Preamble,
    ) -> TlsServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        let files = Files(node_dir.to_path_buf());
        let (flag, count) = (stop.clone(), connections.clone());
        let thread = thread::spawn(move || {
            let end = Instant::now() + LIFETIME;
            while !flag.load(Ordering::SeqCst) && Instant::now() < end {
                let Ok((sock, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(5));
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let (files, behaviour, flag) = (files.clone(), behaviour.clone(), flag.clone());
                let preamble = preamble.clone();
                thread::spawn(move || serve(sock, &files, tls, &behaviour, &preamble, &flag));
            }
        });
        TlsServer {
            port,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The node directory whose files a server serves.
#[derive(Debug, Clone)]
struct Files(PathBuf);

impl Files {
    /// The file, or `None` while it does not exist yet (before the bootstrap wrote it).
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.0.join(name)).ok()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn signing_key(pem: &[u8]) -> Arc<dyn SigningKey> {
    let key = PrivateKeyDer::from_pem_slice(pem).expect("a PEM private key");
    rustls::crypto::ring::sign::any_supported_type(&key).expect("a supported key")
}

fn serve(
    mut sock: TcpStream,
    files: &Files,
    tls: Tls,
    behaviour: &Behaviour,
    preamble: &Preamble,
    stop: &AtomicBool,
) {
    let _ = sock.set_nonblocking(false);
    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
    if !super::starttls_server::serve(&mut sock, preamble, stop) {
        return;
    }
    if let Behaviour::Drip(every) = behaviour {
        // A handshake record header announcing 16 KiB, then its body, one byte at a time.
        let bytes = [0x16u8, 0x03, 0x03, 0x40, 0x00]
            .into_iter()
            .chain(std::iter::repeat(0));
        for byte in bytes.take(DRIP_BYTES) {
            if stop.load(Ordering::SeqCst) || sock.write_all(&[byte]).is_err() {
                return;
            }
            thread::sleep(*every);
        }
        return;
    }
    // Without its files yet, the server closes the connection (certroll tries again).
    let Some(config) = config(files, tls, behaviour) else {
        return;
    };
    let Ok(mut conn) = ServerConnection::new(config) else {
        return;
    };
    for _ in 0..32 {
        if !conn.is_handshaking() || conn.complete_io(&mut sock).is_err() {
            break;
        }
    }
    // Let the client finish reading (and close) before the socket goes.
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
}

fn config(files: &Files, tls: Tls, behaviour: &Behaviour) -> Option<Arc<ServerConfig>> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[tls.version()])
        .expect("protocol version");
    let builder = match behaviour {
        Behaviour::RefusesEveryClient => {
            let mut roots = RootCertStore::empty();
            for der in CertificateDer::pem_slice_iter(&files.read("ca.pem")?) {
                roots
                    .add(der.expect("a bundle certificate"))
                    .expect("an anchor");
            }
            let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(Arc::new(RefusingClients(inner)))
        }
        Behaviour::NamesNoCa | Behaviour::NamesNoCaTrusting(_) => {
            let bundle = match behaviour {
                Behaviour::NamesNoCaTrusting(pem) => pem.clone(),
                _ => files.read("ca.pem")?,
            };
            let mut roots = RootCertStore::empty();
            for der in CertificateDer::pem_slice_iter(&bundle) {
                roots
                    .add(der.expect("a bundle certificate"))
                    .expect("an anchor");
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .clear_root_hint_subjects()
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&files.read("cert.pem")?)
            .map(|c| c.expect("a certificate"))
            .collect();
    let key = match behaviour {
        Behaviour::SignsWith(pem) => signing_key(pem),
        Behaviour::GarbageSignature => Arc::new(Garbage(signing_key(&files.read("key.pem")?))),
        _ => signing_key(&files.read("key.pem")?),
    };
    // CertifiedKey::new does not check that the key is the certificate's: that is the point.
    let certified = Arc::new(CertifiedKey::new(chain, key));
    Some(Arc::new(
        builder.with_cert_resolver(Arc::new(Fixed(certified))),
    ))
}

/// Resolves every ClientHello to one certificate and key, matching or not.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A key whose signatures are the real ones with bytes flipped.
#[derive(Debug)]
struct Garbage(Arc<dyn SigningKey>);

impl SigningKey for Garbage {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let signer = self.0.choose_scheme(offered)?;
        Some(Box::new(GarbageSigner(signer)))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.0.algorithm()
    }
}

#[derive(Debug)]
struct GarbageSigner(Box<dyn Signer>);

impl Signer for GarbageSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let mut signature = self.0.sign(message)?;
        let n = signature.len();
        for byte in &mut signature[n.saturating_sub(8)..] {
            *byte ^= 0x5a;
        }
        Ok(signature)
    }

    fn scheme(&self) -> SignatureScheme {
        self.0.scheme()
    }
}

/// Asks for a client certificate from the bundle's CAs (mandatory) and refuses any.
#[derive(Debug)]
struct RefusingClients(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for RefusingClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Writes `dir/certroll.toml`: CA `internal`, local nodes `app` (client) and `db` (server,
/// `dns_names = ["db.test"]`), files under `nodes/<node>/`, no `confirm` command, and for
/// db `tls_address = "127.0.0.1:<port>"` when `db_port` is given.
pub fn write_inventory(dir: &Path, db_port: Option<u16>, confirm_timeout: &str) {
    write_inventory_starttls(dir, db_port, "none", confirm_timeout);
}

/// [`write_inventory`] with db's `starttls`.
pub fn write_inventory_starttls(
    dir: &Path,
    db_port: Option<u16>,
    starttls: &str,
    confirm_timeout: &str,
) {
    let tls = db_port
        .map(|p| format!("tls_address = \"127.0.0.1:{p}\"\nstarttls = \"{starttls}\"\n"))
        .unwrap_or_default();
    write_inventory_text(dir, "", &tls, confirm_timeout, "");
}

/// The inventory of [`write_inventory`] with a mutual link (db verifies app's client
/// certificate, so db's bundle has trust steps), `ca_keys` in `[ca.internal]` (e.g. a
/// `key_store`) and `db_more` in `[nodes.db]` (e.g. a `confirm` command).
pub fn write_mutual_inventory(
    dir: &Path,
    db_port: Option<u16>,
    confirm_timeout: &str,
    ca_keys: &str,
    db_more: &str,
) {
    let tls = db_port
        .map(|p| format!("tls_address = \"127.0.0.1:{p}\"\n"))
        .unwrap_or_default();
    write_inventory_text(
        dir,
        ca_keys,
        &format!("{tls}{db_more}\n"),
        confirm_timeout,
        "mutual = true\n",
    );
}

/// The inventory of the servers' tests: `ca_keys` in `[ca.internal]`, `db` in
/// `[nodes.db]`, `link` in the app → db link.
fn write_inventory_text(dir: &Path, ca_keys: &str, db: &str, confirm_timeout: &str, link: &str) {
    let text = format!(
        "[ca.internal]\nsubject = \"CN=Hostile TLS CA\"\n{ca_keys}\n\n\
         [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\n\
         cert = \"nodes/{{node}}/cert.pem\"\nkey = \"nodes/{{node}}/key.pem\"\n\
         reload = 'true'\nconfirm_timeout = \"{confirm_timeout}\"\n\n\
         [nodes.app]\ndns_names = [\"app.test\"]\n[nodes.db]\ndns_names = [\"db.test\"]\n{db}\n\
         [[links]]\nclient = \"app\"\nserver = \"db\"\n{link}"
    );
    std::fs::write(dir.join("certroll.toml"), text).expect("write the inventory");
}

/// The directory of node `node`'s files under `dir`.
pub fn node_dir(dir: &Path, node: &str) -> PathBuf {
    dir.join("nodes").join(node)
}

/// Runs certroll on the inventory in `dir`, from `dir`.
pub fn certroll(dir: &Path, args: &[&str]) -> Run {
    run::certroll(&dir.join("certroll.toml"), args, |cmd| {
        cmd.current_dir(dir).env_remove("CERTROLL_INVENTORY");
    })
}

/// Bootstraps app and db with no `tls_address`.
pub fn bootstrapped() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write_inventory(dir.path(), None, "5s");
    certroll(dir.path(), &["apply", "--yes"]).expect_code(0);
    dir
}

/// The records of the journal in `dir`.
pub fn journal(dir: &Path) -> Vec<serde_json::Value> {
    let path = dir.join(".certroll").join("journal.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a journal line"))
        .collect()
}

/// The journal's `error` of db's failed step.
pub fn db_failure(dir: &Path, run: &Run) -> String {
    journal(dir)
        .iter()
        .find(|r| r["record"] == "step-failed" && r["node"] == "db")
        .and_then(|r| r["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no failed step of db in the journal\n{run}"))
}

/// The proofs journaled with db's done steps of the last run.
pub fn db_proofs(dir: &Path) -> Vec<String> {
    node_proofs(dir, "db")
}

/// The proofs journaled with `node`'s done steps of the last run.
pub fn node_proofs(dir: &Path, node: &str) -> Vec<String> {
    let records = journal(dir);
    let last_run = records
        .iter()
        .rev()
        .find(|r| r["record"] == "run-start")
        .map(|r| r["run"].clone())
        .expect("a run in the journal");
    let of_last_run = |r: &&serde_json::Value| r["run"] == last_run;
    let db_steps: Vec<&serde_json::Value> = records
        .iter()
        .filter(of_last_run)
        .filter(|r| r["record"] == "step-start" && r["node"] == node)
        .map(|r| &r["step"])
        .collect();
    records
        .iter()
        .filter(of_last_run)
        .filter(|r| r["record"] == "step-done" && db_steps.contains(&&r["step"]))
        .map(|r| r["proof"].as_str().unwrap_or("<none>").to_string())
        .collect()
}
