//! What `certroll verify` found: per node, per link, per CA, and how bad it is.
//!
//! Every finding has a [`Severity`]; the worst one decides the exit code. Precedence is
//! `critical` > `unknown` > `warning` > `ok`: a link that would fail is reported as
//! critical even when another node could not be read, and an unreadable node hides an
//! OK or a warning, because nothing can be promised about what was not seen.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::exit;
use crate::inventory::NodeId;
use crate::tls::{FailureKind, Side};

/// How bad a finding is, in precedence order (the derived `Ord` is the precedence).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Ok,
    Warning,
    /// Something could not be checked (node unreachable, file unreadable).
    Unknown,
    /// A link would fail, a key does not match, a certificate is expired or corrupt.
    Critical,
}

impl Severity {
    /// The process exit code (monitoring-plugin convention, see [`crate::exit`]).
    pub fn exit_code(self) -> i32 {
        match self {
            Severity::Ok => exit::VERIFY_OK,
            Severity::Warning => exit::VERIFY_WARNING,
            Severity::Unknown => exit::VERIFY_UNKNOWN,
            Severity::Critical => exit::VERIFY_CRITICAL,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "OK",
            Severity::Warning => "WARNING",
            Severity::Unknown => "UNKNOWN",
            Severity::Critical => "CRITICAL",
        }
    }
}

/// Which CA generation a certificate belongs to, relative to the local CA store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Generation {
    Current,
    /// The generation being rolled out.
    Next,
    /// An archived generation.
    Previous,
    /// Not a generation of this CA's store.
    Unknown,
}

impl Generation {
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::Current => "current",
            Generation::Next => "next",
            Generation::Previous => "previous",
            Generation::Unknown => "unknown",
        }
    }
}

/// Where a node stands in the rollover (docs/design.md#safe-order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// No rotation runs: bundle {current}, leaf from current.
    Current,
    /// No rotation runs, but the node still trusts or presents another generation.
    Stale,
    /// Rotation: bundle {current}, leaf from current (nothing done yet).
    Old,
    /// Rotation: bundle {current, next}, leaf from current.
    TrustingBoth,
    /// Rotation: leaf from next, bundle still holds current.
    Switched,
    /// Rotation: bundle {next} only, leaf from next.
    Pruned,
    /// Rotation: a combination no correct plan produces (e.g. bundle {next}, leaf current).
    Irregular,
    /// The node's files could not be read or parsed.
    Unknown,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Current => "current",
            Phase::Stale => "stale",
            Phase::Old => "old",
            Phase::TrustingBoth => "trusting-both",
            Phase::Switched => "switched",
            Phase::Pruned => "pruned",
            Phase::Irregular => "irregular",
            Phase::Unknown => "unknown",
        }
    }
}

/// A certificate as the reports show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    /// The first common names of the subject and the issuer ("" when none).
    pub subject_cn: String,
    pub issuer_cn: String,
    /// For an anchor, its own generation; for a leaf, its issuer's.
    pub generation: Generation,
    /// The generation number (1, 2...) when known.
    pub generation_number: Option<u32>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The serial number, lowercase hex without separators.
    pub serial: String,
    pub sans: Vec<String>,
}

/// A CA certificate of the local store (see [`CaReport::ca_certs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCert {
    /// The generation's number (1, 2...).
    pub number: u32,
    /// The trust anchor of an imported intermediate, rather than the issuing CA itself.
    pub anchor: bool,
    pub cert: CertSummary,
}

/// One node's state for one CA.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub node: NodeId,
    pub name: String,
    pub phase: Phase,
    /// The trust bundle's certificates, in file order.
    pub anchors: Vec<CertSummary>,
    /// The leaf (first certificate of the chain file).
    pub leaf: Option<CertSummary>,
    /// Certificates served after the leaf (e.g. a cross certificate).
    pub chain_extra: usize,
    pub key_mode: Option<u32>,
    /// The keystores, truststores and combined PEM files that were checked.
    pub stores: Vec<StoreChecked>,
    pub findings: Vec<super::Finding>,
}

/// A store of a node that `verify` checked (its findings are the node's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreChecked {
    pub file: crate::materials::FileKind,
    pub path: String,
    /// Where it was opened: `control` (read and opened by certroll) or `node` (opened on
    /// the node, whose key never leaves it: only its public material was read).
    pub opened_on: &'static str,
}

impl NodeReport {
    pub fn severity(&self) -> Severity {
        worst(self.findings.iter().map(|f| f.severity()))
    }
}

/// The outcome of a link's in-memory handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum LinkResult {
    Ok,
    Failed {
        side: Side,
        kind: FailureKind,
        detail: String,
    },
    /// Not attempted: a side's files could not be read.
    Skipped {
        reason: String,
    },
}

/// The outcome of a `--live` probe run on the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveResult {
    pub command: String,
    /// Exit status; `None` if killed, timed out, or the command could not be run.
    pub status: Option<i32>,
    /// First line of standard output (else of standard error).
    pub first_line: String,
    /// Why the probe could not be run at all.
    pub error: Option<String>,
}

impl LiveResult {
    pub fn ok(&self) -> bool {
        self.status == Some(0)
    }
}

/// One link of one CA.
#[derive(Debug, Clone)]
pub struct LinkReport {
    pub client: NodeId,
    pub server: NodeId,
    pub client_name: String,
    pub server_name: String,
    /// The name the client checks in the server's certificate.
    pub tls_name: String,
    pub mutual: bool,
    pub result: LinkResult,
    /// A rollover step done too early, explaining the failure (see `links.rs`).
    pub order_violations: Vec<String>,
    pub live: Option<LiveResult>,
}

