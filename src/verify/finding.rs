//! The problems `certroll verify` can find on a node or a CA, each with its severity and
//! a sentence that names the node, the file and what to do.
//!
//! Findings never carry key material: a key file is described by its path, its mode and
//! whether it matches the certificate, nothing more. The sentence each one prints is in
//! `finding_message.rs`.

use serde::Serialize;

use super::report::{Noun, Severity};
use crate::materials::FileKind;

/// One problem. Serialized (JSON) with a `kind` tag and the fields below.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Finding {
    /// The node could not be reached (connection refused, host key refused, auth...).
    Unreachable {
        message: String,
    },
    /// A file exists but could not be read (permission, I/O).
    Unreadable {
        file: FileKind,
        path: String,
        message: String,
    },
    Missing {
        file: FileKind,
        path: String,
    },
    /// Not PEM, not X.509, not a usable key, or no certificate in the file.
    Corrupt {
        file: FileKind,
        path: String,
        detail: String,
    },
    /// A keystore or truststore that cannot be opened: the password (from the node's
    /// `store_password_file`, or `changeit`) does not open it, or it is not PKCS#12 / JKS.
    StoreUnopened {
        file: FileKind,
        path: String,
        detail: String,
    },
    /// A keystore, truststore or combined PEM that does not hold what the PEM file it
    /// stands for holds (another leaf, a chain or anchors that differ, an anchor Java
    /// would not load).
    StoreDiffers {
        file: FileKind,
        path: String,
        detail: String,
    },
    /// The operating system's anchors directory (`os_trust`) does not hold exactly this
    /// CA's anchors of the trust bundle, one file each, 0644 (or could not be read).
    OsTrustDiffers {
        dir: String,
        detail: String,
    },
    /// The trust bundle holds no certificate.
    EmptyBundle {
        path: String,
    },
    /// The private key is not the key of the certificate.
    KeyMismatch {
        key: String,
        cert: String,
    },
    Expired {
        not_after: String,
    },
    NotYetValid {
        not_before: String,
    },
    /// The leaf expires within the warning window; `critical` within the critical one.
    Expiring {
        not_after: String,
        days_left: i64,
        #[serde(default)]
        critical: bool,
    },
    /// A CA certificate in use (the current or next generation's issuing CA, or the
    /// anchor of an imported intermediate, as the local store holds it) is expired or
    /// expires within the warning window; `critical` within the critical one.
    CaCertExpiring {
        generation: u32,
        subject: String,
        /// The trust anchor of an imported intermediate, not the issuing CA.
        anchor: bool,
        not_after: String,
        days_left: i64,
        expired: bool,
        critical: bool,
    },
    /// The bundle trusts a generation in use only through an earlier certificate of its
    /// key: `certroll ca extend` re-issued it, and a routine `apply` brings the new one.
    OutdatedCaCertificate {
        subject: String,
        generation: u32,
        /// When the certificate the bundle holds expires (RFC 3339).
        not_after: String,
    },
    /// A trust anchor is expired or expires within the warning window.
    AnchorExpiring {
        subject: String,
        not_after: String,
        expired: bool,
    },
    /// Names of the inventory the leaf does not cover. Critical when the name clients
    /// use to reach the node (its first name) is among them and the node is a server.
    NameNotCovered {
        missing: Vec<String>,
        breaks_links: bool,
    },
    /// An anchor that is no generation of this CA, with `bundle_foreign = "drop"`: trust
    /// nobody asked for.
    StrayAnchor {
        subject: String,
    },
    /// An anchor that is no generation of this CA, kept because certroll keeps the
    /// certificates it does not manage (`bundle_foreign = "keep"`, the default).
    /// Informational: never a failure.
    ForeignAnchor {
        subject: String,
    },
    /// The same anchor twice in one bundle.
    DuplicateAnchor {
        subject: String,
    },
    /// An archived generation is still trusted.
    StaleAnchor {
        subject: String,
        generation: u32,
    },
    /// No rotation runs and the bundle lacks the current generation.
    MissingCurrentAnchor {
        generation: u32,
    },
    /// The leaf was issued by an archived generation or by a CA this store does not know.
    LeafNotCurrent {
        issuer: String,
    },
    /// Key file permissions looser than 0600 (mode in octal). Critical when anyone on
    /// the host can read it.
    KeyMode {
        path: String,
        mode: String,
    },
    /// A private key in a file certroll manages that is not the key file (certificate,
    /// trust bundle, proof-key certificate): whoever may read that file may read the key.
    KeyInPublicFile {
        file: FileKind,
        path: String,
        /// The file's mode in octal, when known.
        mode: Option<String>,
    },
    /// A copy of a managed file (a backup such as `key.pem.bak` beside it) holds a private
    /// key and other users may read it.
    LooseKeyCopy {
        path: String,
        mode: String,
    },
    /// The chain still carries a cross certificate signed by an archived generation: it
    /// bridged a rotation that is over, and no verifier needs it any more.
    RetiredCrossCertificate {
        path: String,
        /// The cross certificate's subject (the generation it certified).
        subject: String,
        /// The archived generation that signed it.
        generation: u32,
    },
    /// The node's trust-prune was written without a restart (`restart_on_prune = false`):
    /// its running process still trusts the old anchor until its next start.
    RestartPending {
        /// The run that wrote it.
        run: String,
    },
    /// During a rotation, a combination of bundle and leaf no correct plan produces.
    IrregularPhase {
        detail: String,
    },
    /// The local CA store could not be read; generations are unknown.
    StoreUnavailable {
        message: String,
    },
    /// During a rotation the node trusts both generations but holds no proof-key
    /// certificate at its configured path.
    ProofMissing {
        path: String,
    },
    /// The proof-key certificate is not the next root certified by the current one.
    ProofInvalid {
        path: String,
        detail: String,
    },
    /// A proof-key certificate is still there although no rotation runs.
    ProofStale {
        path: String,
    },
    /// `--live`: the server at the node's `tls_address` does not serve its files (e.g. it
    /// was never reloaded), or could not be reached there.
    LiveTls {
        address: String,
        detail: String,
    },
    /// `--live`: the server serves its files and proved it holds the key (its handshake
    /// signature verified), but ended the handshake before its Finished because it
    /// requires a client certificate certroll could not offer. Informational: `proof`
    /// says what was proven.
    LiveTlsKeyOnly {
        address: String,
        proof: String,
    },
    /// `--live`: the server asks for client certificates without naming any CA, so its
    /// trust was tested with throwaway client certificates of the CA's generations whose
    /// keys `verify` can use; each was accepted or refused as the node's bundle says, or
    /// could not be tested. Informational: `proof` says which.
    LiveTlsTrust {
        address: String,
        proof: String,
    },
}

