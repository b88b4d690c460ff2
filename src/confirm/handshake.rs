//! One observing TLS handshake with a live server: what chain it serves and, if it asks
//! for a client certificate, which CA names it says it accepts.
//!
//! This is an *observation*, not a validation: the served chain is recorded as sent (a
//! server still on the old leaf must be reported as such, not as "unknown issuer"). When
//! the server asks for a client certificate, the node's own certificate and key are
//! offered if the caller has them ([`identity`]): a server that trusts its own CA then
//! completes the handshake instead of logging a failed client. Without them no
//! certificate is offered, and a server that requires one may close the connection once
//! it has shown both. The handshake signatures are still checked, so a chain is only
//! recorded from a peer that holds its key.

use std::io;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

use crate::inventory::Starttls;
use crate::transport::ByteStream;

/// What a server showed in one handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// The served chain, leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    /// `None` when the server did not ask for a client certificate; otherwise the
    /// distinguished names (DER) of its CertificateRequest's certificate_authorities.
    pub ca_names: Option<Vec<Vec<u8>>>,
}

/// Why no observation could be made.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Protocol(String),
}

/// PostgreSQL's SSLRequest: length 8, code 80877103.
const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// Runs the pre-TLS protocol, then a TLS handshake over `stream` for `server_name`, and
/// returns what the server showed. `stream` must carry read and write timeouts.
pub fn observe(
    stream: &mut dyn ByteStream,
    server_name: &str,
    starttls: Starttls,
    identity: Option<Arc<CertifiedKey>>,
) -> Result<Observation, ObserveError> {
    if starttls == Starttls::Postgres {
        postgres_ssl_request(stream)?;
    }
    let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
        ObserveError::Protocol(format!(
            "server name {server_name:?} is neither a DNS name nor an IP address"
        ))
    })?;
    let recorder = Arc::new(Recorder {
        seen: Mutex::default(),
        identity,
    });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ObserveError::Protocol(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_client_cert_resolver(recorder.clone());
    let mut conn = ClientConnection::new(Arc::new(config), name)
        .map_err(|e| ObserveError::Protocol(format!("cannot set up TLS: {e}")))?;
    let result = drive(&mut conn, stream);
    if result.is_ok() {
        close_cleanly(&mut conn, stream);
    }
    let seen = recorder.take();
    // A server that requires a client certificate may abort once it has shown its
    // chain and its CA names: what was seen is the answer.
    match (result, seen.chain.is_empty()) {
        (_, false) => Ok(seen),
        (Err(e), true) => Err(e),
        (Ok(()), true) => Err(ObserveError::Protocol(
            "the handshake ended without a server certificate".into(),
        )),
    }
}

fn postgres_ssl_request(stream: &mut dyn ByteStream) -> Result<(), ObserveError> {
    stream
        .write_all(&PG_SSL_REQUEST)
        .and_then(|()| stream.flush())
        .map_err(|e| io_error("send the PostgreSQL SSLRequest", &e))?;
    let mut answer = [0u8; 1];
    stream
        .read_exact(&mut answer)
        .map_err(|e| io_error("read the answer to the PostgreSQL SSLRequest", &e))?;
    match answer[0] {
        b'S' => Ok(()),
        b'N' => Err(ObserveError::Protocol(
            "the PostgreSQL server refused SSL (answered 'N' to SSLRequest): is ssl = on?".into(),
        )),
        other => Err(ObserveError::Protocol(format!(
            "the server answered {:?} to a PostgreSQL SSLRequest: is it PostgreSQL?",
            char::from(other)
        ))),
    }
}

/// Pumps the handshake until it completes, fails, or the peer closes.
fn drive(conn: &mut ClientConnection, stream: &mut dyn ByteStream) -> Result<(), ObserveError> {
    // Bounded: every round moves at least one record or returns.
    for _ in 0..256 {
        while conn.wants_write() {
            conn.write_tls(stream)
                .map_err(|e| io_error("send a TLS record", &e))?;
        }
        stream
            .flush()
            .map_err(|e| io_error("send a TLS record", &e))?;
        // Only once our last flight (certificate, finished) is out.
        if !conn.is_handshaking() {
            return Ok(());
        }
        let n = conn
            .read_tls(stream)
            .map_err(|e| io_error("read the server's TLS records", &e))?;
        if n == 0 {
            return Err(ObserveError::Io(
                "the server closed the connection during the TLS handshake".into(),
            ));
        }
        if let Err(e) = conn.process_new_packets() {
            // Send our alert, if any, for the server's logs; the error is what counts.
            let _ = conn.write_tls(stream);
            return Err(ObserveError::Protocol(format!("TLS handshake failed: {e}")));
        }
    }
    Err(ObserveError::Protocol(
        "the TLS handshake did not finish in 256 rounds".into(),
    ))
}

/// Sends close_notify and reads until the server closes (bounded), so that the server
/// finishes its side (session tickets, its own close) and logs a clean connection.
fn close_cleanly(conn: &mut ClientConnection, stream: &mut dyn ByteStream) {
    conn.send_close_notify();
    for _ in 0..64 {
        while conn.wants_write() {
            if conn.write_tls(stream).is_err() {
                return;
            }
        }
        if stream.flush().is_err() {
            return;
        }
        match conn.read_tls(stream) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    return;
                }
            }
        }
    }
}

fn io_error(action: &str, e: &io::Error) -> ObserveError {
    let what = match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_string(),
        io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
        _ => e.to_string(),
    };
    ObserveError::Io(format!("failed to {action}: {what}"))
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// A certificate chain and key to offer as client certificate: the node's own pair.
/// `None` when the files do not hold a usable pair (nothing is offered then).
pub fn identity(chain_pem: &[u8], key_pem: &[u8]) -> Option<Arc<CertifiedKey>> {
    let chain: Vec<CertificateDer<'static>> = pem::parse_many(chain_pem)
        .ok()?
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| CertificateDer::from(b.into_contents()))
        .collect();
    let block = pem::parse_many(key_pem)
        .ok()?
        .into_iter()
        .find(|b| b.tag().ends_with("PRIVATE KEY"))?;
    let key = match block.tag() {
        "PRIVATE KEY" => PrivateKeyDer::Pkcs8(block.into_contents().into()),
        "EC PRIVATE KEY" => PrivateKeyDer::Sec1(block.into_contents().into()),
        "RSA PRIVATE KEY" => PrivateKeyDer::Pkcs1(block.into_contents().into()),
        _ => return None,
    };
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).ok()?;
    let certified = CertifiedKey::new(chain, signer);
    // Offer only a matching pair: a mismatched one would fail the server's check anyway.
    certified.keys_match().ok()?;
    Some(Arc::new(certified))
}

/// Records the served chain (as the certificate verifier) and the CA names of a
/// CertificateRequest (as the client-certificate resolver, which offers `identity`).
struct Recorder {
    seen: Mutex<Observation>,
    identity: Option<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Recorder {
    // Never shows the identity's key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("identity", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    fn take(&self) -> Observation {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref().to_vec())
            .collect();
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .chain = chain;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ResolvesClientCert for Recorder {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        let names = root_hint_subjects.iter().map(|n| n.to_vec()).collect();
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ca_names = Some(names);
        self.identity.clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}
