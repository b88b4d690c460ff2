//! The checks `certroll verify` makes on each node, by name, and which check each finding
//! belongs to. A report lists only what went wrong; monitoring wants a result for every
//! check, including those that passed, so that an alert can say "the key check of node
//! app1 fails" and a dashboard can show a full grid (`certroll_verify_check_status`).
//!
//! The mapping is an exhaustive `match`: a new kind of finding does not compile until it
//! is given its check.

use super::finding::Finding;
use super::report::{worst, NodeReport, Severity};

/// One check of a node, or of the CA as a whole (`Store`, `CaCertificate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// The node could be reached and its files read at all.
    Reachable,
    /// The trust bundle, certificate and key exist and parse.
    Files,
    /// The private key is the certificate's.
    KeyMatch,
    /// The leaf is within its validity, outside the expiry windows.
    Validity,
    /// The leaf covers the node's names.
    Names,
    /// The leaf comes from the CA in use, without retired cross certificates.
    Issuer,
    /// The bundle trusts exactly the generations it should, none of them expiring.
    Anchors,
    /// The key file's mode, and no private key in a public file or a loose copy.
    KeyProtection,
    /// The node's rollover state and its proof-key certificate.
    Rollover,
    /// `--live`: the server at `tls_address` serves its files.
    LiveTls,
    /// The keystores, truststores and combined PEM files open with the node's password and
    /// hold what the PEM files they stand for hold.
    Keystores,
    /// The local CA store could be read.
    Store,
    /// The CA certificates in use are valid, outside the expiry windows.
    CaCertificate,
}

impl Check {
    /// The checks every node report gets a result for, in display order.
    pub const NODE: [Check; 11] = [
        Check::Reachable,
        Check::Files,
        Check::KeyMatch,
        Check::Validity,
        Check::Names,
        Check::Issuer,
        Check::Anchors,
        Check::KeyProtection,
        Check::Rollover,
        Check::LiveTls,
        Check::Keystores,
    ];

    /// The checks of the CA as a whole.
    pub const CA: [Check; 2] = [Check::Store, Check::CaCertificate];

    /// The name used in metrics (`check="key_match"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Reachable => "reachable",
            Check::Files => "files",
            Check::KeyMatch => "key_match",
            Check::Validity => "validity",
            Check::Names => "names",
            Check::Issuer => "issuer",
            Check::Anchors => "anchors",
            Check::KeyProtection => "key_protection",
            Check::Rollover => "rollover",
            Check::LiveTls => "live_tls",
            Check::Keystores => "keystores",
            Check::Store => "store",
            Check::CaCertificate => "ca_certificate",
        }
    }

    /// The check a finding is the result of.
    pub fn of(f: &Finding) -> Check {
        use Finding::*;
        match f {
            Unreachable { .. } => Check::Reachable,
            Unreadable { .. } | Missing { .. } | Corrupt { .. } | EmptyBundle { .. } => {
                Check::Files
            }
            KeyMismatch { .. } => Check::KeyMatch,
            Expired { .. } | NotYetValid { .. } | Expiring { .. } => Check::Validity,
            NameNotCovered { .. } => Check::Names,
            LeafNotCurrent { .. } | RetiredCrossCertificate { .. } => Check::Issuer,
            AnchorExpiring { .. }
            | OutdatedCaCertificate { .. }
            | StrayAnchor { .. }
            | ForeignAnchor { .. }
            | DuplicateAnchor { .. }
            | StaleAnchor { .. }
            | MissingCurrentAnchor { .. } => Check::Anchors,
            KeyMode { .. } | KeyInPublicFile { .. } | LooseKeyCopy { .. } => Check::KeyProtection,
            IrregularPhase { .. }
            | ProofMissing { .. }
            | ProofInvalid { .. }
            | ProofStale { .. }
            | RestartPending { .. } => Check::Rollover,
            LiveTls { .. } | LiveTlsKeyOnly { .. } | LiveTlsTrust { .. } => Check::LiveTls,
            StoreUnopened { .. } | StoreDiffers { .. } | OsTrustDiffers { .. } => Check::Keystores,
            StoreUnavailable { .. } => Check::Store,
            CaCertExpiring { .. } => Check::CaCertificate,
        }
    }

    /// The result of this check among `findings`: the worst severity of its findings,
    /// OK when it has none.
    pub fn result(self, findings: &[Finding]) -> Severity {
        worst(
            findings
                .iter()
                .filter(|f| Check::of(f) == self)
                .map(Finding::severity),
        )
    }
}

/// Every node check with its result.
pub fn node_results(node: &NodeReport) -> Vec<(Check, Severity)> {
    Check::NODE
        .iter()
        .map(|&c| (c, c.result(&node.findings)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_without_findings_passes_every_check_and_a_mismatch_fails_only_key_match() {
        let mut node = NodeReport {
            node: 0,
            name: "app1".into(),
            phase: crate::verify::Phase::Current,
            anchors: Vec::new(),
            leaf: None,
            chain_extra: 0,
            key_mode: None,
            stores: Vec::new(),
            findings: Vec::new(),
        };
        assert!(node_results(&node).iter().all(|(_, s)| *s == Severity::Ok));
        node.findings.push(Finding::KeyMismatch {
            key: "/k".into(),
            cert: "/c".into(),
        });
        let failed: Vec<_> = node_results(&node)
            .into_iter()
            .filter(|(_, s)| *s != Severity::Ok)
            .collect();
        assert_eq!(failed, vec![(Check::KeyMatch, Severity::Critical)]);
    }
}
