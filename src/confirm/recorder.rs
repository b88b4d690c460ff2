//! What one observing handshake saw, recorded from inside rustls: the chain the server
//! sent, whether the server's handshake signature verified with that chain's leaf, and
//! the CA names of a CertificateRequest.
//!
//! The served chain is recorded as sent, not validated against any anchor (a server still
//! on the old leaf must be reported as such, not as "unknown issuer"). But a chain alone
//! proves nothing: anyone can send a copy of a public certificate. It counts only once
//! the server's handshake signature — TLS 1.2 ServerKeyExchange, TLS 1.3
//! CertificateVerify — has verified with the public key of the leaf it served, i.e. the
//! server holds that certificate's private key. [`Recorder::outcome`] gives the chain
//! only then.
//!
//! It also stands as the session store, which never gives a session back (every look is a
//! full handshake) but counts the TLS 1.3 tickets the server sends: a ticket after the
//! client's certificate is the server's word that it accepted it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, ResolvesClientCert, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, NamedGroup, SignatureScheme};

/// Which handshake message carried the signature that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// TLS 1.2: the ServerKeyExchange, signed over both randoms and the key share.
    Tls12ServerKeyExchange,
    /// TLS 1.3: the CertificateVerify, signed over the handshake transcript.
    Tls13CertificateVerify,
}

impl Signed {
    /// "TLS 1.2" or "TLS 1.3".
    pub fn version(self) -> &'static str {
        match self {
            Signed::Tls12ServerKeyExchange => "TLS 1.2",
            Signed::Tls13CertificateVerify => "TLS 1.3",
        }
    }

    /// The message, for messages: "TLS 1.2 ServerKeyExchange".
    pub fn message(self) -> &'static str {
        match self {
            Signed::Tls12ServerKeyExchange => "TLS 1.2 ServerKeyExchange",
            Signed::Tls13CertificateVerify => "TLS 1.3 CertificateVerify",
        }
    }
}

/// What the recorder holds after a handshake.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The served chain (leaf first, DER), only if its leaf's key signed the handshake.
    pub proven: Option<(Vec<Vec<u8>>, Signed)>,
    /// Why the server's handshake signature was refused, if it was.
    pub refused: Option<String>,
    /// `None` when the server did not ask for a client certificate; otherwise the
    /// distinguished names (DER) of its CertificateRequest's certificate_authorities.
    pub ca_names: Option<Vec<Vec<u8>>>,
}

#[derive(Default)]
struct Seen {
    /// The chain as the server sent it, not yet proven.
    served: Vec<Vec<u8>>,
    signed: Option<Signed>,
    refused: Option<String>,
    ca_names: Option<Vec<Vec<u8>>>,
}

/// A client certificate to offer, with what it is, for messages ("the node's own
/// certificate", "a throwaway client certificate of G2"). `Debug` never shows the key.
#[derive(Clone)]
pub struct ClientCert {
    pub key: Arc<CertifiedKey>,
    pub what: String,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

/// Records the served chain (as the certificate verifier, which also verifies the
/// handshake signatures), the CA names of a CertificateRequest (as the
/// client-certificate resolver, which offers `identity`) and the TLS 1.3 tickets (as the
/// session store).
pub struct Recorder {
    seen: Mutex<Seen>,
    identity: Option<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
    tickets: AtomicUsize,
}

impl Recorder {
    pub fn new(identity: Option<Arc<CertifiedKey>>, provider: Arc<CryptoProvider>) -> Self {
        Recorder {
            seen: Mutex::default(),
            identity,
            provider,
            tickets: AtomicUsize::new(0),
        }
    }

    /// Whether the server asked for a client certificate (so far).
    pub fn asked(&self) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ca_names
            .is_some()
    }

    /// TLS 1.3 tickets the server sent so far.
    pub fn tickets(&self) -> usize {
        self.tickets.load(Ordering::SeqCst)
    }

    /// What was seen; the chain only if the handshake signature verified with its leaf.
    pub fn outcome(&self) -> Outcome {
        let seen = std::mem::take(&mut *self.seen.lock().unwrap_or_else(PoisonError::into_inner));
        Outcome {
            proven: seen
                .signed
                .filter(|_| !seen.served.is_empty())
                .map(|signed| (seen.served, signed)),
            refused: seen.refused,
            ca_names: seen.ca_names,
        }
    }

    /// Records the result of a handshake signature check of `cert` (the leaf rustls
    /// checked against) carried by `signed`.
    fn record(
        &self,
        signed: Signed,
        cert: &CertificateDer<'_>,
        result: Result<HandshakeSignatureValid, rustls::Error>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let is_served_leaf = seen.served.first().map(Vec::as_slice) == Some(cert.as_ref());
        match result {
            Ok(valid) if is_served_leaf => {
                seen.signed = Some(signed);
                Ok(valid)
            }
            Ok(_) => {
                seen.refused = Some(format!(
                    "the signature of its {} was checked against a certificate it did not serve first",
                    signed.message()
                ));
                Err(rustls::Error::General(
                    "handshake signature checked against another certificate".into(),
                ))
            }
            Err(e) => {
                seen.refused = Some(format!(
                    "the signature of its {} does not verify with the public key of the \
                     certificate it served ({e}): the server does not hold that certificate's \
                     private key",
                    signed.message()
                ));
                Err(e)
            }
        }
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
        let served = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.as_ref().to_vec())
            .collect();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        // A new chain is not proven by an earlier signature.
        seen.served = served;
        seen.signed = None;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        let result = verify_tls12_signature(message, cert, dss, algs);
        self.record(Signed::Tls12ServerKeyExchange, cert, result)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        let result = verify_tls13_signature(message, cert, dss, algs);
        self.record(Signed::Tls13CertificateVerify, cert, result)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
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

impl std::fmt::Debug for Recorder {
    // Never shows the identity's key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("identity", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

/// Keeps no session: every look is a full handshake, whose server signature is checked.
/// Counts the TLS 1.3 tickets.
impl ClientSessionStore for Recorder {
    fn set_kx_hint(&self, _server_name: ServerName<'static>, _group: NamedGroup) {}

    fn kx_hint(&self, _server_name: &ServerName<'_>) -> Option<NamedGroup> {
        None
    }

    fn set_tls12_session(
        &self,
        _server_name: ServerName<'static>,
        _value: Tls12ClientSessionValue,
    ) {
    }

    fn tls12_session(&self, _server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        None
    }

    fn remove_tls12_session(&self, _server_name: &ServerName<'static>) {}

    fn insert_tls13_ticket(
        &self,
        _server_name: ServerName<'static>,
        _value: Tls13ClientSessionValue,
    ) {
        self.tickets.fetch_add(1, Ordering::SeqCst);
    }

    fn take_tls13_ticket(
        &self,
        _server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        None
    }
}

/// A certificate chain and key to offer as client certificate: the node's own pair.
/// `None` when the files do not hold a usable pair (nothing is offered then).
pub fn identity(chain_pem: &[u8], key_pem: &[u8]) -> Option<ClientCert> {
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
    Some(ClientCert {
        key: Arc::new(certified),
        what: "the node's own certificate".into(),
    })
}
