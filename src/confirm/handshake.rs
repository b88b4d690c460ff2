//! One observing TLS handshake with a live server: what chain it serves, proven by the
//! server's handshake signature, and, if it asks for a client certificate, which CA names
//! it says it accepts.
//!
//! This is an *observation*, not a validation: the served chain is not checked against
//! any anchor (a server still on the old leaf must be reported as such, not as "unknown
//! issuer"). It is an observation of a server that holds the served certificate's key,
//! though: the chain counts only once the server's handshake signature (TLS 1.2
//! ServerKeyExchange, TLS 1.3 CertificateVerify) verified with the served leaf's public
//! key ([`super::recorder`]). A server that sends a copy of the certificate without its
//! key, or the new certificate with the old key, is refused.
//!
//! The handshake then goes on as far as the server lets it. When the server asks for a
//! client certificate, the node's own certificate and key are offered if the caller has
//! them ([`identity`]): a server that trusts its own CA then completes the handshake
//! instead of logging a failed client. Without them no certificate is offered, and a TLS
//! 1.2 server that requires one aborts after its CertificateRequest, before its Finished:
//! the observation then says that only the chain and the key were proven
//! ([`Proof::KeyOnly`]). (A TLS 1.3 server sends its Finished before it sees the client's
//! certificate, so the handshake completes on certroll's side.)
//!
//! The whole handshake, the `starttls` preamble ([`super::starttls`]) and the closing
//! included, ends by one deadline and at the first SIGINT or SIGTERM ([`super::deadline`]).

use std::io::{self, Write};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ClientConnection};

use super::deadline::{Bounded, Cut};
use super::recorder::{Recorder, Signed};
use crate::interrupt::Signal;
use crate::inventory::Starttls;
use crate::transport::ByteStream;

pub use super::recorder::identity;

/// What a server showed in one handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The served chain, leaf first, DER; its leaf's key signed the handshake.
    pub chain: Vec<Vec<u8>>,
    /// `None` when the server did not ask for a client certificate; otherwise the
    /// distinguished names (DER) of its CertificateRequest's certificate_authorities.
    pub ca_names: Option<Vec<Vec<u8>>>,
    /// How far the handshake went.
    pub proof: Proof,
}

/// What one observation proved about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The server's signature verified with the served leaf's key, and the handshake
    /// completed (the server's Finished verified).
    Complete(Signed),
    /// The server's signature verified with the served leaf's key; then the server, which
    /// had asked for a client certificate, ended the handshake before its Finished.
    /// `ended` says how (its alert, or a closed connection).
    KeyOnly { signed: Signed, ended: String },
}

impl std::fmt::Display for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proof::Complete(signed) => {
                write!(f, "chain, key and handshake proven ({})", signed.version())
            }
            Proof::KeyOnly { signed, ended } => write!(
                f,
                "chain and key proven ({} signature); handshake aborted by the server after \
                 CertificateRequest ({ended})",
                signed.message()
            ),
        }
    }
}

/// Why no observation could be made.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Protocol(String),
    /// The deadline passed first; `received` bytes had come from the server by then.
    #[error(
        "the TLS handshake did not finish by its deadline (the server had sent {received} byte(s))"
    )]
    Deadline { received: u64 },
    #[error("the TLS handshake was interrupted by {}", .0.name())]
    Interrupted(Signal),
}

/// Runs the pre-TLS protocol, then a TLS handshake over `stream` for `server_name`, and
/// returns what the server showed and proved. Everything ends by `deadline`, or at once
/// when SIGINT or SIGTERM arrives.
pub fn observe(
    stream: &mut dyn ByteStream,
    server_name: &str,
    starttls: Starttls,
    identity: Option<Arc<CertifiedKey>>,
    deadline: Instant,
) -> Result<Observation, ObserveError> {
    let offered = identity.is_some();
    let mut stream = Bounded::new(stream, deadline);
    let result = handshake(&mut stream, server_name, starttls, identity);
    let cut = stream.cut();
    let (result, seen) = match result {
        Ok(done) => done,
        Err(e) => {
            return Err(match cut {
                Some(Cut::Signal(s)) => ObserveError::Interrupted(s),
                Some(Cut::Deadline) => ObserveError::Deadline {
                    received: stream.received(),
                },
                None => e,
            })
        }
    };
    // A refused signature is the answer, whatever happened next.
    if let Some(refused) = seen.refused {
        return Err(ObserveError::Protocol(refused));
    }
    if let Some(Cut::Signal(s)) = cut {
        return Err(ObserveError::Interrupted(s));
    }
    let Some((chain, signed)) = seen.proven else {
        return Err(match (result, cut) {
            (Err(_), Some(Cut::Deadline)) => ObserveError::Deadline {
                received: stream.received(),
            },
            (Err(stop), _) => stop.into_error(),
            (Ok(()), _) => ObserveError::Protocol(
                "the handshake ended without a server certificate whose key signed it".into(),
            ),
        });
    };
    let proof = match result {
        Ok(()) => Proof::Complete(signed),
        Err(_) if cut == Some(Cut::Deadline) => {
            return Err(ObserveError::Deadline {
                received: stream.received(),
            })
        }
        // The server asked for a client certificate, then ended the handshake itself.
        Err(stop @ (Stop::Closed | Stop::Alert(_))) if seen.ca_names.is_some() => Proof::KeyOnly {
            signed,
            ended: stop.ended(offered),
        },
        Err(stop) => return Err(stop.into_error()),
    };
    Ok(Observation {
        chain,
        ca_names: seen.ca_names,
        proof,
    })
}

