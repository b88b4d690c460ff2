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
//! ([`Proof::KeyOnly`]). A TLS 1.3 server sends its Finished before it sees the client's
//! certificate, so the handshake completes on certroll's side and the server's verdict
//! comes after it: as any client would learn of a refusal, certroll then reads until the
//! server's first record ([`VERDICT_WAIT`] at most). An alert or a closed connection is a
//! refusal (the same [`Proof::KeyOnly`] as over TLS 1.2); a ticket, data, or silence
//! until the wait ends is acceptance.
//!
//! The whole handshake, the `starttls` preamble ([`super::starttls`]) and the closing
//! included, ends by one deadline and at the first SIGINT or SIGTERM ([`super::deadline`]).

use std::io::{self, Write};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustls::client::{Resumption, Tls12Resumption};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion};

pub use super::deadline::ObserveError;
use super::deadline::{io_error, Bounded, Cut};
use super::recorder::{ClientCert, Recorder, Signed};
use crate::inventory::Starttls;
use crate::transport::ByteStream;

pub use super::recorder::identity;

/// How long, after a TLS 1.3 handshake in which the server asked for a client
/// certificate, certroll waits for the server's first record: its verdict on that
/// certificate. A server checks the certificate as soon as it reads it, so a refusal
/// comes within a round trip; silence until then is acceptance.
pub const VERDICT_WAIT: Duration = Duration::from_secs(1);

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
    /// had asked for a client certificate, ended the handshake before its Finished (TLS
    /// 1.2), or refused the certificate right after the handshake (TLS 1.3). `ended` says
    /// how ("it sent alert UnknownCA", "it closed the connection"); `offered`, what
    /// certroll had offered ("the node's own certificate"), if anything.
    KeyOnly {
        signed: Signed,
        ended: String,
        offered: Option<String>,
    },
}

/// "it sent alert X after certroll offered Y", or "…; certroll had no client certificate
/// to offer".
fn refusal(ended: &str, offered: Option<&str>) -> String {
    match offered {
        Some(what) => format!("{ended} after certroll offered {what}"),
        None => format!("{ended}; certroll had no client certificate to offer"),
    }
}

impl std::fmt::Display for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proof::Complete(signed) => {
                write!(f, "chain, key and handshake proven ({})", signed.version())
            }
            Proof::KeyOnly {
                signed: signed @ Signed::Tls12ServerKeyExchange,
                ended,
                offered,
            } => write!(
                f,
                "chain and key proven ({} signature); handshake aborted by the server after \
                 CertificateRequest ({})",
                signed.message(),
                refusal(ended, offered.as_deref())
            ),
            Proof::KeyOnly {
                signed: signed @ Signed::Tls13CertificateVerify,
                ended,
                offered,
            } => write!(
                f,
                "chain and key proven ({} signature); the server refused the client \
                 certificate it had asked for, after the handshake ({})",
                signed.message(),
                refusal(ended, offered.as_deref())
            ),
        }
    }
}

/// Runs the pre-TLS protocol, then a TLS handshake over `stream` for `server_name`, and
/// returns what the server showed and proved. Everything ends by `deadline`, or at once
/// when SIGINT or SIGTERM arrives.
pub fn observe(
    stream: &mut dyn ByteStream,
    server_name: &str,
    starttls: Starttls,
    client: Option<ClientCert>,
    deadline: Instant,
) -> Result<Observation, ObserveError> {
    let offered = client.as_ref().map(|c| c.what.clone());
    let mut stream = Bounded::new(stream, deadline);
    let result = handshake(&mut stream, server_name, starttls, client);
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
            ended: stop.ended(),
            offered,
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
    client: Option<ClientCert>,
) -> Result<(Result<(), Stop>, super::recorder::Outcome), ObserveError> {
    super::starttls::run(stream, starttls)?;
    let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
        ObserveError::Protocol(format!(
            "server name {server_name:?} is neither a DNS name nor an IP address"
        ))
    })?;
    let recorder = Arc::new(Recorder::new(client.map(|c| c.key), provider()));
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ObserveError::Protocol(format!("cannot set up TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_client_cert_resolver(recorder.clone());
    // A resumed session skips the server's signature: every look is a full handshake. The
    // recorder keeps no session; it only counts TLS 1.3 tickets.
    config.resumption =
        Resumption::store(recorder.clone()).tls12_resumption(Tls12Resumption::Disabled);
    let mut conn = ClientConnection::new(Arc::new(config), name)
        .map_err(|e| ObserveError::Protocol(format!("cannot set up TLS: {e}")))?;
    let mut result = drive(&mut conn, stream);
    if result.is_ok()
        && recorder.asked()
        && conn.protocol_version() == Some(ProtocolVersion::TLSv1_3)
    {
        result = await_verdict(&mut conn, stream, &recorder);
    }
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
    fn ended(&self) -> String {
        match self {
            Stop::Alert(a) => format!("it sent alert {a:?}"),
            _ => "it closed the connection".to_string(),
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

/// After a TLS 1.3 handshake in which the server asked for a client certificate: reads
/// until the server's first record, or for [`VERDICT_WAIT`]. Ok when the server accepted
/// (a ticket, data, or nothing to say); the alert or the closed connection of a refusal
/// otherwise.
fn await_verdict(
    conn: &mut ClientConnection,
    stream: &mut Bounded<'_>,
    recorder: &Recorder,
) -> Result<(), Stop> {
    let saved = stream.narrow(Instant::now() + VERDICT_WAIT);
    let verdict = read_verdict(conn, stream, recorder);
    stream.restore(saved);
    verdict
}

fn read_verdict(
    conn: &mut ClientConnection,
    stream: &mut Bounded<'_>,
    recorder: &Recorder,
) -> Result<(), Stop> {
    // Bounded: every round reads at least one byte or returns; the narrowed deadline
    // bounds the time.
    for _ in 0..64 {
        if recorder.tickets() > 0 {
            return Ok(());
        }
        match conn.read_tls(stream) {
            Ok(0) => return Err(Stop::Closed),
            Ok(_) => {}
            // Nothing from the server by the end of the wait: nothing objected.
            Err(_) if stream.cut() == Some(Cut::Deadline) => return Ok(()),
            Err(e) => {
                return Err(io_stop(
                    "read the server's answer to the client certificate",
                    &e,
                ))
            }
        }
        match conn.process_new_packets() {
            Err(rustls::Error::AlertReceived(a)) => return Err(Stop::Alert(a)),
            Err(e) => {
                let _ = conn.write_tls(stream);
                return Err(Stop::Refused(e));
            }
            // A ticket or data (even with a close_notify after it in the same read).
            Ok(state) if state.plaintext_bytes_to_read() > 0 || recorder.tickets() > 0 => {
                return Ok(())
            }
            Ok(state) if state.peer_has_closed() => return Err(Stop::Closed),
            Ok(_) => {}
        }
    }
    Ok(())
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

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}
