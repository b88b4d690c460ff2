//! certroll's own TLS confirm: after a node's reload, prove with a real handshake that
//! its software took the change (docs/design.md#what-a-confirm-proves).
//!
//! For a node with `tls_address`, certroll connects to that address *from the node*
//! (through its transport: an SSH direct-tcpip channel, or directly for a local node),
//! runs the `starttls` preamble, and observes one handshake ([`handshake::observe`]):
//! the served chain counts only once the server's handshake signature verified with the
//! served leaf's key, so the server holds that certificate's private key. It then checks
//! the observation against an [`Expectation`] built from the node's files as they are on
//! disk now:
//! - the served chain starts with the node's certificate (after a leaf-swap: the one
//!   just written);
//! - if the server asks for client certificates, the CA names it sends include the
//!   subject of every anchor of the node's trust bundle (after trust-add: the new one)
//!   and none of the CA generations certroll knows that the bundle no longer holds
//!   (after trust-prune: the old one);
//! - if it asks with no CA name at all (Redis, MariaDB, mosquitto), the names say nothing:
//!   a throwaway client certificate of each generation whose key certroll holds must be
//!   accepted or refused as the bundle says ([`trust`]).
//!
//! A step polls until its confirm deadline; `verify --live` looks once. Each look (connect
//! and handshake) has one deadline, and SIGINT or SIGTERM ends it at once.

use std::time::{Duration, Instant};

use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::interrupt::Signal;
use crate::inventory::{Node, TlsTarget};
use crate::transport::{Transport, TransportError};

pub mod deadline;
pub mod handshake;
pub mod recorder;
mod starttls;
pub mod trust;

pub use handshake::{identity, observe, Observation, ObserveError, Proof};
pub use recorder::{ClientCert, Signed};
pub use trust::{Throwaways, TrustError, TrustProof};

/// First pause between two attempts; doubles up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(1);
/// Longest single attempt (connect + handshake), whatever the deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A certificate authority by name, as a server would list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaName {
    /// DER of the Name (the SEQUENCE), as in a CertificateRequest.
    pub der: Vec<u8>,
    /// RFC 4514-ish text, for messages.
    pub text: String,
}

/// What a node that took its files must show in a handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expectation {
    /// The served chain must start with this certificate (DER), read from `cert_path`.
    pub leaf: Option<Vec<u8>>,
    pub cert_path: String,
    /// Anchors of the node's trust bundle (read from `bundle_path`): a server that asks
    /// for client certificates must name each of them.
    pub accepted: Vec<CaName>,
    pub bundle_path: String,
    /// CA generations certroll knows that the bundle does not hold: a server must not
    /// name them any more.
    pub rejected: Vec<CaName>,
}

impl Expectation {
    /// Builds the expectation from the node's files: `cert` (its first certificate is the
    /// leaf), `bundle` (every certificate is an anchor) and the root certificates (DER)
    /// of the CA generations certroll knows, of which those absent from the bundle must
    /// be refused. A missing file sets no expectation for its part.
    pub fn from_files(
        cert: Option<(&str, &[u8])>,
        bundle: Option<(&str, &[u8])>,
        generations: &[&[u8]],
    ) -> Result<Self, String> {
        let mut exp = Expectation::default();
        if let Some((path, pem)) = cert {
            exp.cert_path = path.to_string();
            exp.leaf = pem_certs(pem)
                .map_err(|e| format!("certificate {path}: {e}"))?
                .into_iter()
                .next();
        }
        if let Some((path, pem)) = bundle {
            exp.bundle_path = path.to_string();
            for der in pem_certs(pem).map_err(|e| format!("trust bundle {path}: {e}"))? {
                exp.accepted.push(subject_of(&der)?);
            }
            for der in generations {
                let name = subject_of(der)?;
                if !exp.accepted.iter().any(|a| same_name(&a.der, &name.der)) {
                    exp.rejected.push(name);
                }
            }
        }
        Ok(exp)
    }