/// The preamble, the handshake and, if it completed, the closing; returns how the
/// handshake ended and what the recorder saw.
fn handshake(
    stream: &mut Bounded<'_>,
    server_name: &str,
    starttls: Starttls,
    identity: Option<Arc<CertifiedKey>>,
) -> Result<(Result<(), Stop>, super::recorder::Outcome), ObserveError> {
    super::starttls::run(stream, starttls)?;
    let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
        ObserveError::Protocol(format!(
            "server name {server_name:?} is neither a DNS name nor an IP address"
        ))
    })?;
    let recorder = Arc::new(Recorder::new(identity, provider()));
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ObserveError::Protocol(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_client_cert_resolver(recorder.clone());
    // A resumed session skips the server's signature: every look is a full handshake.
    config.resumption = Resumption::disabled();
    let mut conn = ClientConnection::new(Arc::new(config), name)
        .map_err(|e| ObserveError::Protocol(format!("cannot set up TLS: {e}")))?;
    let result = drive(&mut conn, stream);
    if result.is_ok() {
        close_cleanly(&mut conn, stream);
    }
    Ok((result, recorder.outcome()))
}

/// How a handshake that did not complete ended.
#[derive(Debug)]
enum Stop {
    /// The server closed or reset the connection.
    Closed,
    /// The server sent a fatal alert.
    Alert(rustls::AlertDescription),
    /// certroll's side refused what the server sent.
    Refused(rustls::Error),
    /// Another I/O failure (a cut by the deadline or a signal is one too).
    Io(ObserveError),
    /// The bound on rounds was reached.
    Rounds,
}

impl Stop {
    fn into_error(self) -> ObserveError {
        match self {
            Stop::Closed => {
                ObserveError::Io("the server closed the connection during the TLS handshake".into())
            }
            Stop::Alert(a) => {
                ObserveError::Protocol(format!("TLS handshake failed: the server sent alert {a:?}"))
            }
            Stop::Refused(e) => ObserveError::Protocol(format!("TLS handshake failed: {e}")),
            Stop::Io(e) => e,
            Stop::Rounds => {
                ObserveError::Protocol("the TLS handshake did not finish in 256 rounds".into())
            }
        }
    }

    /// How the server ended a handshake after its CertificateRequest, for [`Proof::KeyOnly`].
    fn ended(&self, offered: bool) -> String {
        let how = match self {
            Stop::Alert(a) => format!("it sent alert {a:?}"),
            _ => "it closed the connection".to_string(),
        };
        if offered {
            format!("{how} after certroll offered the node's own certificate")
        } else {
            format!("{how}; certroll had no client certificate to offer")
        }
    }
}

/// Pumps the handshake until it completes, fails, or the peer closes.
fn drive(conn: &mut ClientConnection, stream: &mut Bounded<'_>) -> Result<(), Stop> {
    // Bounded: every round moves at least one record or returns; the stream's deadline
    // bounds the time.
    for _ in 0..256 {
        while conn.wants_write() {
            conn.write_tls(stream)
                .map_err(|e| io_stop("send a TLS record", &e))?;
        }
        stream
            .flush()
            .map_err(|e| io_stop("send a TLS record", &e))?;
        // Only once our last flight (certificate, finished) is out.
        if !conn.is_handshaking() {
            return Ok(());
        }
        let n = conn
            .read_tls(stream)
            .map_err(|e| io_stop("read the server's TLS records", &e))?;
        if n == 0 {
            return Err(Stop::Closed);
        }
        if let Err(e) = conn.process_new_packets() {
            // Send our alert, if any, for the server's logs; the error is what counts.
            let _ = conn.write_tls(stream);
            return Err(match e {
                rustls::Error::AlertReceived(a) => Stop::Alert(a),
                e => Stop::Refused(e),
            });
        }
    }
    Err(Stop::Rounds)
}

fn io_stop(action: &str, e: &io::Error) -> Stop {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Stop::Closed,
        _ => Stop::Io(io_error(action, e)),
    }
}

/// Sends close_notify and reads until the server closes (bounded in rounds, and in time
/// by the stream's deadline), so that the server finishes its side (session tickets, its
/// own close) and logs a clean connection.
fn close_cleanly(conn: &mut ClientConnection, stream: &mut Bounded<'_>) {
    conn.send_close_notify();
    for _ in 0..64 {
        while conn.wants_write() {
            if conn.write_tls(stream).is_err() {
                return;
            }
        }
        if stream.flush().is_err() {
            return;
        }
        match conn.read_tls(stream) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    return;
                }
            }
        }
    }
}

pub(super) fn io_error(action: &str, e: &io::Error) -> ObserveError {
    let what = match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_string(),
        io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
        _ => e.to_string(),
    };
    ObserveError::Io(format!("failed to {action}: {what}"))
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
