//! The checks of `ca import`, on the files (and the CA's token) alone, before anything
//! is written: one PEM certificate of a CA valid now, a key that is the certificate's
//! (PKCS#8 file, or a key already in the token), and a root that signed it when it is an
//! intermediate. Every refusal names the file at fault and never quotes a key.

use std::path::{Path, PathBuf};

use rcgen::PublicKeyData;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use zeroize::Zeroizing;

use super::super::encrypted::{decrypt_pem, is_encrypted};
use super::super::keys::load_key;
use super::super::{cert_pem, CaCert, CaKey, CaStore, TokenKey};
use super::{ImportFiles, ImportSource, Refusal};
use crate::inventory::{CaSpec, KeyStore};

/// A refusal: the file at fault, the kind, the reason.
pub(super) type Refused = (PathBuf, Refusal, String);

/// Every check of an import, on the files (and the CA's token) alone: CA, validity, key,
/// anchor.
pub(super) fn validate(
    files: &ImportFiles,
    now: OffsetDateTime,
    store: &CaStore,
    spec: &CaSpec,
) -> Result<CaCert, Refused> {
    let cert_path = &files.cert.path;
    let cert_der = single_cert(&files.cert)?;
    let cert = parse_x509(&cert_der, cert_path)?;
    check_ca(&cert, cert_path, now)?;
    let key = check_key_given(files, &cert, store, spec)?;
    let anchor_pem = match &files.anchor {
        Some(anchor) => Some(check_anchor(anchor, &cert, now)?),
        None => {
            check_self_signed(&cert, cert_path)?;
            None
        }
    };
    Ok(CaCert {
        generation: 0,
        cert_pem: cert_pem(&cert_der),
        not_after: cert.validity().not_after.to_datetime(),
        cert_der,
        key,
        anchor_pem,
        imported: true,
    })
}

/// The key the operator gave, if any: a key file (not for a `pkcs11` store) or the label
/// of a key in the CA's token, not both.
fn check_key_given(
    files: &ImportFiles,
    cert: &X509Certificate<'_>,
    store: &CaStore,
    spec: &CaSpec,
) -> Result<Option<CaKey>, Refused> {
    let cert_path = &files.cert.path;
    match (&files.key, &files.token_label) {
        (Some(_), Some(_)) => Err((
            cert_path.clone(),
            Refusal::BadKey,
            "pass either --key or --pkcs11-key-label, not both".into(),
        )),
        (Some(key), None) => {
            if matches!(spec.key_store, KeyStore::Pkcs11(_)) {
                return Err((
                    key.path.clone(),
                    Refusal::BadKey,
                    format!(
                        "CA {} has key_store = \"pkcs11\": certroll does not copy a key into \
                         the token; put it there (e.g. pkcs11-tool --write-object) and pass \
                         --pkcs11-key-label LABEL",
                        spec.name
                    ),
                ));
            }
            let passphrase = store.unlock.passphrase(&spec.name);
            Ok(Some(CaKey::Pem(check_key(key, cert, passphrase)?)))
        }
        (None, Some(label)) => check_token_key(label, cert, cert_path, store, spec).map(Some),
        (None, None) => Ok(None),
    }
}

/// Without `--anchor` the issuing CA must be a root: self-issued and self-signed.
fn check_self_signed(cert: &X509Certificate<'_>, cert_path: &Path) -> Result<(), Refused> {
    if cert.issuer() != cert.subject() || cert.verify_signature(None).is_err() {
        return Err((
            cert_path.to_path_buf(),
            Refusal::NeedsAnchor,
            format!(
                "{} is issued by {}, not self-signed; pass the root the nodes trust \
                 with --anchor FILE",
                cert.subject(),
                cert.issuer()
            ),
        ));
    }
    Ok(())
}

/// The X.509 certificate of `der`, read from `path`.
fn parse_x509<'a>(der: &'a [u8], path: &Path) -> Result<X509Certificate<'a>, Refused> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| {
            (
                path.to_path_buf(),
                Refusal::NotPem,
                format!("not valid X.509: {e}"),
            )
        })
}

