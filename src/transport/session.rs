//! Establishing one authenticated SSH session: TCP connect, handshake restricted to the
//! host-key types known_hosts can vouch for, host-key check, then authentication.
//!
//! This is where certroll's "host keys are always verified" rule is enforced, and
//! where libssh2 error codes become [`ErrorKind`]s the executor can act on
//! (retry transient failures, stop on host-key and authentication problems).

use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use ssh2::{ErrorCode, MethodType, Session};

use super::known_hosts::{self, HostKeyStatus, KnownHosts};
use super::{ErrorKind, HostKeyPolicy, TransportError};
use crate::inventory::SshSettings;

/// How long a TCP connect and the SSH handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound of any single blocking SSH operation (a read, a write, a channel open).
pub const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// Who is being connected to, for messages and known_hosts lookups.
pub(crate) struct Peer<'a> {
    pub node: &'a str,
    pub settings: &'a SshSettings,
    pub policy: HostKeyPolicy,
    /// The node whose session carries this connection, if any.
    pub via: Option<&'a str>,
}

impl Peer<'_> {
    fn addr(&self) -> String {
        match self.via {
            Some(v) => format!(
                "{}:{} through node {v}",
                self.settings.host, self.settings.port
            ),
            None => format!("{}:{}", self.settings.host, self.settings.port),
        }
    }

    fn err(&self, action: &str, kind: ErrorKind, message: impl Into<String>) -> TransportError {
        TransportError::new(self.node, action, kind, message)
    }
}

/// Opens a TCP connection with a timeout and TCP_NODELAY, trying every resolved address.
pub(crate) fn tcp_connect(peer: &Peer<'_>) -> Result<TcpStream, TransportError> {
    let action = format!("connect over SSH to {}", peer.addr());
    let addrs = (peer.settings.host.as_str(), peer.settings.port)
        .to_socket_addrs()
        .map_err(|e| {
            peer.err(
                &action,
                ErrorKind::Transient,
                format!("cannot resolve host: {}", io_message(&e)),
            )
        })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                // Latency matters more than throughput for many small SFTP requests.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    let message = last
        .map(|e| io_message(&e))
        .unwrap_or_else(|| "host has no address".to_string());
    Err(peer.err(&action, ErrorKind::Transient, message))
}

/// Runs the handshake over `stream`, checks the host key, authenticates.
pub(crate) fn establish<S: AsRawFd + 'static>(
    peer: &Peer<'_>,
    stream: S,
) -> Result<Session, TransportError> {
    let s = peer.settings;
    let action = format!("connect over SSH to {}", peer.addr());
    let known = KnownHosts::load_cached(&s.known_hosts).map_err(|e| {
        let msg = format!(
            "cannot read known_hosts {}: {}",
            s.known_hosts.display(),
            io_message(&e)
        );
        peer.err(&action, ErrorKind::Io, msg)
    })?;
    let mut session = Session::new().map_err(|e| peer.err(&action, ErrorKind::Io, e.message()))?;
    session.set_timeout(CONNECT_TIMEOUT.as_millis() as u32);
    let restricted = restrict_hostkey_methods(peer, &session, &known, &action)?;
    session.set_tcp_stream(stream);
    if let Err(e) = session.handshake() {
        let kex = matches!(e.code(), ErrorCode::Session(-5) | ErrorCode::Session(-8));
        if let (true, Some(types)) = (kex, restricted) {
            let msg = format!(
                "the server offers none of the host key types known_hosts {} holds for {} ({}): \
                 its host key changed type; check it and update known_hosts",
                s.known_hosts.display(),
                known_hosts::lookup_name(&s.host, s.port),
                types.join(", ")
            );
            return Err(peer.err(&action, ErrorKind::HostKeyChanged, msg));
        }
        return Err(ssh_error(peer.node, &action, &e));
    }
    check_host_key(peer, &session, &known, &action)?;
    authenticate(peer, &session)?;
    session.set_timeout(IO_TIMEOUT.as_millis() as u32);
    Ok(session)
}

/// Limits negotiation to the key types known_hosts holds for the host, so the server
/// cannot pick a type we have no entry for. Returns the types when restricted.
fn restrict_hostkey_methods(
    peer: &Peer<'_>,
    session: &Session,
    known: &KnownHosts,
    action: &str,
) -> Result<Option<Vec<String>>, TransportError> {
    let types = known.key_types_for(&peer.settings.host, peer.settings.port);
    if types.is_empty() {
        return Ok(None);
    }
    let supported = session
        .supported_algs(MethodType::HostKey)
        .unwrap_or_default();
    let methods: Vec<String> = known_hosts::hostkey_methods(&types)
        .into_iter()
        .filter(|m| supported.contains(&m.as_str()))
        .collect();
    if methods.is_empty() {
        let msg = format!(
            "known_hosts {} lists only host key types this build cannot check ({})",
            peer.settings.known_hosts.display(),
            types.join(", ")
        );
        return Err(peer.err(action, ErrorKind::Io, msg));
    }
    session
        .method_pref(MethodType::HostKey, &methods.join(","))
        .map_err(|e| peer.err(action, ErrorKind::Io, e.message()))?;
    Ok(Some(types))
}

