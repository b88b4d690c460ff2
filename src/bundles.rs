//! Trust bundles certroll shares with others: a node's bundle may hold CAs certroll does not
//! manage (a partner's CA, a second internal PKI). Dropping one silently can cut a link
//! certroll knows nothing about (docs/design.md#foreign-anchors), so a written bundle is
//! composed from the node's current one: every certificate that is no generation of the CA
//! stays, in order, and only the managed anchors change, where the first of them stood.
//!
//! With `bundle_foreign = "drop"` certroll owns the whole file and the base is empty.

use crate::pki::{cert_pem, CaCert};

/// The certificates of a node's bundle that certroll keeps around its own anchors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleBase {
    /// Foreign certificates before the first managed anchor (all of them when there is
    /// none: the managed anchors then go last), PEM, one block each.
    pub before: Vec<String>,
    /// Foreign certificates after the first managed anchor, PEM.
    pub after: Vec<String>,
}

impl BundleBase {
    /// Splits a node's current bundle into the certificates certroll does not manage.
    ///
    /// `managed` holds the DER of every certificate of the CA's generations (anchors,
    /// issuing CAs, cross certificates). A certificate carrying the key of one of them
    /// is managed too: an earlier certificate of a generation that `certroll ca extend`
    /// re-issued with the same key is replaced, not kept as foreign. Blocks that are not
    /// certificates, and a file that is not PEM at all, keep nothing: there is no
    /// certificate to lose.
    pub fn from_current(current: &[u8], managed: &[Vec<u8>]) -> BundleBase {
        let Ok(blocks) = pem::parse_many(current) else {
            return BundleBase::default();
        };
        let keys: Vec<String> = managed.iter().filter_map(|m| spki(m)).collect();
        let mut base = BundleBase::default();
        let mut seen_managed = false;
        for block in blocks.iter().filter(|b| b.tag() == "CERTIFICATE") {
            let same_key = || spki(block.contents()).is_some_and(|k| keys.contains(&k));
            if managed.iter().any(|m| m.as_slice() == block.contents()) || same_key() {
                seen_managed = true;
                continue;
            }
            let pem = cert_pem(block.contents());
            if seen_managed {
                base.after.push(pem);
            } else {
                base.before.push(pem);
            }
        }
        base
    }

    /// How many foreign certificates the bundle keeps.
    pub fn len(&self) -> usize {
        self.before.len() + self.after.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bundle: the foreign certificates around `anchors` (PEM), anchors deduplicated.
    pub fn compose(&self, anchors: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut push = |pem: &str| {
            out.extend_from_slice(pem.trim_end().as_bytes());
            out.push(b'\n');
        };
        self.before.iter().for_each(|p| push(p));
        let mut written: Vec<&str> = Vec::new();
        for a in anchors {
            if !written.iter().any(|w| w.trim() == a.trim()) {
                written.push(a);
                push(a);
            }
        }
        self.after.iter().for_each(|p| push(p));
        out
    }
}

/// The SHA-256 of a certificate's public key, `None` when it does not parse.
fn spki(der: &[u8]) -> Option<String> {
    crate::pki::cert_info(der).ok().map(|c| c.spki_sha256)
}

/// DER of every certificate that belongs to the CA's generations: what a bundle may hold
/// that certroll manages.
pub fn managed_ders(generations: &[&CaCert], extra_pem: &[&str]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for g in generations {
        out.push(g.cert_der.clone());
        out.push(g.anchor_der());
    }
    for p in extra_pem {
        if let Ok(block) = pem::parse(p) {
            out.push(block.into_contents());
        }
    }
    out.retain(|d| !d.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::stand_in_cert as cert;

    #[test]
    fn keeps_foreign_certificates_in_order_around_the_managed_anchor() {
        let (p1, _) = cert(1);
        let (old, old_der) = cert(2);
        let (p3, _) = cert(3);
        let (new, _) = cert(4);
        let current = format!("{p1}{old}{p3}");
        let base = BundleBase::from_current(current.as_bytes(), &[old_der]);
        assert_eq!(base.len(), 2);
        let bundle = String::from_utf8(base.compose(&[&old, &new])).unwrap();
        let order: Vec<usize> = [&p1, &old, &new, &p3]
            .iter()
            .map(|p| bundle.find(p.trim()).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{bundle}");
    }

    #[test]
    fn without_a_managed_anchor_the_anchors_go_last_and_junk_keeps_nothing() {
        let (p1, _) = cert(1);
        let (a, _) = cert(2);
        let base = BundleBase::from_current(p1.as_bytes(), &[]);
        let bundle = String::from_utf8(base.compose(&[&a, &a])).unwrap();
        assert!(bundle.find(p1.trim()).unwrap() < bundle.find(a.trim()).unwrap());
        assert_eq!(
            bundle.matches("BEGIN CERTIFICATE").count(),
            2,
            "anchors deduplicated"
        );
        assert!(BundleBase::from_current(b"not pem \xff", &[]).is_empty());
    }
}