    /// Why `seen` falls short of this expectation; `None` when it meets it.
    pub fn mismatch(&self, seen: &Observation) -> Option<String> {
        if let Some(leaf) = &self.leaf {
            match seen.chain.first() {
                Some(served) if served == leaf => {}
                Some(served) => {
                    return Some(format!(
                        "it serves {}, not the certificate in {} ({})",
                        describe_cert(served),
                        self.cert_path,
                        describe_cert(leaf)
                    ))
                }
                None => return Some("it served no certificate".into()),
            }
        }
        let names = seen.ca_names.as_ref()?;
        // No name at all says nothing of the bundle: `trust::prove` asks the server.
        if names.is_empty() {
            return None;
        }
        let listed = |n: &CaName| names.iter().any(|d| same_name(d, &n.der));
        if let Some(missing) = self.accepted.iter().find(|n| !listed(n)) {
            return Some(format!(
                "it asks for client certificates from {} but not from {} of its trust bundle {}: \
                 it has not loaded that bundle",
                list_names(names),
                missing.text,
                self.bundle_path
            ));
        }
        if let Some(stale) = self.rejected.iter().find(|n| listed(n)) {
            return Some(format!(
                "it still asks for client certificates from {}, which its trust bundle {} no \
                 longer holds: it has not loaded that bundle",
                stale.text, self.bundle_path
            ));
        }
        None
    }
}

/// Why a node's TLS could not be confirmed.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfirmError {
    /// A transport failure that is not worth another attempt (host key, authentication).
    #[error(transparent)]
    Transport(TransportError),
    #[error(
        "node {node} did not confirm at {address} within {within}: {attempts} handshake(s), last: {last}"
    )]
    NotConfirmed {
        node: String,
        address: String,
        within: String,
        attempts: u32,
        last: String,
    },
    #[error(
        "interrupted by {} while node {node} had not confirmed its TLS at {address} yet",
        .signal.name()
    )]
    Interrupted {
        node: String,
        address: String,
        signal: Signal,
    },
}

/// Connects to the node's `tls_address` through its transport and observes one handshake.
/// With `client` (the node's own pair, see [`identity`], or a throwaway), a server that
/// asks for a client certificate gets it, so the look is a complete handshake in its logs.
/// `timeout` is the deadline of the whole look, connection and handshake: a server that
/// sends a byte now and then cannot hold it longer.
pub fn look(
    transport: &dyn Transport,
    node: &Node,
    target: &TlsTarget,
    timeout: Duration,
    client: Option<&ClientCert>,
) -> Result<Observation, LookError> {
    let deadline = Instant::now() + timeout;
    if let Some(signal) = crate::interrupt::requested() {
        return Err(LookError::Interrupted(signal));
    }
    let mut stream = transport
        .open_stream(&target.host, target.port, timeout)
        .map_err(LookError::Transport)?;
    observe(
        &mut *stream,
        node.server_name(),
        target.starttls,
        client.cloned(),
        deadline,
    )
    .map_err(|e| match e {
        ObserveError::Interrupted(signal) => LookError::Interrupted(signal),
        ObserveError::Deadline { received } => LookError::Handshake(format!(
            "no complete TLS handshake within {} (the server had sent {received} byte(s))",
            crate::duration::format(timeout)
        )),
        e => LookError::Handshake(e.to_string()),
    })
}

/// One failed look.
#[derive(Debug, thiserror::Error)]
pub enum LookError {
    #[error(transparent)]
    Transport(TransportError),
    #[error("{0}")]
    Handshake(String),
    #[error("interrupted by {}", .0.name())]
    Interrupted(Signal),
}

/// What a confirm proved: the look that met the expectation and, for a server that
/// names no CA, what throwaway client certificates proved of its trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub proof: Proof,
    pub trust: Option<TrustProof>,
}

impl std::fmt::Display for Confirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.proof)?;
        if let Some(trust) = &self.trust {
            write!(f, "; {trust}")?;
        }
        Ok(())
    }
}