impl Finding {
    pub fn severity(&self) -> Severity {
        use Finding::*;
        match self {
            Unreachable { .. } | Unreadable { .. } | StoreUnavailable { .. } => Severity::Unknown,
            ForeignAnchor { .. } | LiveTlsKeyOnly { .. } | LiveTlsTrust { .. } => Severity::Ok,
            Missing { .. }
            | Corrupt { .. }
            | StoreUnopened { .. }
            | StoreDiffers { .. }
            | OsTrustDiffers { .. }
            | EmptyBundle { .. }
            | KeyMismatch { .. }
            | Expired { .. }
            | NotYetValid { .. }
            | KeyInPublicFile { .. }
            | LooseKeyCopy { .. }
            | ProofInvalid { .. }
            | LiveTls { .. } => Severity::Critical,
            NameNotCovered { breaks_links, .. } if *breaks_links => Severity::Critical,
            Expiring { critical: true, .. } => Severity::Critical,
            CaCertExpiring {
                expired, critical, ..
            } if *expired || *critical => Severity::Critical,
            KeyMode { mode, .. } if world_accessible(mode) => Severity::Critical,
            Expiring { .. }
            | CaCertExpiring { .. }
            | OutdatedCaCertificate { .. }
            | AnchorExpiring { .. }
            | NameNotCovered { .. }
            | StrayAnchor { .. }
            | DuplicateAnchor { .. }
            | StaleAnchor { .. }
            | MissingCurrentAnchor { .. }
            | LeafNotCurrent { .. }
            | RetiredCrossCertificate { .. }
            | RestartPending { .. }
            | KeyMode { .. }
            | IrregularPhase { .. }
            | ProofMissing { .. }
            | ProofStale { .. } => Severity::Warning,
        }
    }

