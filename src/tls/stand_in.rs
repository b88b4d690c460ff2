//! Handshakes for a side whose key was made on its node (`key_source = "node"`) and so is
//! not on this host: the link checks of `verify` must find the same problems either way.
//!
//! Such a side was already checked on its node (its key's public key is its
//! certificate's), so what a link check still has to prove is the chains: that each side
//! accepts what the other presents. The side signs with a stand-in key, and its peer
//! verifies its certificate chain with rustls' own verifier, exactly as before, but takes
//! the handshake signature made with the stand-in as the one the real key would make.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

/// What [`super::Endpoint::key_pem`] holds for a key checked on its node.
pub const KEY_ON_NODE: &[u8] = b"certroll: the key was checked on its node";

/// A fresh stand-in key (ECDSA P-256, PKCS#8), made for one handshake.
pub(super) fn stand_in_key() -> Option<PrivateKeyDer<'static>> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).ok()?;
    PrivateKeyDer::try_from(pair.serialize_der()).ok()
}

/// The handshake-signature half that both verifiers share: the signature made with the
/// stand-in key is taken as the real key's, over any scheme the provider knows.
macro_rules! stand_in_signatures {
    () => {
        stand_in_signatures!(verify_tls12_signature, verify_tls13_signature);

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            schemes()
        }
    };
    ($($verify:ident),+) => {
        $(
            fn $verify(
                &self,
                _: &[u8],
                _: &CertificateDer<'_>,
                _: &DigitallySignedStruct,
            ) -> Result<HandshakeSignatureValid, Error> {
                Ok(HandshakeSignatureValid::assertion())
            }
        )+
    };
}

/// The client's verifier of a server that signs with a stand-in key.
#[derive(Debug)]
pub(super) struct ServerChainOnly(pub Arc<dyn ServerCertVerifier>);

impl ServerCertVerifier for ServerChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    stand_in_signatures!();
}

/// The server's verifier of a client that signs with a stand-in key.
#[derive(Debug)]
pub(super) struct ClientChainOnly(pub Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for ClientChainOnly {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    stand_in_signatures!();
}

fn schemes() -> Vec<SignatureScheme> {
    let provider: Arc<CryptoProvider> = super::provider();
    provider
        .signature_verification_algorithms
        .supported_schemes()
}