fn check_host_key(
    peer: &Peer<'_>,
    session: &Session,
    known: &KnownHosts,
    action: &str,
) -> Result<(), TransportError> {
    let s = peer.settings;
    let Some((key, _)) = session.host_key() else {
        return Err(peer.err(action, ErrorKind::Io, "the server presented no host key"));
    };
    let key_type = known_hosts::key_type_of_blob(key).unwrap_or_else(|| "unknown-type".to_string());
    let fp = known_hosts::fingerprint(key);
    let name = known_hosts::lookup_name(&s.host, s.port);
    let file = s.known_hosts.display();
    match known.check(&s.host, s.port, key) {
        HostKeyStatus::Match => Ok(()),
        HostKeyStatus::Unknown if peer.policy.accept_new => {
            known_hosts::append(&s.known_hosts, &s.host, s.port, key).map_err(|e| {
                let msg = format!(
                    "cannot add the host key of {name} to known_hosts {file}: {}",
                    io_message(&e)
                );
                peer.err(action, ErrorKind::Io, msg)
            })
        }
        HostKeyStatus::Unknown => {
            let port_opt = if s.port == 22 {
                String::new()
            } else {
                format!("-p {} ", s.port)
            };
            let msg = format!(
                "host {name} is not in known_hosts {file}; it presents {key_type} {fp}. \
                 Check the fingerprint, then add it with `ssh-keyscan {port_opt}{} >> {file}` \
                 or rerun with --accept-new-host-keys",
                s.host
            );
            Err(peer.err(action, ErrorKind::HostKeyUnknown, msg))
        }
        HostKeyStatus::Changed { known } => {
            let was: Vec<String> = known
                .iter()
                .map(|(l, t, f)| format!("{t} {f} (line {l})"))
                .collect();
            let msg = format!(
                "HOST KEY CHANGED for {name}: it presents {key_type} {fp} but known_hosts {file} holds {}. \
                 Someone may be intercepting the connection; if the change is legitimate, remove the \
                 old entry with `ssh-keygen -R {} -f {}`",
                was.join(", "),
                crate::shell::shell_quote(&name),
                crate::shell::shell_quote(&file.to_string()),
            );
            Err(peer.err(action, ErrorKind::HostKeyChanged, msg))
        }
        HostKeyStatus::Revoked { line } => {
            let msg = format!("host {name} presents {key_type} {fp}, which known_hosts {file} line {line} marks @revoked");
            Err(peer.err(action, ErrorKind::HostKeyChanged, msg))
        }
    }
}

/// Public-key authentication with the identity file, then the ssh-agent.
fn authenticate(peer: &Peer<'_>, session: &Session) -> Result<(), TransportError> {
    let s = peer.settings;
    let action = format!("log in as {} to {}", s.user, peer.addr());
    let mut failures = Vec::new();
    if let Some(id) = &s.identity_file {
        match try_identity(session, &s.user, id) {
            Ok(()) => return Ok(()),
            Err(msg) => failures.push(format!("identity file {}: {msg}", id.display())),
        }
    }
    if std::env::var_os("SSH_AUTH_SOCK").is_some() || s.identity_file.is_none() {
        match session.userauth_agent(&s.user) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => failures.push("ssh-agent: no key accepted".to_string()),
            Err(e) => failures.push(format!("ssh-agent: {}", e.message())),
        }
    }
    Err(peer.err(
        &action,
        ErrorKind::Auth,
        format!("authentication refused ({})", failures.join("; ")),
    ))
}

fn try_identity(session: &Session, user: &str, id: &Path) -> Result<(), String> {
    if let Err(e) = std::fs::metadata(id) {
        return Err(io_message(&e));
    }
    match session.userauth_pubkey_file(user, None, id, None) {
        Ok(()) if session.authenticated() => Ok(()),
        Ok(()) => Err("key not accepted".to_string()),
        Err(e) => Err(e.message().to_string()),
    }
}

/// Classifies an ssh2 error by its cause; SFTP status codes get the usual file-system
/// wording. Every error meaning "the connection or the channel is gone" is transient,
/// wherever it surfaces (a connect, an SFTP request, a read in the middle of a file).
pub(crate) fn ssh_error(node: &str, action: &str, e: &ssh2::Error) -> TransportError {
    let (kind, message) = match e.code() {
        // No connection / connection lost, as reported by the SFTP server.
        ErrorCode::SFTP(code @ (6 | 7)) => (
            ErrorKind::Transient,
            format!("connection lost ({})", sftp_message(code, e.message())),
        ),
        ErrorCode::SFTP(code) => (ErrorKind::Io, sftp_message(code, e.message())),
        ErrorCode::Session(code) => {
            let kind = session_kind(code);
            let message = match (kind, code) {
                (ErrorKind::Transient, -9 | -30) => format!("timed out ({})", e.message()),
                (ErrorKind::Transient, _) => format!("connection lost ({})", e.message()),
                _ => e.message().to_string(),
            };
            (kind, message)
        }
    };
    TransportError::new(node, action, kind, message)
}

