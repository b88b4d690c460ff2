//! The TLS confirm against an in-process rustls server on 127.0.0.1, reached through the
//! local transport: served chains, CA names of a CertificateRequest, a slow reload,
//! a server never reloaded, PostgreSQL's SSLRequest. The server and the fixtures serve
//! the tests of [`super::trust`] too.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use time::OffsetDateTime;

use super::*;
use crate::inventory::{CaSpec, InventoryBuilder, Starttls};
use crate::pki::{issue_leaf, new_ca, CaCert, Leaf};
use crate::transport::local::LocalTransport;

pub(super) fn spec() -> CaSpec {
    CaSpec::new("internal", "CN=Probe Test CA")
}

pub(super) struct Pki {
    pub(super) g1: CaCert,
    pub(super) g2: CaCert,
    pub(super) old_leaf: Leaf,
    pub(super) new_leaf: Leaf,
}

pub(super) fn pki() -> Pki {
    let (s, now) = (spec(), OffsetDateTime::now_utc());
    let g1 = new_ca(&s, 1, now).unwrap();
    let g2 = new_ca(&s, 2, now).unwrap();
    let sans = vec!["db1.internal".to_string()];
    let old_leaf = issue_leaf(&s, &g1, "db1", &sans, now).unwrap();
    let new_leaf = issue_leaf(&s, &g2, "db1", &sans, now).unwrap();
    Pki {
        g1,
        g2,
        old_leaf,
        new_leaf,
    }
}

pub(super) fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    pem::parse_many(pem)
        .unwrap()
        .into_iter()
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect()
}

/// A server config serving `leaf`; with `client_cas`, it asks for (optional) client
/// certificates from those CAs.
fn server_config(leaf: &Leaf, client_cas: Option<&[&CaCert]>) -> Arc<ServerConfig> {
    config_with(leaf, client_cas, false)
}

fn config_with(leaf: &Leaf, client_cas: Option<&[&CaCert]>, required: bool) -> Arc<ServerConfig> {
    let key = pem::parse(&leaf.key_pem).unwrap().into_contents();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(key));
    let builder = ServerConfig::builder();
    let builder = match client_cas {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots
                    .add(CertificateDer::from(ca.cert_der.clone()))
                    .unwrap();
            }
            let client_auth = WebPkiClientVerifier::builder(Arc::new(roots));
            let client_auth = if required {
                client_auth
            } else {
                client_auth.allow_unauthenticated()
            };
            let verifier = client_auth.build().unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    Arc::new(
        builder
            .with_single_cert(certs(&leaf.cert_pem), key)
            .unwrap(),
    )
}

