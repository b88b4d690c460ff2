//! Issuing certificates with rcgen: roots, cross certificates, leaves.
//!
//! Every certificate gets a random serial (rcgen's default derives it from the public
//! key, so a cross certificate would repeat its root's serial), an explicit validity,
//! and the Authority Key Identifier where it has an issuer, so that peers holding two
//! generations side by side always pick the right root.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::keys::generate;
use super::names::{ca_subject, copy_name, leaf_subject};
use super::{CaCert, CaKey, CaSigner, Leaf, PkiError};
use crate::inventory::{CaSpec, KeyAlgorithm, Node};

/// How far back `not_before` is set, so that peers with a slightly late clock accept.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// Creates generation `generation` of CA `spec`: a fresh key in memory and a self-signed
/// root. The store creates its generations with [`new_ca_with_key`] instead, so that the
/// key is made where the CA's `key_store` keeps it.
pub fn new_ca(spec: &CaSpec, generation: u32, now: OffsetDateTime) -> Result<CaCert, PkiError> {
    let action = format!("create CA generation G{generation}");
    let key = generate_pem(spec.key_algorithm)
        .map_err(|m| generate_error(spec, &action, format!("key generation: {m}")))?;
    new_ca_with_key(spec, generation, CaKey::Pem(key), now)
}

/// A fresh key of `alg`, PKCS#8 PEM in a zeroized buffer.
pub(crate) fn generate_pem(alg: KeyAlgorithm) -> Result<Zeroizing<String>, String> {
    generate(alg).map(|k| Zeroizing::new(k.serialize_pem()))
}

/// Creates generation `generation` of CA `spec` as a self-signed root of `key`.
pub fn new_ca_with_key(
    spec: &CaSpec,
    generation: u32,
    key: CaKey,
    now: OffsetDateTime,
) -> Result<CaCert, PkiError> {
    let action = format!("create CA generation G{generation}");
    let fail = |message: String| generate_error(spec, &action, message);
    let signer = key.signer().map_err(&fail)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_subject(&spec.subject, generation).map_err(fail)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = ca_key_usages();
    params.serial_number = Some(random_serial());
    let (not_before, not_after) = window(now, spec.validity, None).map_err(fail)?;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params
        .self_signed(&signer)
        .map_err(|e| fail(signing_error(&signer, e)))?;
    Ok(CaCert {
        generation,
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key: Some(key),
        not_after,
        anchor_pem: None,
        imported: false,
    })
}

/// Creates generation `generation` of CA `spec` as an intermediate signed by `root` (a
/// generation holding its key): what an operator's offline root ceremony produces, as
/// `ca import --anchor` records it. Used to prove such rotations (`plan --check`, tests).
pub fn new_intermediate(
    spec: &CaSpec,
    generation: u32,
    root: &CaCert,
    now: OffsetDateTime,
) -> Result<CaCert, PkiError> {
    let action = format!("create intermediate generation G{generation}");
    let fail = |message: String| generate_error(spec, &action, message);
    let root_key = root.signer().map_err(&fail)?;
    let key = generate(spec.key_algorithm).map_err(&fail)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_subject(&spec.subject, generation).map_err(&fail)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = ca_key_usages();
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    let (not_before, not_after) =
        window(now, spec.validity, Some(root.not_after)).map_err(&fail)?;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = sign(params, &key, &root.cert_der, root_key, "root certificate").map_err(&fail)?;
    Ok(CaCert {
        generation,
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key: Some(CaKey::Pem(Zeroizing::new(key.serialize_pem()))),
        not_after,
        anchor_pem: Some(root.cert_pem.clone()),
        imported: true,
    })
}