/// Looks until the node meets `exp` or `node.confirm_timeout` runs out; returns what the
/// looks that met it proved. A server that asks for client certificates from no CA in
/// particular is shown throwaways of `throwaways` ([`trust::prove`]). SIGINT or SIGTERM
/// ends the wait at once.
pub fn confirm_tls(
    transport: &dyn Transport,
    node: &Node,
    target: &TlsTarget,
    exp: &Expectation,
    identity: Option<&ClientCert>,
    throwaways: &Throwaways,
) -> Result<Confirmed, TlsConfirmError> {
    let deadline = Instant::now() + node.confirm_timeout;
    let mut delay = FIRST_DELAY;
    let mut attempts = 0u32;
    let interrupted = |signal| TlsConfirmError::Interrupted {
        node: node.name.clone(),
        address: target.address(),
        signal,
    };
    loop {
        attempts += 1;
        let look_timeout = || {
            let left = deadline.saturating_duration_since(Instant::now());
            left.clamp(Duration::from_millis(200), ATTEMPT_TIMEOUT)
        };
        let timeout = look_timeout();
        let failed = |e: LookError| match e {
            LookError::Interrupted(signal) => Err(interrupted(signal)),
            LookError::Transport(e) if !e.is_transient() => Err(TlsConfirmError::Transport(e)),
            e => Ok(e.to_string()),
        };
        let last = match look(transport, node, target, timeout, identity) {
            Ok(seen) => match exp.mismatch(&seen) {
                None if trust::names_say_nothing(exp, seen.ca_names.as_ref()) => {
                    match trust::prove(transport, node, target, exp, throwaways, &look_timeout) {
                        Ok(proof) => {
                            return Ok(Confirmed {
                                proof: seen.proof,
                                trust: Some(proof),
                            })
                        }
                        Err(TrustError::Look { what, error }) => {
                            format!("a look with {what} failed: {}", failed(error)?)
                        }
                        Err(e) => e.to_string(),
                    }
                }
                None => {
                    return Ok(Confirmed {
                        proof: seen.proof,
                        trust: None,
                    })
                }
                Some(why) => why,
            },
            Err(e) => failed(e)?,
        };
        if let Some(signal) = crate::interrupt::requested() {
            return Err(interrupted(signal));
        }
        if Instant::now() + delay >= deadline {
            return Err(TlsConfirmError::NotConfirmed {
                node: node.name.clone(),
                address: target.address(),
                within: crate::duration::format(node.confirm_timeout),
                attempts,
                last,
            });
        }
        if let Some(signal) = pause(delay) {
            return Err(interrupted(signal));
        }
        delay = (delay * 2).min(MAX_DELAY);
    }
}

/// Sleeps `delay` in slices of at most [`deadline::SLICE`]; the signal that cut it short,
/// if one did.
fn pause(delay: Duration) -> Option<Signal> {
    let until = Instant::now() + delay;
    // Bounded: every round sleeps a slice or returns.
    loop {
        if let Some(signal) = crate::interrupt::requested() {
            return Some(signal);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        std::thread::sleep(left.min(deadline::SLICE));
    }
}

/// Every CERTIFICATE block of a PEM file, DER.
fn pem_certs(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(pem).map_err(|e| format!("not valid PEM: {e}"))?;
    Ok(blocks
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect())
}

/// The subject of a certificate, as a server lists it.
fn subject_of(der: &[u8]) -> Result<CaName, String> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not valid X.509: {e}"))?;
    let subject = &cert.tbs_certificate.subject;
    Ok(CaName {
        der: subject.as_raw().to_vec(),
        text: subject.to_string(),
    })
}

/// Two DER names are the same name, with or without the outer SEQUENCE header.
fn same_name(a: &[u8], b: &[u8]) -> bool {
    a == b || strip_sequence(a) == Some(b) || Some(a) == strip_sequence(b)
}

fn strip_sequence(der: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let body = if len < 0x80 {
        rest
    } else {
        rest.get(usize::from(len & 0x7f)..)?
    };
    (body.len() < der.len()).then_some(body)
}

fn name_text(der: &[u8]) -> String {
    match X509Name::from_der(der) {
        Ok((_, name)) => name.to_string(),
        Err(_) => format!("<{} bytes that are not a name>", der.len()),
    }
}

fn list_names(names: &[Vec<u8>]) -> String {
    let texts: Vec<String> = names
        .iter()
        .map(|n| format!("[{}]", name_text(n)))
        .collect();
    texts.join(", ")
}

fn describe_cert(der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, c)) => format!(
            "{} serial {} issued by {}",
            c.subject(),
            hex::encode(c.raw_serial()),
            c.issuer()
        ),
        Err(_) => format!("<{} bytes that are not a certificate>", der.len()),
    }
}

#[cfg(test)]
mod tests;