/// A key already in the CA's token: it must exist and its public key must be the
/// certificate's.
fn check_token_key(
    label: &str,
    cert: &X509Certificate<'_>,
    cert_path: &Path,
    store: &CaStore,
    spec: &CaSpec,
) -> Result<CaKey, Refused> {
    let refuse = |kind: Refusal, reason: String| (cert_path.to_path_buf(), kind, reason);
    let KeyStore::Pkcs11(_) = &spec.key_store else {
        return Err(refuse(
            Refusal::BadKey,
            format!(
                "--pkcs11-key-label needs key_store = \"pkcs11\" for CA {}, which has \
                 key_store = \"{}\"",
                spec.name,
                spec.key_store.as_str()
            ),
        ));
    };
    let token = store.unlock.token(&spec.name).ok_or_else(|| {
        refuse(
            Refusal::BadKey,
            "this command has not logged in to the CA's PKCS#11 token".into(),
        )
    })?;
    let reference = token
        .find(label)
        .map_err(|e| refuse(Refusal::BadKey, e.to_string()))?;
    let signer = token
        .signer(&reference)
        .map_err(|m| refuse(Refusal::BadKey, m))?;
    if signer.subject_public_key_info() != cert.public_key().raw {
        return Err(refuse(
            Refusal::KeyMismatch,
            format!(
                "token key {label:?} in PKCS#11 token {:?} does not belong to {}",
                token.label,
                cert.subject()
            ),
        ));
    }
    Ok(CaKey::Token(TokenKey {
        reference,
        token: Some(token.clone()),
    }))
}

/// The one certificate of a PEM file, DER.
fn single_cert(src: &ImportSource) -> Result<Vec<u8>, Refused> {
    let fail = |reason: String| (src.path.clone(), Refusal::NotPem, reason);
    let blocks = pem::parse_many(&src.bytes).map_err(|e| fail(format!("not valid PEM: {e}")))?;
    let mut certs = blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE");
    let first = certs
        .next()
        .ok_or_else(|| fail("it holds no PEM CERTIFICATE block".into()))?;
    let more = certs.count();
    if more > 0 {
        return Err(fail(format!(
            "it holds {} certificates; pass the issuing CA alone, and its root with --anchor",
            more + 1
        )));
    }
    Ok(first.into_contents())
}

fn check_ca(cert: &X509Certificate<'_>, path: &Path, now: OffsetDateTime) -> Result<(), Refused> {
    if !cert.is_ca() {
        return Err((
            path.to_path_buf(),
            Refusal::NotCa,
            format!(
                "{} is not a CA certificate (basicConstraints has no CA:TRUE); pass the \
                 certificate of the CA that issues the fleet's leaves",
                cert.subject()
            ),
        ));
    }
    let (from, until) = (
        cert.validity().not_before.to_datetime(),
        cert.validity().not_after.to_datetime(),
    );
    if until <= now || from > now {
        let when = if until <= now {
            format!("expired at {until}")
        } else {
            format!("is not valid before {from}")
        };
        return Err((
            path.to_path_buf(),
            Refusal::Expired,
            format!(
                "{} {when}; a fleet cannot be rotated away from a CA its peers no longer \
                 accept — bootstrap a new CA instead",
                cert.subject()
            ),
        ));
    }
    Ok(())
}

/// The key must be PKCS#8 (plain, or encrypted with the CA's passphrase) and belong to
/// the certificate. Messages never quote it.
fn check_key(
    key: &ImportSource,
    cert: &X509Certificate<'_>,
    passphrase: Option<&str>,
) -> Result<Zeroizing<String>, Refused> {
    let bad = |reason: String| (key.path.clone(), Refusal::BadKey, reason);
    let text =
        std::str::from_utf8(&key.bytes).map_err(|_| bad("the key file is not PEM text".into()))?;
    let text = if is_encrypted(text) {
        let passphrase = passphrase.ok_or_else(|| {
            bad(
                "the key is encrypted and the CA's key_store is not \"encrypted\"; decrypt it \
                 with `openssl pkcs8 -in KEY -out PLAIN`"
                    .into(),
            )
        })?;
        decrypt_pem(text, passphrase.as_bytes()).map_err(|e| bad(e.to_string()))?
    } else {
        Zeroizing::new(text.to_string())
    };
    let pair = load_key(&text).map_err(|m| {
        bad(format!(
            "{m} (convert it with `openssl pkcs8 -topk8 -nocrypt`)"
        ))
    })?;
    if pair.subject_public_key_info() != cert.public_key().raw {
        return Err((
            key.path.clone(),
            Refusal::KeyMismatch,
            format!("the key does not belong to {}", cert.subject()),
        ));
    }
    Ok(text)
}

/// The anchor must be a valid CA and have signed the issuing CA.
fn check_anchor(
    anchor: &ImportSource,
    cert: &X509Certificate<'_>,
    now: OffsetDateTime,
) -> Result<String, Refused> {
    let der = single_cert(anchor)?;
    let root = parse_x509(&der, &anchor.path)?;
    check_ca(&root, &anchor.path, now)?;
    let signed =
        root.subject() == cert.issuer() && cert.verify_signature(Some(root.public_key())).is_ok();
    if !signed {
        return Err((
            anchor.path.clone(),
            Refusal::AnchorDoesNotCertify,
            format!(
                "the anchor {} did not sign {} (its issuer is {}); pass the root that certified it",
                root.subject(),
                cert.subject(),
                cert.issuer()
            ),
        ));
    }
    Ok(cert_pem(&der))
}