/// The cross certificate: `new`'s subject and public key signed by `old` (PEM).
///
/// It carries the new root's Subject Key Identifier (so a path through it and a path
/// through the new root look alike to a verifier) and the old root's as its Authority
/// Key Identifier, and it expires with the first of the two roots.
pub fn cross_sign(
    spec: &CaSpec,
    new: &CaCert,
    old: &CaCert,
    now: OffsetDateTime,
) -> Result<String, PkiError> {
    let action = format!("cross-sign G{} with G{}", new.generation, old.generation);
    let fail = |message: String| generate_error(spec, &action, message);
    let new_key = new
        .signer()
        .map_err(|m| fail(format!("key of G{}: {m}", new.generation)))?;
    let old_key = old
        .signer()
        .map_err(|m| fail(format!("key of G{}: {m}", old.generation)))?;
    let mut params = same_ca_params(new).map_err(&fail)?;
    params.use_authority_key_identifier_extension = true;
    params.not_before = whole_seconds(now) - BACKDATE;
    params.not_after = new.not_after.min(old.not_after);
    if params.not_after <= params.not_before {
        return Err(fail("one of the two roots has already expired".into()));
    }
    let what = format!("certificate of G{}", old.generation);
    let cert = sign(params, &new_key, &old.cert_der, old_key, &what).map_err(fail)?;
    Ok(cert.pem())
}

/// A leaf for `node` signed by `ca`: its SANs, and a fresh key of its leaf algorithm.
pub fn issue_node_leaf(
    spec: &CaSpec,
    ca: &CaCert,
    node: &Node,
    now: OffsetDateTime,
) -> Result<Leaf, PkiError> {
    let alg = node.leaf_algorithm(spec);
    issue_leaf_with(spec, alg, ca, &node.name, &node.sans(), now)
}

/// A leaf for a node, signed by `ca`, with `sans` (DNS names and IP addresses) and a fresh
/// key of the CA's algorithm.
pub fn issue_leaf(
    spec: &CaSpec,
    ca: &CaCert,
    node: &str,
    sans: &[String],
    now: OffsetDateTime,
) -> Result<Leaf, PkiError> {
    issue_leaf_with(spec, spec.key_algorithm, ca, node, sans, now)
}

/// A leaf as [`issue_leaf`], with a fresh key of algorithm `alg`.
pub fn issue_leaf_with(
    spec: &CaSpec,
    alg: KeyAlgorithm,
    ca: &CaCert,
    node: &str,
    sans: &[String],
    now: OffsetDateTime,
) -> Result<Leaf, PkiError> {
    let (cert, key, not_after) = sign_leaf(spec, alg, ca, node, sans, now, || generate(alg))?;
    Ok(Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_after,
    })
}

/// A leaf for a node whose key was made elsewhere (on the node, `key_source = "node"`):
/// exactly [`issue_leaf_with`]'s certificate for `alg`, for the public key `spki_der` (a
/// SubjectPublicKeyInfo, DER, from a checked request). Returns the certificate, PEM.
pub fn issue_leaf_for_key(
    spec: &CaSpec,
    alg: KeyAlgorithm,
    ca: &CaCert,
    node: &str,
    sans: &[String],
    now: OffsetDateTime,
    spki_der: &[u8],
) -> Result<String, PkiError> {
    let public = || {
        rcgen::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|e| format!("the node's public key: {e}"))
    };
    let (cert, _, _) = sign_leaf(spec, alg, ca, node, sans, now, public)?;
    Ok(cert.pem())
}

/// What both kinds of leaf share: the CA's signer, the leaf's public key from `key` (a
/// fresh pair, or the node's), and the certificate of [`leaf_params`] signed by the CA.
/// Returns the certificate, that key and the leaf's `not_after`.
fn sign_leaf<K: PublicKeyData>(
    spec: &CaSpec,
    alg: KeyAlgorithm,
    ca: &CaCert,
    node: &str,
    sans: &[String],
    now: OffsetDateTime,
    key: impl FnOnce() -> Result<K, String>,
) -> Result<(rcgen::Certificate, K, OffsetDateTime), PkiError> {
    let action = format!("issue a leaf for node {node} from G{}", ca.generation);
    let fail = |message: String| generate_error(spec, &action, message);
    let ca_key = ca.signer().map_err(|m| fail(format!("CA key: {m}")))?;
    let key = key().map_err(&fail)?;
    let (params, not_after) = leaf_params(spec, alg, ca, node, sans, now).map_err(&fail)?;
    let cert = sign(params, &key, &ca.cert_der, ca_key, "CA certificate").map_err(fail)?;
    Ok((cert, key, not_after))
}