/// Classifies an I/O error from an SSH stream (an SFTP file, a channel) by its cause.
/// ssh2 keeps only libssh2's message in the `io::Error` ("channel read"), so the cause
/// is `last`, the session's last libssh2 error taken right after the failure: when it
/// says the connection is gone, so does the result. Otherwise the I/O error kind decides.
pub(crate) fn io_error(
    node: &str,
    action: &str,
    e: &std::io::Error,
    last: Option<ssh2::Error>,
) -> TransportError {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ssh2::Error>()) {
        return ssh_error(node, action, inner);
    }
    if let Some(cause) = last {
        if ssh_error(node, action, &cause).kind == ErrorKind::Transient {
            let message = format!("connection lost ({}: {})", io_message(e), cause.message());
            return TransportError::new(node, action, ErrorKind::Transient, message);
        }
    }
    use std::io::ErrorKind as K;
    let kind = match e.kind() {
        K::ConnectionReset
        | K::ConnectionAborted
        | K::BrokenPipe
        | K::NotConnected
        | K::UnexpectedEof
        | K::TimedOut => ErrorKind::Transient,
        _ => ErrorKind::Io,
    };
    let message = match kind {
        ErrorKind::Transient => format!("connection lost ({})", io_message(e)),
        _ => io_message(e),
    };
    TransportError::new(node, action, kind, message)
}

fn session_kind(code: i32) -> ErrorKind {
    match code {
        // Socket errors, banner, key exchange, timeouts, bad socket; and a channel closed
        // under us (the session died while an SFTP request or a command was in flight).
        -1 | -2 | -3 | -5 | -7 | -8 | -9 | -13 | -26 | -30 | -43 | -45 => ErrorKind::Transient,
        -18 | -19 | -48 => ErrorKind::Auth,
        _ => ErrorKind::Io,
    }
}

/// The wording of common SFTP status codes.
pub(crate) fn sftp_message(code: i32, fallback: &str) -> String {
    match code {
        2 | 10 => "no such file or directory".to_string(),
        3 => "permission denied".to_string(),
        11 => "file exists".to_string(),
        12 => "read-only file system".to_string(),
        14 => "no space left on device".to_string(),
        15 => "disk quota exceeded".to_string(),
        19 => "not a directory".to_string(),
        _ => format!("{fallback} (SFTP status {code})"),
    }
}

/// An I/O error as a short lower-case message without the "(os error N)" suffix.
pub(crate) fn io_message(e: &std::io::Error) -> String {
    let text = match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_err(code: i32, msg: &'static str) -> ssh2::Error {
        ssh2::Error::new(ErrorCode::Session(code), msg)
    }

    #[test]
    fn dropped_session_during_a_read_is_transient_not_io() {
        // What an SFTP file read returns when the connection drops mid-file: libssh2's
        // error inside an io::Error (kind Other). It must be classified by that cause.
        for code in [-43, -13, -7, -26] {
            let io: std::io::Error = session_err(code, "channel read").into();
            let last = Some(session_err(code, "channel read"));
            let e = io_error("app1", "read /etc/tls/cert.pem", &io, last);
            assert_eq!(e.kind, ErrorKind::Transient, "code {code}: {e}");
            assert!(e.to_string().contains("channel read"), "{e}");
        }
        // The same codes straight from libssh2 (an SFTP open or stat).
        for code in [-1, -43, -13, -7, -26, -9] {
            let e = ssh_error("app1", "read /x", &session_err(code, "channel read"));
            assert_eq!(e.kind, ErrorKind::Transient, "code {code}: {e}");
        }
        let lost = ssh2::Error::new(ErrorCode::SFTP(7), "connection lost");
        assert_eq!(ssh_error("n", "a", &lost).kind, ErrorKind::Transient);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(io_error("n", "a", &reset, None).kind, ErrorKind::Transient);
    }

    #[test]
    fn file_system_errors_stay_permanent() {
        let denied = ssh2::Error::new(ErrorCode::SFTP(3), "permission denied");
        let e = ssh_error("app1", "read /etc/tls/key.pem", &denied);
        assert_eq!(e.kind, ErrorKind::Io);
        assert_eq!(
            e.to_string(),
            "failed to read /etc/tls/key.pem on node app1: permission denied"
        );
        let io: std::io::Error = session_err(-31, "SFTP protocol error").into();
        let last = Some(session_err(-31, "SFTP protocol error"));
        assert_eq!(io_error("app1", "read /k", &io, last).kind, ErrorKind::Io);
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(io_error("n", "a", &full, None).kind, ErrorKind::Io);
        assert_eq!(
            ssh_error("n", "a", &session_err(-18, "auth")).kind,
            ErrorKind::Auth
        );
    }
}