/// A TLS server on 127.0.0.1 whose config can be swapped ("reloaded") while it runs.
pub(super) struct Server {
    pub(super) port: u16,
    config: Arc<Mutex<Arc<ServerConfig>>>,
    /// Handshakes the server completed (client certificate accepted, if required).
    completed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub(super) fn start(config: Arc<ServerConfig>, pg_answer: Option<u8>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let config = Arc::new(Mutex::new(config));
        let stop = Arc::new(AtomicBool::new(false));
        let completed = Arc::new(AtomicUsize::new(0));
        let (cfg, flag, done) = (config.clone(), stop.clone(), completed.clone());
        let thread = thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::SeqCst) && Instant::now() < end {
                match listener.accept() {
                    Ok((sock, _)) => {
                        let c = cfg.lock().unwrap().clone();
                        if serve_one(sock, c, pg_answer) {
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            port,
            config,
            completed,
            stop,
            thread: Some(thread),
        }
    }

    pub(super) fn reload(&self, config: Arc<ServerConfig>) {
        *self.config.lock().unwrap() = config;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection; true when the handshake completed on the server's side.
fn serve_one(mut sock: TcpStream, config: Arc<ServerConfig>, pg_answer: Option<u8>) -> bool {
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if let Some(answer) = pg_answer {
        let mut req = [0u8; 8];
        if sock.read_exact(&mut req).is_err() || req != [0, 0, 0, 8, 4, 210, 22, 47] {
            return false;
        }
        let _ = sock.write_all(&[answer]);
        if answer != b'S' {
            return false;
        }
    }
    let mut conn = ServerConnection::new(config).unwrap();
    for _ in 0..32 {
        if !conn.is_handshaking() {
            return true;
        }
        if conn.complete_io(&mut sock).is_err() {
            return false;
        }
    }
    false
}

pub(super) fn node(
    port: u16,
    starttls: Starttls,
    timeout: Duration,
) -> (crate::inventory::Node, TlsTarget) {
    let inv = InventoryBuilder::new()
        .dns("db1", &["db1.internal"])
        .link("app1", "db1")
        .build();
    let mut node = inv.nodes[inv.node_id("db1").unwrap()].clone();
    node.confirm_timeout = timeout;
    let target = TlsTarget {
        host: "127.0.0.1".into(),
        port,
        starttls,
    };
    node.tls = Some(target.clone());
    (node, target)
}

pub(super) fn expect(leaf: &Leaf, bundle: &[&CaCert], p: &Pki) -> Expectation {
    let bundle_pem = crate::materials::bundle_pem(bundle);
    Expectation::from_files(
        Some(("/etc/tls/cert.pem", leaf.cert_pem.as_bytes())),
        Some(("/etc/tls/ca.pem", &bundle_pem)),
        &[&p.g1.cert_der, &p.g2.cert_der],
    )
    .unwrap()
}

pub(super) fn local() -> LocalTransport {
    LocalTransport::new("db1", std::path::Path::new("."))
}

#[test]
fn records_the_served_chain_and_the_ca_names_of_a_mutual_server() {
    let p = pki();
    let server = Server::start(server_config(&p.new_leaf, Some(&[&p.g1, &p.g2])), None);
    let (n, target) = node(server.port, Starttls::None, Duration::from_secs(5));
    let seen = look(&local(), &n, &target, Duration::from_secs(5), None).unwrap();
    assert_eq!(seen.chain, vec![certs(&p.new_leaf.cert_pem)[0].to_vec()]);
    let names = seen
        .ca_names
        .clone()
        .expect("the server asked for a client certificate");
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        expect(&p.new_leaf, &[&p.g1, &p.g2], &p).mismatch(&seen),
        None
    );
    confirm_tls(
        &local(),
        &n,
        &target,
        &expect(&p.new_leaf, &[&p.g1, &p.g2], &p),
        None,
        &Throwaways::none(),
    )
    .unwrap();
}

#[test]
fn an_old_leaf_is_reported_with_both_serials() {
    let p = pki();
    let server = Server::start(server_config(&p.old_leaf, None), None);
    let (n, target) = node(server.port, Starttls::None, Duration::from_secs(5));
    let seen = look(&local(), &n, &target, Duration::from_secs(5), None).unwrap();
    assert_eq!(
        seen.ca_names, None,
        "no CertificateRequest from a one-way server"
    );
    let why = expect(&p.new_leaf, &[&p.g1, &p.g2], &p)
        .mismatch(&seen)
        .unwrap();
    assert!(why.starts_with("it serves CN=db1"), "{why}");
    assert!(
        why.contains("not the certificate in /etc/tls/cert.pem"),
        "{why}"
    );
    assert!(
        why.contains("Probe Test CA G1") && why.contains("Probe Test CA G2"),
        "{why}"
    );
}

#[test]
fn a_bundle_not_loaded_and_a_pruned_anchor_still_named_are_mismatches() {
    let p = pki();
    // Trust-add written, server still names only G1.
    let server = Server::start(server_config(&p.old_leaf, Some(&[&p.g1])), None);
    let (n, target) = node(server.port, Starttls::None, Duration::from_secs(5));
    let seen = look(&local(), &n, &target, Duration::from_secs(5), None).unwrap();
    let why = expect(&p.old_leaf, &[&p.g1, &p.g2], &p)
        .mismatch(&seen)
        .unwrap();
    assert!(why.contains("but not from CN=Probe Test CA G2"), "{why}");
    assert!(why.contains("has not loaded that bundle"), "{why}");
    // Trust-prune written (bundle {G2}), server still names G1 and G2.
    server.reload(server_config(&p.new_leaf, Some(&[&p.g1, &p.g2])));
    let seen = look(&local(), &n, &target, Duration::from_secs(5), None).unwrap();
    let why = expect(&p.new_leaf, &[&p.g2], &p).mismatch(&seen).unwrap();
    assert!(
        why.contains("still asks for client certificates from CN=Probe Test CA G1"),
        "{why}"
    );
    // Reloaded: only G2.
    server.reload(server_config(&p.new_leaf, Some(&[&p.g2])));
    let seen = look(&local(), &n, &target, Duration::from_secs(5), None).unwrap();
    assert_eq!(expect(&p.new_leaf, &[&p.g2], &p).mismatch(&seen), None);
}

#[test]
fn confirm_waits_for_a_slow_reload() {
    let p = pki();
    let server = Server::start(server_config(&p.old_leaf, Some(&[&p.g1])), None);
    let (n, target) = node(server.port, Starttls::None, Duration::from_secs(20));
    let exp = expect(&p.new_leaf, &[&p.g1, &p.g2], &p);
    let config = server_config(&p.new_leaf, Some(&[&p.g1, &p.g2]));
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(700));
            server.reload(config);
        });
        confirm_tls(&local(), &n, &target, &exp, None, &Throwaways::none()).unwrap();
    });
}

