//! Throwaway client certificates: the one way to ask a server that names no CA in its
//! CertificateRequest (Redis, MariaDB, mosquitto, Python's ssl) whether it trusts a CA
//! generation (docs/design.md#what-a-confirm-proves).
//!
//! The built-in TLS confirm presents one to such a server and sees it accepted (the server
//! has loaded a bundle that holds the generation) or refused (it has not, or no longer). A
//! throwaway lives a few minutes, has a fresh ECDSA P-256 key made in memory for it, and is
//! signed by the generation's key through the run's own signer (a `file` key, an
//! `encrypted` one this run already unlocked, a key in a PKCS#11 token this run logged in
//! to): it asks for no secret of its own. Neither its key nor its certificate is ever
//! written to a file, a journal or a message; `Debug` shows neither.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::issue::{random_serial, sign, whole_seconds};
use super::CaCert;

/// How long a throwaway is valid after it is made.
pub const THROWAWAY_LIFETIME: time::Duration = time::Duration::minutes(5);
/// How far its `notBefore` goes back, for a node whose clock is a little behind.
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// A throwaway client certificate and its key, in memory only.
pub struct Throwaway {
    /// The certificate, then the generation's intermediate when the generation is one
    /// (the bundle holds its anchor, as a leaf of that generation carries it), DER.
    pub chain: Vec<Vec<u8>>,
    /// The key, PKCS#8 DER, zeroized when dropped.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for Throwaway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throwaway")
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Issues a throwaway client certificate from `ca` (of CA `ca_name`), valid from a little
/// before `now` until [`THROWAWAY_LIFETIME`] after it. The message of an error says why
/// (public-only, locked, the token refused) and never holds key material.
pub fn issue_throwaway(
    ca_name: &str,
    ca: &CaCert,
    now: OffsetDateTime,
) -> Result<Throwaway, String> {
    let ca_key = ca.signer()?;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("throwaway key generation: {e}"))?;
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(
        DnType::CommonName,
        format!("certroll throwaway client of {ca_name} G{}", ca.generation),
    );
    params.distinguished_name = subject;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    let now = whole_seconds(now);
    let not_after = (now + THROWAWAY_LIFETIME).min(ca.not_after);
    if not_after <= now {
        return Err(format!("generation G{} has expired", ca.generation));
    }
    params.not_before = now - BACKDATE;
    params.not_after = not_after;
    let what = format!("certificate of G{}", ca.generation);
    let cert = sign(params, &key, &ca.cert_der, ca_key, &what)?;
    let mut chain = vec![cert.der().to_vec()];
    if ca.anchor_pem.is_some() {
        chain.push(ca.cert_der.clone());
    }
    Ok(Throwaway {
        chain,
        key_pkcs8: Zeroizing::new(key.serialize_der()),
        not_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::CaSpec;
    use crate::pki::{new_ca, new_intermediate};

    fn spec() -> CaSpec {
        CaSpec::new("internal", "CN=Throwaway Test CA")
    }

    #[test]
    fn a_throwaway_is_a_short_lived_client_certificate_signed_by_the_generation() {
        let now = OffsetDateTime::now_utc();
        let g1 = new_ca(&spec(), 1, now).unwrap();
        let t = issue_throwaway("internal", &g1, now).unwrap();
        assert_eq!(t.chain.len(), 1);
        let (_, cert) = x509_parser::parse_x509_certificate(&t.chain[0]).unwrap();
        let (_, root) = x509_parser::parse_x509_certificate(&g1.cert_der).unwrap();
        cert.verify_signature(Some(root.public_key())).unwrap();
        let lifetime = cert.validity().not_after.timestamp() - now.unix_timestamp();
        assert!((290..=300).contains(&lifetime), "{lifetime}");
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(format!("{t:?}").contains("not_after") && !format!("{t:?}").contains("key"));
    }

    #[test]
    fn a_throwaway_of_an_intermediate_generation_carries_the_intermediate() {
        let now = OffsetDateTime::now_utc();
        let root = new_ca(&spec(), 1, now).unwrap();
        let g2 = new_intermediate(&spec(), 2, &root, now).unwrap();
        let t = issue_throwaway("internal", &g2, now).unwrap();
        assert_eq!(t.chain.len(), 2);
        assert_eq!(t.chain[1], g2.cert_der);
    }

    #[test]
    fn a_public_only_generation_issues_no_throwaway() {
        let now = OffsetDateTime::now_utc();
        let mut g1 = new_ca(&spec(), 1, now).unwrap();
        g1.key = None;
        let why = issue_throwaway("internal", &g1, now).unwrap_err();
        assert!(why.contains("public-only"), "{why}");
    }
}
