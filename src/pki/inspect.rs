//! Reading certificates back: what `verify`, `renew` and the CA store need to know of a
//! PEM file (names, serial, validity, key identifiers, SANs), parsed with x509-parser.

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};

/// What certroll needs to know of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub der: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    /// The first common name of the subject and of the issuer ("" when there is none).
    pub subject_cn: String,
    pub issuer_cn: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub is_ca: bool,
    pub subject_key_id: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    /// DNS and IP SANs, as text.
    pub sans: Vec<String>,
    /// SHA-256 of the DER SubjectPublicKeyInfo, hex.
    pub spki_sha256: String,
}

/// Parses every CERTIFICATE block of a PEM file.
///
/// Other blocks (keys, parameters) are skipped; a file that is not PEM at all, or a
/// CERTIFICATE block that is not valid X.509, is an error naming the block's position.
pub fn parse_pem_certs(pem: &[u8]) -> Result<Vec<CertInfo>, String> {
    let blocks = pem::parse_many(pem).map_err(|e| format!("not valid PEM: {e}"))?;
    blocks
        .iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .enumerate()
        .map(|(i, b)| {
            cert_info(b.contents()).map_err(|e| format!("certificate {} of the file: {e}", i + 1))
        })
        .collect()
}

/// A certificate as PEM text with `\n` line endings.
pub fn cert_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// A stand-in certificate numbered `n` for tests, as PEM text and DER: a tiny DER
/// sequence, not valid X.509, enough for code that moves PEM blocks by their bytes.
#[cfg(test)]
pub(crate) fn stand_in_cert(n: u8) -> (String, Vec<u8>) {
    let der = vec![0x30, 0x03, 0x02, 0x01, n];
    (cert_pem(&der), der)
}

/// Parses one DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not valid X.509: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the certificate".into());
    }
    let (subject_key_id, authority_key_id, sans) = extensions(&cert)?;
    Ok(CertInfo {
        der: der.to_vec(),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial_hex: hex::encode(cert.raw_serial()),
        subject_cn: common_name(cert.subject()),
        issuer_cn: common_name(cert.issuer()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        is_ca: cert.is_ca(),
        subject_key_id,
        authority_key_id,
        sans,
        spki_sha256: hex::encode(Sha256::digest(cert.public_key().raw)),
    })
}

/// The first common name of `name`, or "" (a CN that is not a string is shown as "").
fn common_name(name: &x509_parser::x509::X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_string()
}

type Extensions = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<String>);

fn extensions(cert: &X509Certificate<'_>) -> Result<Extensions, String> {
    let mut ski = None;
    let mut aki = None;
    let mut sans = Vec::new();
    for ext in cert.iter_extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(d) => sans.push(d.to_string()),
                        GeneralName::IPAddress(bytes) => sans.push(ip_text(bytes)?),
                        _ => {}
                    }
                }
            }
            ParsedExtension::ParseError { error } => {
                return Err(format!("extension {} does not parse: {error}", ext.oid));
            }
            _ => {}
        }
    }
    Ok((ski, aki, sans))
}

fn ip_text(bytes: &[u8]) -> Result<String, String> {
    let ip: IpAddr = match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .map(IpAddr::from)
            .map_err(|_| "IP SAN")?,
        16 => <[u8; 16]>::try_from(bytes)
            .map(IpAddr::from)
            .map_err(|_| "IP SAN")?,
        n => return Err(format!("an IP address SAN has {n} bytes")),
    };
    Ok(ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_pem_and_bad_der() {
        assert!(
            parse_pem_certs(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
                .is_err()
        );
        let garbage = pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]));
        let err = parse_pem_certs(garbage.as_bytes()).unwrap_err();
        assert!(err.contains("certificate 1"), "{err}");
    }

    #[test]
    fn empty_input_has_no_certificates() {
        assert_eq!(parse_pem_certs(b"").unwrap(), Vec::new());
    }
}