#[test]
fn a_server_never_reloaded_fails_the_confirm_quoting_what_it_serves() {
    let p = pki();
    let server = Server::start(server_config(&p.old_leaf, None), None);
    let (n, target) = node(server.port, Starttls::None, Duration::from_millis(800));
    let e = confirm_tls(
        &local(),
        &n,
        &target,
        &expect(&p.new_leaf, &[&p.g2], &p),
        None,
        &Throwaways::none(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!(
            "node db1 did not confirm at 127.0.0.1:{} within",
            server.port
        )),
        "{msg}"
    );
    assert!(msg.contains("last: it serves CN=db1"), "{msg}");
}

#[test]
fn nothing_listening_is_retried_then_reported() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (n, target) = node(port, Starttls::None, Duration::from_millis(500));
    let e = confirm_tls(
        &local(),
        &n,
        &target,
        &Expectation::default(),
        None,
        &Throwaways::none(),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, TlsConfirmError::NotConfirmed { attempts, .. } if attempts > 1),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "failed to connect to 127.0.0.1:{port} on node db1"
        )),
        "{msg}"
    );
}

#[test]
fn postgres_starttls_sends_the_ssl_request_first() {
    let p = pki();
    let server = Server::start(server_config(&p.new_leaf, Some(&[&p.g2])), Some(b'S'));
    let (n, target) = node(server.port, Starttls::Postgres, Duration::from_secs(5));
    let seen = look(&local(), &n, &target, Duration::from_secs(5), None).unwrap();
    assert_eq!(expect(&p.new_leaf, &[&p.g2], &p).mismatch(&seen), None);
    // Without the preamble, a PostgreSQL server never starts TLS.
    let (plain, t2) = node(server.port, Starttls::None, Duration::from_secs(2));
    assert!(look(&local(), &plain, &t2, Duration::from_secs(2), None).is_err());
}

#[test]
fn postgres_without_ssl_says_so() {
    let p = pki();
    let server = Server::start(server_config(&p.new_leaf, None), Some(b'N'));
    let (n, target) = node(server.port, Starttls::Postgres, Duration::from_secs(5));
    let e = look(&local(), &n, &target, Duration::from_secs(5), None).unwrap_err();
    assert!(e.to_string().contains("refused SSL"), "{e}");
}

#[test]
fn names_compare_with_or_without_the_sequence_header() {
    let p = pki();
    let name = subject_of(&p.g1.cert_der).unwrap();
    let inner = strip_sequence(&name.der).unwrap().to_vec();
    assert!(same_name(&name.der, &inner));
    assert!(same_name(&inner, &name.der));
    assert!(!same_name(
        &name.der,
        &subject_of(&p.g2.cert_der).unwrap().der
    ));
}

#[test]
fn the_nodes_own_pair_completes_the_handshake_with_a_server_that_requires_one() {
    let p = pki();
    let server = Server::start(config_with(&p.new_leaf, Some(&[&p.g2]), true), None);
    let (n, target) = node(server.port, Starttls::None, Duration::from_secs(5));
    // Without an identity the server sees a client without a certificate.
    look(&local(), &n, &target, Duration::from_secs(5), None).unwrap();
    // With the node's own pair it completes.
    let me = identity(
        p.new_leaf.cert_pem.as_bytes(),
        p.new_leaf.key_pem.as_bytes(),
    )
    .unwrap();
    let seen = look(&local(), &n, &target, Duration::from_secs(5), Some(&me)).unwrap();
    assert_eq!(expect(&p.new_leaf, &[&p.g2], &p).mismatch(&seen), None);
    let completed = server.completed.clone();
    drop(server);
    assert_eq!(completed.load(Ordering::SeqCst), 1);
    // A key that is not the certificate's is not offered.
    assert!(identity(
        p.new_leaf.cert_pem.as_bytes(),
        p.old_leaf.key_pem.as_bytes()
    )
    .is_none());
    assert!(identity(b"junk", b"junk").is_none());
}
