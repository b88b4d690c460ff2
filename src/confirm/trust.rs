//! Proving what a server trusts when its CertificateRequest names no CA
//! (docs/design.md#what-a-confirm-proves).
//!
//! Redis, MariaDB, mosquitto and Python's ssl ask for a client certificate with an empty
//! list of CA names: the names say nothing about the bundle the server loaded. certroll
//! then asks the server itself: for every generation of the run whose key it holds, it
//! presents a throwaway client certificate of that generation ([`crate::pki::issue_throwaway`])
//! and sees it accepted or refused. A generation whose anchor the node's bundle holds must
//! be accepted (after trust-add: the new one); one it no longer holds must be refused
//! (after trust-prune: the old one). A refusal counts only beside an acceptance in the same
//! round: a server that refuses every certificate (or one whose clock is off) proves
//! nothing by refusing. A generation certroll holds no usable key of (imported
//! public-only, or an `encrypted` key `verify` does not unlock) cannot be proven either
//! way: the proof says so, and for a pruned generation that the node's own `confirm`
//! command is what is relied on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

use super::{look, same_name, subject_of, ClientCert, Expectation, LookError, Proof};
use crate::inventory::{Node, TlsTarget};
use crate::pki::{issue_throwaway, CaCert};
use crate::transport::Transport;

/// A throwaway is made again when less than this is left of it.
const REISSUE_BEFORE: time::Duration = time::Duration::minutes(2);

/// The generations a run (or `verify`) may issue throwaways from, and the throwaways made
/// so far (in memory only, one per generation, made again before it expires).
pub struct Throwaways {
    ca_name: String,
    issuers: Vec<CaCert>,
    made: Mutex<HashMap<u32, (ClientCert, OffsetDateTime)>>,
}

impl std::fmt::Debug for Throwaways {
    // Never shows a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gens: Vec<u32> = self.issuers.iter().map(|c| c.generation).collect();
        f.debug_struct("Throwaways")
            .field("ca", &self.ca_name)
            .field("generations", &gens)
            .finish_non_exhaustive()
    }
}

impl Throwaways {
    /// The generations `issuers` of CA `ca_name` (their keys as this command loaded them).
    pub fn new(ca_name: &str, issuers: Vec<CaCert>) -> Self {
        Throwaways {
            ca_name: ca_name.to_string(),
            issuers,
            made: Mutex::new(HashMap::new()),
        }
    }

    /// No generation: a server that names no CA is reported as such, nothing more.
    pub fn none() -> Self {
        Throwaways::new("", Vec::new())
    }

    /// A throwaway client certificate of `ca`, or why there is none.
    fn client_cert(&self, ca: &CaCert) -> Result<ClientCert, String> {
        let now = OffsetDateTime::now_utc();
        let mut made = self.made.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cert, not_after)) = made.get(&ca.generation) {
            if *not_after - now > REISSUE_BEFORE {
                return Ok(cert.clone());
            }
        }
        let throwaway = issue_throwaway(&self.ca_name, ca, now)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(throwaway.key_pkcs8.as_slice()));
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| format!("throwaway key: {e}"))?;
        let chain = throwaway
            .chain
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        let cert = ClientCert {
            key: Arc::new(CertifiedKey::new(chain, signer)),
            what: format!("a throwaway client certificate of G{}", ca.generation),
        };
        made.insert(ca.generation, (cert.clone(), throwaway.not_after));
        Ok(cert)
    }
}

/// What the server did with one generation's throwaway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The handshake completed, the server's check of the certificate included.
    Accepted,
    /// The server ended the handshake: how (its alert, or a closed connection).
    Refused(String),
    /// No throwaway could be shown, or its answer proves nothing: why.
    Unprovable(String),
}

/// One generation's part of a [`TrustProof`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationProof {
    pub generation: u32,
    /// The node's bundle holds the generation's anchor: the server must accept it.
    pub trusted: bool,
    pub verdict: Verdict,
}

/// What throwaway client certificates proved about a server that names no CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustProof {
    pub generations: Vec<GenerationProof>,
    /// The node's name and whether it has a `confirm` command of its own, for what is
    /// relied on when a pruned generation's refusal cannot be proven.
    pub node: String,
    pub has_confirm: bool,
}

impl TrustProof {
    /// Whether every generation got a proof (accepted or refused, as it should).
    pub fn complete(&self) -> bool {
        !self
            .generations
            .iter()
            .any(|g| matches!(g.verdict, Verdict::Unprovable(_)))
    }
}