    /// The problem's name for the summary line.
    pub fn noun(&self) -> Noun {
        use Finding::*;
        match self {
            Unreachable { .. } => ("node unreachable", "nodes unreachable"),
            Unreadable { .. } => ("file unreadable", "files unreadable"),
            Missing { .. } => ("file missing", "files missing"),
            Corrupt { .. } => ("corrupt file", "corrupt files"),
            StoreUnopened { .. } => ("store that does not open", "stores that do not open"),
            StoreDiffers { .. } => ("store unlike its PEM file", "stores unlike their PEM files"),
            OsTrustDiffers { .. } => (
                "OS trust store unlike the bundle",
                "OS trust stores unlike their bundles",
            ),
            EmptyBundle { .. } => ("empty trust bundle", "empty trust bundles"),
            KeyMismatch { .. } => ("key mismatch", "key mismatches"),
            Expired { .. } => ("expired certificate", "expired certificates"),
            NotYetValid { .. } => ("certificate not yet valid", "certificates not yet valid"),
            Expiring { .. } => ("certificate expiring", "certificates expiring"),
            CaCertExpiring { expired: true, .. } => {
                ("expired CA certificate", "expired CA certificates")
            }
            CaCertExpiring { .. } => ("CA certificate expiring", "CA certificates expiring"),
            AnchorExpiring { .. } => ("anchor expiring", "anchors expiring"),
            OutdatedCaCertificate { .. } => (
                "bundle with an outdated CA certificate",
                "bundles with an outdated CA certificate",
            ),
            NameNotCovered { .. } => ("name not covered", "names not covered"),
            StrayAnchor { .. } => ("stray anchor", "stray anchors"),
            ForeignAnchor { .. } => ("foreign anchor", "foreign anchors"),
            DuplicateAnchor { .. } => ("duplicate anchor", "duplicate anchors"),
            StaleAnchor { .. } => ("stale anchor", "stale anchors"),
            MissingCurrentAnchor { .. } => {
                ("bundle without current CA", "bundles without current CA")
            }
            LeafNotCurrent { .. } => ("leaf from another CA", "leaves from another CA"),
            RetiredCrossCertificate { .. } => {
                ("retired cross certificate", "retired cross certificates")
            }
            RestartPending { .. } => ("restart pending", "restarts pending"),
            KeyMode { .. } => ("key file too open", "key files too open"),
            KeyInPublicFile { .. } => (
                "private key in a public file",
                "private keys in public files",
            ),
            LooseKeyCopy { .. } => (
                "readable copy of a private key",
                "readable copies of private keys",
            ),
            IrregularPhase { .. } => ("irregular rollover state", "irregular rollover states"),
            StoreUnavailable { message } if message.starts_with(super::NEVER_CREATED) => {
                ("CA never created", "CAs never created")
            }
            StoreUnavailable { .. } => ("CA store unreadable", "CA stores unreadable"),
            ProofMissing { .. } => (
                "proof-key certificate missing",
                "proof-key certificates missing",
            ),
            ProofInvalid { .. } => (
                "invalid proof-key certificate",
                "invalid proof-key certificates",
            ),
            ProofStale { .. } => (
                "stale proof-key certificate",
                "stale proof-key certificates",
            ),
            LiveTls { .. } => (
                "server not serving its files",
                "servers not serving their files",
            ),
            LiveTlsKeyOnly { .. } => (
                "server proven without a complete handshake",
                "servers proven without a complete handshake",
            ),
            LiveTlsTrust { .. } => (
                "server trust tested with throwaway certificates",
                "servers' trust tested with throwaway certificates",
            ),
        }
    }
}

/// Whether an octal mode string lets "other" users read, write or execute the file.
pub fn world_accessible(mode: &str) -> bool {
    u32::from_str_radix(mode, 8).is_ok_and(|m| m & 0o007 != 0)
}

/// Mode as the findings show it, e.g. "0644".
pub fn mode_text(mode: u32) -> String {
    format!("{:04o}", mode & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_mode_severity_depends_on_who_can_read() {
        let f = |m: u32| Finding::KeyMode {
            path: "/k".into(),
            mode: mode_text(m),
        };
        assert_eq!(f(0o640).severity(), Severity::Warning);
        assert_eq!(f(0o644).severity(), Severity::Critical);
        assert_eq!(mode_text(0o100644), "0644");
    }
}
