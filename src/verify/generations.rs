//! Which CA generation a certificate belongs to: the local CA store knows the current
//! root, the next one while a rotation runs, and the archived ones. An anchor is
//! recognised by its public key (SPKI); a leaf by its Authority Key Identifier, or by
//! its issuer name when it carries none.

use crate::inventory::CaSpec;
use crate::pki::{parse_pem_certs, CaCert, CaStore, CertInfo};

use super::report::{CertSummary, Generation};

/// One generation of the store, reduced to what recognition needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownCa {
    pub label: Generation,
    pub number: u32,
    pub subject: String,
    pub spki_sha256: String,
    pub key_id: Option<Vec<u8>>,
    /// The root certificate, DER (to verify what it signed).
    pub der: Vec<u8>,
    /// The trust anchor of an imported intermediate generation, not its issuing CA.
    pub anchor: bool,
}

/// The generations of one CA, as the local store knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub cas: Vec<KnownCa>,
}

impl Known {
    /// Reads the store. An error names the store directory and what failed.
    pub fn from_store(store: &CaStore, spec: &CaSpec) -> Result<Known, String> {
        let dir = store.dir.join(&spec.name);
        let fail = |what: &str, e: &crate::pki::PkiError| {
            format!(
                "failed to read {what} generation of CA {} in {}: {}",
                spec.name,
                dir.display(),
                crate::error::chain(e)
            )
        };
        let mut known = Known::default();
        if let Some(c) = store.current(spec).map_err(|e| fail("the current", &e))? {
            known.add_generation(Generation::Current, &c)?;
        }
        if let Some(n) = store.next(spec).map_err(|e| fail("the next", &e))? {
            known.add_generation(Generation::Next, &n)?;
        }
        for a in store.archived(spec).map_err(|e| fail("an archived", &e))? {
            known.add_generation(Generation::Previous, &a)?;
        }
        Ok(known)
    }

    /// Adds a generation: its issuing CA and, for an imported intermediate, the anchor
    /// its bundles hold (the same label; an anchor shared with a later generation is
    /// recognised as the earlier one's, which holds it first).
    pub fn add_generation(&mut self, label: Generation, ca: &CaCert) -> Result<(), String> {
        self.add(label, ca.generation, &ca.cert_pem)?;
        if let Some(anchor) = &ca.anchor_pem {
            self.add(label, ca.generation, anchor)?;
            if let Some(added) = self.cas.last_mut() {
                added.anchor = true;
            }
        }
        Ok(())
    }

    /// Adds a generation from its root certificate (PEM).
    pub fn add(&mut self, label: Generation, number: u32, cert_pem: &str) -> Result<(), String> {
        let certs = parse_pem_certs(cert_pem.as_bytes())
            .map_err(|e| format!("root certificate of generation G{number} does not parse: {e}"))?;
        let root = certs
            .into_iter()
            .next()
            .ok_or_else(|| format!("root certificate of generation G{number} is empty"))?;
        self.cas.push(KnownCa {
            label,
            number,
            subject: root.subject,
            spki_sha256: root.spki_sha256,
            key_id: root.subject_key_id,
            der: root.der,
            anchor: false,
        });
        Ok(())
    }

    /// Whether the store knows any generation at all.
    pub fn is_empty(&self) -> bool {
        self.cas.is_empty()
    }

    pub fn get(&self, label: Generation) -> Option<&KnownCa> {
        self.cas.iter().find(|c| c.label == label)
    }

    /// The generation whose key an anchor (root or cross certificate) carries.
    pub fn anchor(&self, cert: &CertInfo) -> Option<&KnownCa> {
        self.cas.iter().find(|c| c.spki_sha256 == cert.spki_sha256)
    }

    /// The generation that signed `cert`.
    pub fn issuer_of(&self, cert: &CertInfo) -> Option<&KnownCa> {
        if let Some(aki) = &cert.authority_key_id {
            if let Some(c) = self.cas.iter().find(|c| c.key_id.as_ref() == Some(aki)) {
                return Some(c);
            }
        }
        self.cas.iter().find(|c| c.subject == cert.issuer)
    }

    /// Label and number of an optional match.
    pub fn label(found: Option<&KnownCa>) -> (Generation, Option<u32>) {
        found.map_or((Generation::Unknown, None), |c| (c.label, Some(c.number)))
    }

    /// "G2" for a known label, else the label's name.
    pub fn name(&self, label: Generation) -> String {
        self.get(label)
            .map(|c| format!("G{}", c.number))
            .unwrap_or_else(|| label.as_str().to_string())
    }
}

/// A certificate as the report shows it, with the generation it is (an anchor) or that
/// issued it (a leaf).
pub(crate) fn summary(known: &Known, c: &CertInfo, anchor: bool) -> CertSummary {
    let found = if anchor {
        known.anchor(c)
    } else {
        known.issuer_of(c)
    };
    let (generation, generation_number) = Known::label(found);
    CertSummary {
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        subject_cn: c.subject_cn.clone(),
        issuer_cn: c.issuer_cn.clone(),
        generation,
        generation_number,
        not_before: c.not_before,
        not_after: c.not_after,
        serial: c.serial_hex.clone(),
        sans: c.sans.clone(),
    }
}