impl std::fmt::Display for TrustProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("it names no CA in its CertificateRequest, so trust was tested with throwaway client certificates: ")?;
        let parts: Vec<String> = self
            .generations
            .iter()
            .map(|g| {
                let n = g.generation;
                match (&g.verdict, g.trusted) {
                    (Verdict::Accepted, _) => format!("G{n}'s accepted"),
                    (Verdict::Refused(how), _) => format!("G{n}'s refused ({how})"),
                    (Verdict::Unprovable(why), true) => {
                        format!("G{n}'s acceptance cannot be proven ({why})")
                    }
                    (Verdict::Unprovable(why), false) => {
                        format!("G{n}'s refusal cannot be proven ({why})")
                    }
                }
            })
            .collect();
        if parts.is_empty() {
            f.write_str("none of the CA's generations could be tested")?;
        } else {
            f.write_str(&parts.join(", "))?;
        }
        let pruned_unproven = self
            .generations
            .iter()
            .any(|g| !g.trusted && matches!(g.verdict, Verdict::Unprovable(_)));
        if pruned_unproven || self.generations.is_empty() {
            if self.has_confirm {
                f.write_str("; relying on the node's confirm command")?;
            } else {
                write!(
                    f,
                    "; node {} has no confirm command either: nothing else proves it",
                    self.node
                )?;
            }
        }
        Ok(())
    }
}

/// Why the server's trust does not match its bundle, or no look could be made.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}")]
    Mismatch(String),
    #[error("a look with {what} failed: {error}")]
    Look { what: String, error: LookError },
}

/// Whether `seen` asked for a client certificate without naming any CA while `exp` knows
/// the node's bundle: its trust must then be proven with [`prove`].
pub fn names_say_nothing(exp: &Expectation, ca_names: Option<&Vec<Vec<u8>>>) -> bool {
    ca_names.is_some_and(Vec::is_empty) && !exp.bundle_path.is_empty()
}

/// Shows the server at `target` a throwaway of every generation of `throwaways` and
/// checks its verdicts against the node's bundle (`exp`). Each look ends by the time
/// `look_timeout` gives when it starts (what is left of a confirm's deadline, or
/// `verify`'s `--probe-timeout`).
pub fn prove(
    transport: &dyn Transport,
    node: &Node,
    target: &TlsTarget,
    exp: &Expectation,
    throwaways: &Throwaways,
    look_timeout: &dyn Fn() -> Duration,
) -> Result<TrustProof, TrustError> {
    let mut generations: Vec<(&CaCert, bool)> = throwaways
        .issuers
        .iter()
        .map(|ca| (ca, holds(exp, ca)))
        .collect();
    // Trusted generations first: without an acceptance, a refusal proves nothing.
    generations.sort_by_key(|(ca, trusted)| (!trusted, ca.generation));
    let mut proofs = Vec::new();
    for (ca, trusted) in generations {
        let verdict = match throwaways.client_cert(ca) {
            Err(why) => Verdict::Unprovable(why),
            Ok(cert) => {
                let timeout = look_timeout();
                let seen =
                    look(transport, node, target, timeout, Some(&cert)).map_err(|error| {
                        TrustError::Look {
                            what: cert.what.clone(),
                            error,
                        }
                    })?;
                match seen.proof {
                    Proof::Complete(_) => Verdict::Accepted,
                    Proof::KeyOnly { ended, .. } => Verdict::Refused(ended),
                }
            }
        };
        let n = ca.generation;
        let bundle = &exp.bundle_path;
        match (&verdict, trusted) {
            (Verdict::Refused(how), true) => {
                return Err(TrustError::Mismatch(format!(
                    "it names no CA in its CertificateRequest and refuses a throwaway client \
                     certificate of G{n} ({how}), whose anchor its trust bundle {bundle} holds: \
                     it has not loaded that bundle"
                )))
            }
            (Verdict::Accepted, false) => {
                return Err(TrustError::Mismatch(format!(
                    "it names no CA in its CertificateRequest and still accepts a throwaway \
                     client certificate of G{n}, which its trust bundle {bundle} no longer \
                     holds: it has not loaded that bundle"
                )))
            }
            _ => {}
        }
        proofs.push(GenerationProof {
            generation: n,
            trusted,
            verdict,
        });
    }
    let accepted = proofs.iter().any(|g| g.verdict == Verdict::Accepted);
    if !accepted {
        for g in proofs.iter_mut().filter(|g| !g.trusted) {
            if matches!(g.verdict, Verdict::Refused(_)) {
                g.verdict = Verdict::Unprovable(
                    "no throwaway of a generation its bundle holds could be shown accepted, so \
                     a refusal says nothing"
                        .into(),
                );
            }
        }
    }
    Ok(TrustProof {
        generations: proofs,
        node: node.name.clone(),
        has_confirm: node.confirm.is_some(),
    })
}

/// Whether the node's bundle (as `exp` read it) holds the anchor of `ca`.
fn holds(exp: &Expectation, ca: &CaCert) -> bool {
    subject_of(&ca.anchor_der()).is_ok_and(|anchor| {
        exp.accepted
            .iter()
            .any(|name| same_name(&name.der, &anchor.der))
    })
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
