//! The CA certificates themselves: every generation in use (the current one and, during
//! a rotation, the next one), as the local store holds them, including the trust anchor
//! of an imported intermediate. A fleet whose leaves are fresh still fails the day its
//! CA expires, so `verify` checks the CA's own validity against the same two windows
//! as the leaves ([`super::thresholds`]) and reports it once per CA, not once per node.

use time::OffsetDateTime;

use super::finding::Finding;
use super::generations::summary;
use super::generations::Known;
use super::report::rfc3339;
use super::report::{Generation, StoreCert};
use super::thresholds::Windows;
use crate::pki::{cert_pem, parse_pem_certs, CertInfo};

/// The generations in use that a bundle trusts only through an earlier certificate of
/// their key (the CA was extended since the bundle was written). `anchors` is the
/// bundle's certificates; the generation's bundle certificate is its anchor when it has
/// one (an imported intermediate), else its own certificate.
pub fn outdated(known: &Known, anchors: &[CertInfo]) -> Vec<Finding> {
    let mut out = Vec::new();
    for label in [Generation::Current, Generation::Next] {
        let entries: Vec<_> = known.cas.iter().filter(|k| k.label == label).collect();
        let Some(want) = entries.iter().find(|k| k.anchor).or(entries.first()) else {
            continue;
        };
        let same_key: Vec<&CertInfo> = anchors
            .iter()
            .filter(|a| a.spki_sha256 == want.spki_sha256)
            .collect();
        if !same_key.is_empty() && !same_key.iter().any(|a| a.der == want.der) {
            out.push(Finding::OutdatedCaCertificate {
                subject: want.subject.clone(),
                generation: want.number,
                not_after: rfc3339(same_key[0].not_after),
            });
        }
    }
    out
}

/// The in-use CA certificates of `known` and the findings about their expiry.
pub fn check(
    known: &Known,
    windows: &Windows,
    now: OffsetDateTime,
) -> (Vec<StoreCert>, Vec<Finding>) {
    let mut certs = Vec::new();
    let mut findings = Vec::new();
    let in_use = known
        .cas
        .iter()
        .filter(|k| matches!(k.label, Generation::Current | Generation::Next));
    for k in in_use {
        // Invariant: the store's certificates parsed when `Known` was built from them.
        let Some(info) = parse_pem_certs(cert_pem(&k.der).as_bytes())
            .ok()
            .and_then(|mut c| (!c.is_empty()).then(|| c.remove(0)))
        else {
            continue;
        };
        if let Some(critical) = windows.classify(info.not_after, now) {
            findings.push(Finding::CaCertExpiring {
                generation: k.number,
                subject: info.subject.clone(),
                anchor: k.anchor,
                not_after: rfc3339(info.not_after),
                days_left: (info.not_after - now).whole_days(),
                expired: info.not_after <= now,
                critical,
            });
        }
        certs.push(StoreCert {
            number: k.number,
            anchor: k.anchor,
            cert: summary(known, &info, true),
        });
    }
    (certs, findings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::CaSpec;
    use crate::verify::Severity;
    use time::Duration;

    #[test]
    fn a_ca_expiring_within_the_critical_window_is_critical_and_named_once() {
        let now = OffsetDateTime::now_utc();
        let spec = CaSpec::new("internal", "CN=Test CA");
        // A CA made 10 years ago with a 10-year validity: it expires within days.
        let ca = crate::pki::new_ca(&spec, 1, now - Duration::days(3650) + Duration::days(3))
            .expect("make a CA");
        let mut known = Known::default();
        known.add_generation(Generation::Current, &ca).unwrap();
        let windows = Windows {
            warn_within: Duration::days(30),
            critical_within: Duration::days(7),
        };
        let (certs, findings) = check(&known, &windows, now);
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].number, 1);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].severity(), Severity::Critical);
        let message = findings[0].message("internal");
        assert!(message.contains("certroll ca extend internal"), "{message}");
        let relaxed = Windows {
            warn_within: Duration::days(30),
            critical_within: Duration::days(1),
        };
        let (_, findings) = check(&known, &relaxed, now);
        assert_eq!(findings[0].severity(), Severity::Warning);
    }

    #[test]
    fn the_anchor_of_an_imported_intermediate_is_checked_too() {
        let now = OffsetDateTime::now_utc();
        let spec = CaSpec::new("internal", "CN=Test CA");
        let root = crate::pki::new_ca(&spec, 1, now - Duration::days(3650) + Duration::days(3))
            .expect("make a root");
        // The intermediate cannot outlive its root: both expire within days.
        let mid = crate::pki::new_intermediate(&spec, 1, &root, now).expect("make an intermediate");
        let mut known = Known::default();
        known.add_generation(Generation::Current, &mid).unwrap();
        let windows = Windows {
            warn_within: Duration::days(30),
            critical_within: Duration::days(7),
        };
        let (certs, findings) = check(&known, &windows, now);
        let anchors: Vec<bool> = certs.iter().map(|c| c.anchor).collect();
        assert_eq!(anchors, vec![false, true]);
        let flagged: Vec<bool> = findings
            .iter()
            .map(|f| matches!(f, Finding::CaCertExpiring { anchor: true, .. }))
            .collect();
        assert_eq!(flagged, vec![false, true], "{findings:?}");
        assert!(findings[1].message("internal").contains("trust anchor"));
    }
}