impl LinkReport {
    pub fn severity(&self) -> Severity {
        let handshake = match self.result {
            LinkResult::Ok => Severity::Ok,
            LinkResult::Failed { .. } => Severity::Critical,
            LinkResult::Skipped { .. } => Severity::Unknown,
        };
        let live = match &self.live {
            Some(l) if !l.ok() => Severity::Critical,
            _ => Severity::Ok,
        };
        handshake.max(live)
    }
}

/// Everything checked for one CA.
#[derive(Debug, Clone)]
pub struct CaReport {
    pub ca: String,
    pub current: Option<u32>,
    pub next: Option<u32>,
    pub previous: Vec<u32>,
    /// Problems of the CA as a whole (e.g. the local store could not be read, a CA
    /// certificate in use expires).
    pub findings: Vec<super::Finding>,
    /// The certificates of the generations in use (current and next) as the local store
    /// holds them: each issuing CA and, for an imported intermediate, its anchor.
    pub ca_certs: Vec<StoreCert>,
    pub nodes: Vec<NodeReport>,
    pub links: Vec<LinkReport>,
}

impl CaReport {
    pub fn rotating(&self) -> bool {
        self.next.is_some()
    }

    /// The invariant holds: every link handshakes. `None` when a link could not be tried.
    pub fn safe(&self) -> Option<bool> {
        if self
            .links
            .iter()
            .any(|l| matches!(l.result, LinkResult::Failed { .. }))
        {
            Some(false)
        } else if self.links.iter().any(|l| l.result != LinkResult::Ok) {
            None
        } else {
            Some(true)
        }
    }

    pub fn severity(&self) -> Severity {
        let ca = self.findings.iter().map(|f| f.severity());
        let nodes = self.nodes.iter().map(NodeReport::severity);
        let links = self.links.iter().map(LinkReport::severity);
        worst(ca.chain(nodes).chain(links))
    }
}

/// The whole verification.
#[derive(Debug, Clone)]
pub struct Report {
    pub checked_at: OffsetDateTime,
    pub cas: Vec<CaReport>,
}

impl Report {
    pub fn severity(&self) -> Severity {
        worst(self.cas.iter().map(CaReport::severity))
    }

    pub fn exit_code(&self) -> i32 {
        self.severity().exit_code()
    }

    /// Distinct nodes checked, across CAs.
    pub fn node_count(&self) -> usize {
        let mut ids: Vec<NodeId> = self
            .cas
            .iter()
            .flat_map(|c| c.nodes.iter().map(|n| n.node))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    pub fn link_count(&self) -> usize {
        self.cas.iter().map(|c| c.links.len()).sum()
    }

    /// One line: `verify: 8 nodes, 10 links — OK` or `CRITICAL: 2 links would fail, ...`.
    pub fn summary(&self) -> String {
        let head = format!(
            "verify: {}, {}",
            count(self.node_count(), ("node", "nodes")),
            count(self.link_count(), ("link", "links"))
        );
        let sev = self.severity();
        if sev == Severity::Ok {
            return format!("{head} — OK");
        }
        format!("{head} — {}: {}", sev.as_str(), self.problems().join(", "))
    }

    /// Counted problems, worst first, e.g. "2 links would fail", "1 key mismatch".
    pub fn problems(&self) -> Vec<String> {
        let mut counts: Vec<(Severity, Noun, usize)> = Vec::new();
        let mut bump =
            |sev: Severity, what: Noun| match counts.iter_mut().find(|(_, w, _)| w.0 == what.0) {
                Some(entry) => entry.2 += 1,
                None => counts.push((sev, what, 1)),
            };
        for ca in &self.cas {
            for l in &ca.links {
                match l.result {
                    LinkResult::Failed { .. } => {
                        bump(Severity::Critical, ("link would fail", "links would fail"))
                    }
                    LinkResult::Skipped { .. } => {
                        bump(Severity::Unknown, ("link unchecked", "links unchecked"))
                    }
                    LinkResult::Ok => {}
                }
                if l.live.as_ref().is_some_and(|r| !r.ok()) {
                    bump(
                        Severity::Critical,
                        ("live probe failed", "live probes failed"),
                    );
                }
            }
            let nodes = ca.nodes.iter().flat_map(|n| n.findings.iter());
            for f in ca.findings.iter().chain(nodes) {
                if f.severity() != Severity::Ok {
                    bump(f.severity(), f.noun());
                }
            }
        }
        // Stable: equal severities keep the order of first appearance.
        counts.sort_by_key(|c| std::cmp::Reverse(c.0));
        counts
            .into_iter()
            .map(|(_, noun, n)| count(n, noun))
            .collect()
    }
}

/// A problem's name, singular and plural: ("key mismatch", "key mismatches").
pub type Noun = (&'static str, &'static str);

/// `1 key mismatch`, `2 key mismatches`.
fn count(n: usize, (one, many): Noun) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The worst severity of a list (OK when empty).
pub fn worst(it: impl Iterator<Item = Severity>) -> Severity {
    it.max().unwrap_or(Severity::Ok)
}

/// RFC 3339 text of a time (falls back to the debug form, which cannot happen for
/// certificate times within year 0..9999).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_critical_unknown_warning_ok() {
        use Severity::*;
        assert_eq!(worst([Ok, Warning, Unknown].into_iter()), Unknown);
        assert_eq!(worst([Unknown, Critical, Warning].into_iter()), Critical);
        assert_eq!(worst(std::iter::empty()), Ok);
        assert_eq!(Critical.exit_code(), 2);
        assert_eq!(Unknown.exit_code(), 3);
        assert_eq!(Warning.exit_code(), 1);
    }
}
