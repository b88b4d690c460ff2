//! Turning one side's files into what rustls needs, and saying precisely what is wrong
//! with them when they are unusable: not PEM, no certificate, an empty trust bundle, a
//! key that cannot sign, a key that belongs to another certificate.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;

use super::{FailureKind, HandshakeError, Side};

fn fail(side: Side, kind: FailureKind, detail: String) -> HandshakeError {
    HandshakeError { side, kind, detail }
}

fn role(side: Side) -> &'static str {
    match side {
        Side::Client => "client",
        Side::Server => "server",
    }
}

/// True if `bytes` hold something other than whitespace but not a single PEM block.
fn is_not_pem(bytes: &[u8]) -> bool {
    let has_content = bytes.iter().any(|b| !b.is_ascii_whitespace());
    has_content && !bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Every CERTIFICATE block of `pem`, in order.
fn certificates(
    pem: &[u8],
    side: Side,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, HandshakeError> {
    let bad_pem = |detail: String| {
        fail(
            side,
            FailureKind::BadPem,
            format!("{}'s {what}: {detail}", role(side)),
        )
    };
    if is_not_pem(pem) {
        return Err(bad_pem("not a PEM file".into()));
    }
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(format!("corrupt PEM ({e})")))
}

/// The trust bundle as a root store; every certificate must be a usable anchor.
pub(super) fn root_store(
    bundle_pem: &[u8],
    side: Side,
) -> Result<Arc<RootCertStore>, HandshakeError> {
    let certs = certificates(bundle_pem, side, "trust bundle")?;
    if certs.is_empty() {
        let detail = format!("{}'s trust bundle holds no certificate", role(side));
        return Err(fail(side, FailureKind::EmptyBundle, detail));
    }
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            let detail = format!(
                "{}'s trust bundle: certificate {} is not a valid CA ({e})",
                role(side),
                i + 1
            );
            fail(side, FailureKind::BadPem, detail)
        })?;
    }
    Ok(Arc::new(roots))
}

/// The certificate chain and the key, checked to belong together.
pub(super) fn certified_key(
    chain_pem: &[u8],
    key_pem: &[u8],
    side: Side,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, HandshakeError> {
    let chain = certificates(chain_pem, side, "certificate file")?;
    if chain.is_empty() {
        let detail = format!("{}'s certificate file holds no certificate", role(side));
        return Err(fail(side, FailureKind::MissingCertificate, detail));
    }
    for (i, cert) in chain.iter().enumerate() {
        if let Err(e) = x509_parser::parse_x509_certificate(cert) {
            let detail = format!(
                "{}'s certificate file: certificate {} is not valid X.509 ({e})",
                role(side),
                i + 1
            );
            return Err(fail(side, FailureKind::BadPem, detail));
        }
    }
    // A key checked on its node signs with a stand-in (see `stand_in`).
    let on_node = key_pem == super::KEY_ON_NODE;
    let key = match on_node {
        true => super::stand_in::stand_in_key().ok_or_else(|| {
            fail(
                side,
                FailureKind::Other,
                "cannot make a stand-in key".into(),
            )
        })?,
        false => private_key(key_pem, side)?,
    };
    let signing_key = provider.key_provider.load_private_key(key).map_err(|_| {
        let detail = format!(
            "{}'s key is not a usable ECDSA, Ed25519 or RSA private key",
            role(side)
        );
        fail(side, FailureKind::BadKey, detail)
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    if on_node {
        return Ok(Arc::new(certified));
    }
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            let detail = format!("{}'s key does not belong to its certificate", role(side));
            Err(fail(side, FailureKind::KeyMismatch, detail))
        }
        // The provider cannot derive the public key; the handshake itself will tell.
        Err(_) => Ok(Arc::new(certified)),
    }
}

fn private_key(key_pem: &[u8], side: Side) -> Result<PrivateKeyDer<'static>, HandshakeError> {
    use rustls::pki_types::pem::Error as PemError;
    if is_not_pem(key_pem) {
        return Err(fail(
            side,
            FailureKind::BadPem,
            format!("{}'s key file: not a PEM file", role(side)),
        ));
    }
    PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        PemError::NoItemsFound => fail(
            side,
            FailureKind::BadKey,
            format!("{}'s key file holds no private key", role(side)),
        ),
        // The PEM error may quote the file; the key file's content never goes in a message.
        _ => fail(
            side,
            FailureKind::BadPem,
            format!("{}'s key file: corrupt PEM", role(side)),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_non_pem_content() {
        assert!(is_not_pem(b"hello"));
        assert!(!is_not_pem(b"  \n"));
        assert!(!is_not_pem(b"-----BEGIN CERTIFICATE-----\n"));
    }

    #[test]
    fn empty_bundle_and_missing_chain_are_classified() {
        let err = root_store(b"\n", Side::Server).unwrap_err();
        assert_eq!(
            (err.side, err.kind),
            (Side::Server, FailureKind::EmptyBundle)
        );
        let provider = rustls::crypto::ring::default_provider();
        let err = certified_key(b"", b"", Side::Client, &provider).unwrap_err();
        assert_eq!(
            (err.side, err.kind),
            (Side::Client, FailureKind::MissingCertificate)
        );
    }
}