/// Everything a leaf says but its key: the one source of both kinds of leaf.
fn leaf_params(
    spec: &CaSpec,
    alg: KeyAlgorithm,
    ca: &CaCert,
    node: &str,
    sans: &[String],
    now: OffsetDateTime,
) -> Result<(CertificateParams, OffsetDateTime), String> {
    let mut params = CertificateParams::default();
    params.distinguished_name = leaf_subject(node);
    params.subject_alt_names = sans.iter().map(|s| san(s)).collect::<Result<_, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = leaf_key_usages(alg);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    let (not_before, not_after) = window(now, spec.leaf_validity, Some(ca.not_after))?;
    params.not_before = not_before;
    params.not_after = not_after;
    Ok((params, not_after))
}

/// Signs `params` (for `key`) by the CA whose certificate is `issuer_der` and whose key is
/// `issuer_key`; `what` names that certificate in the error.
pub(super) fn sign(
    params: CertificateParams,
    key: &impl PublicKeyData,
    issuer_der: &[u8],
    issuer_key: CaSigner,
    what: &str,
) -> Result<rcgen::Certificate, String> {
    let issuer = Issuer::from_ca_cert_der(&issuer_der.to_vec().into(), issuer_key)
        .map_err(|e| format!("{what} does not parse: {e}"))?;
    params
        .signed_by(key, &issuer)
        .map_err(|e| signing_error(issuer.key(), e))
}

/// "signing: …", with the token's own reason when a token refused.
pub(super) fn signing_error(signer: &CaSigner, e: rcgen::Error) -> String {
    match signer {
        CaSigner::Token(t) => match t.last_error() {
            Some(why) => format!("signing: {why}"),
            None => format!("signing: {e}"),
        },
        CaSigner::Pair(_) => format!("signing: {e}"),
    }
}

pub(super) fn generate_error(spec: &CaSpec, action: &str, message: String) -> PkiError {
    PkiError::Generate {
        ca: spec.name.clone(),
        action: action.to_string(),
        message,
    }
}

/// digitalSignature; RSA leaves also keyEncipherment, which servers that still offer RSA
/// key exchange (older Java, appliances) need, as public CAs have always set it.
fn leaf_key_usages(alg: KeyAlgorithm) -> Vec<KeyUsagePurpose> {
    let mut usages = vec![KeyUsagePurpose::DigitalSignature];
    if alg.rsa_bits().is_some() {
        usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    usages
}

pub(super) fn ca_key_usages() -> Vec<KeyUsagePurpose> {
    vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ]
}

/// 16 random bytes, positive and without a leading zero byte.
pub(super) fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

pub(super) fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// `[now − 1h, now + validity]`, the end capped at `cap`.
pub(super) fn window(
    now: OffsetDateTime,
    validity: std::time::Duration,
    cap: Option<OffsetDateTime>,
) -> Result<(OffsetDateTime, OffsetDateTime), String> {
    let now = whole_seconds(now);
    let span = time::Duration::try_from(validity)
        .map_err(|_| format!("validity {validity:?} is too long"))?;
    let mut not_after = now
        .checked_add(span)
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| format!("validity {validity:?} ends after year 9999"))?;
    if let Some(cap) = cap {
        if cap <= now {
            return Err(format!("the CA expired at {cap}"));
        }
        not_after = not_after.min(cap);
    }
    Ok((now - BACKDATE, not_after))
}

fn san(name: &str) -> Result<SanType, String> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let dns = rcgen::string::Ia5String::try_from(name)
        .map_err(|_| format!("subject alternative name {name:?} is not ASCII"))?;
    Ok(SanType::DnsName(dns))
}

/// Parameters of a CA certificate with `ca`'s subject, subject key identifier, basic
/// constraints and key usages and a new serial number: what a re-issued (`ca extend`) or
/// cross-signed generation keeps of the generation. Validity and signer are the caller's.
pub(super) fn same_ca_params(ca: &CaCert) -> Result<CertificateParams, String> {
    let g = ca.generation;
    let (_, cert) = x509_parser::parse_x509_certificate(&ca.cert_der)
        .map_err(|e| format!("certificate of G{g} does not parse: {e}"))?;
    let ski = subject_key_id(&cert).ok_or_else(|| format!("G{g} has no subject key identifier"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name =
        copy_name(cert.subject()).map_err(|m| format!("subject of G{g}: {m}"))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = ca_key_usages();
    params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
    params.serial_number = Some(random_serial());
    Ok(params)
}

fn subject_key_id(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(id.0.to_vec())
            }
            _ => None,
        })
}
