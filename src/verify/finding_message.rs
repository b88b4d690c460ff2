//! The sentence each [`Finding`] prints for people: it names the node, the file and what
//! to do, and never holds key material.

use super::finding::Finding;
#[cfg(test)]
use crate::materials::FileKind;

impl Finding {
    /// A sentence for people; `node` is the node the finding belongs to.
    pub fn message(&self, node: &str) -> String {
        use Finding::*;
        match self {
            Unreachable { message } => format!("node {node} unreachable: {message}"),
            // The message is the read's own error: it names the action, the node and the
            // path already, so they are not said twice.
            Unreadable { file, message, .. } => {
                format!("{} unreadable: {message}", file.label())
            }
            Missing { file, path } => {
                format!("{} {path} on node {node} does not exist", file.label())
            }
            Corrupt { file, path, detail } => {
                format!(
                    "{} {path} on node {node} is corrupt: {detail}",
                    file.label()
                )
            }
            StoreUnopened { file, path, detail } => {
                format!("{} {path} on node {node} does not open: {detail}", file.label())
            }
            StoreDiffers { file, path, detail } => {
                format!("{} {path} on node {node} {detail}", file.label())
            }
            OsTrustDiffers { dir, detail } => {
                format!("OS trust directory {dir} on node {node} {detail}")
            }
            EmptyBundle { path } => {
                format!("trust bundle {path} on node {node} holds no certificate")
            }
            KeyMismatch { key, cert } => {
                format!("private key {key} on node {node} does not belong to certificate {cert}")
            }
            Expired { not_after } => format!("leaf of node {node} expired at {not_after}"),
            NotYetValid { not_before } => {
                format!("leaf of node {node} is valid only from {not_before}")
            }
            Expiring {
                not_after,
                days_left,
                ..
            } => {
                format!("leaf of node {node} expires in {days_left} days ({not_after}); renew it")
            }
            CaCertExpiring {
                generation,
                subject,
                anchor,
                not_after,
                days_left,
                expired,
                ..
            } => {
                let what = if *anchor { "trust anchor" } else { "certificate" };
                let when = if *expired {
                    format!("expired at {not_after}")
                } else {
                    format!("expires in {days_left} days ({not_after})")
                };
                format!(
                    "CA {node}: the {what} of generation G{generation} ({subject}) {when};                      extend it (`certroll ca extend {node}`) or rotate (`certroll apply --rotate --ca {node}`), see docs/operations.md"
                )
            }
            AnchorExpiring {
                subject,
                not_after,
                expired: true,
            } => {
                format!("anchor {subject} in the bundle of node {node} expired at {not_after}")
            }
            AnchorExpiring {
                subject, not_after, ..
            } => {
                format!("anchor {subject} in the bundle of node {node} expires at {not_after}")
            }
            NameNotCovered { missing, .. } => {
                format!("leaf of node {node} does not cover {}", missing.join(", "))
            }
            OutdatedCaCertificate {
                subject,
                generation,
                not_after,
            } => format!(
                "bundle of node {node} trusts G{generation} ({subject}) only through an earlier certificate of its key, valid until {not_after}: the CA was extended; `certroll apply` installs the new certificate"
            ),
            ForeignAnchor { subject } => {
                format!("bundle of node {node} also trusts {subject}, a foreign anchor certroll keeps")
            }
            StrayAnchor { subject } => {
                format!("bundle of node {node} trusts {subject}, which is no generation of this CA")
            }
            DuplicateAnchor { subject } => {
                format!("bundle of node {node} holds {subject} more than once")
            }
            StaleAnchor {
                subject,
                generation,
            } => format!(
                "bundle of node {node} still trusts archived generation G{generation} ({subject})"
            ),
            MissingCurrentAnchor { generation } => {
                format!("bundle of node {node} does not trust the current generation G{generation}")
            }
            LeafNotCurrent { issuer } => {
                format!("leaf of node {node} was issued by {issuer}, not by the CA in use")
            }
            RetiredCrossCertificate {
                path,
                subject,
                generation,
            } => format!(
                "certificate chain {path} on node {node} still carries a cross certificate signed by archived generation G{generation} ({subject}); no verifier needs it: renew the leaf"
            ),
            RestartPending { run } => format!(
                "node {node} holds its pruned bundle on disk, but run {run} wrote it without a restart (restart_on_prune = false): the running process still trusts the old anchor until its next start; restart it"
            ),
            KeyMode { path, mode } => {
                format!("private key {path} on node {node} has mode {mode}; it must be 0600")
            }
            KeyInPublicFile { file, path, mode } => {
                let mode = mode
                    .as_deref()
                    .map(|m| format!(" (mode {m})"))
                    .unwrap_or_default();
                format!(
                    "{} {path}{mode} on node {node} holds a private key: whoever may read it has the key; a private key belongs only in the key file",
                    file.label()
                )
            }
            LooseKeyCopy { path, mode } => format!(
                "{path} on node {node} holds a private key and has mode {mode}: other users can read it; remove it or make it 0600"
            ),
            IrregularPhase { detail } => format!("node {node}: {detail}"),
            StoreUnavailable { message } => {
                format!("failed to read the local CA store for CA {node}: {message}")
            }
            ProofMissing { path } => format!(
                "node {node} trusts the next CA but holds no proof-key certificate at {path}"
            ),
            ProofInvalid { path, detail } => {
                format!("proof-key certificate {path} on node {node} is not valid: {detail}")
            }
            ProofStale { path } => format!(
                "proof-key certificate {path} on node {node} is left over: no rotation runs; remove it"
            ),
            LiveTls { address, detail } => {
                format!("node {node} at {address} (as reached from the node): {detail}")
            }
            LiveTlsKeyOnly { address, proof } | LiveTlsTrust { address, proof } => {
                format!("node {node} at {address} (as reached from the node): {proof}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_node_and_file() {
        let f = Finding::Missing {
            file: FileKind::TrustBundle,
            path: "/etc/tls/ca.pem".into(),
        };
        assert_eq!(
            f.message("app1"),
            "trust bundle /etc/tls/ca.pem on node app1 does not exist"
        );
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["kind"], "missing");
        assert_eq!(v["file"], "trust-bundle");
    }
}
