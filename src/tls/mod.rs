//! Real TLS handshakes in memory between two sets of node files (rustls), and a
//! readable reason when one fails. Used by `plan --check` and by `verify`.
//!
//! Both sides are real rustls connections (TLS 1.3, ring) exchanging bytes through
//! buffers; certificates are checked by rustls-webpki exactly as a node's TLS stack
//! would, at the instant given by `now`. The files are checked first (PEM, key matches
//! certificate), so a broken file is reported as such rather than as a handshake error.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::SingleCertAndKey;
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

mod classify;
mod files;
mod stand_in;

pub use stand_in::KEY_ON_NODE;

/// The files one side of a link holds: its trust bundle, its certificate chain, its key.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    pub bundle_pem: &'a [u8],
    pub chain_pem: &'a [u8],
    pub key_pem: &'a [u8],
}

/// Which side refused the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    /// The client refused the server's chain, or the client's own files are unusable.
    Client,
    /// The server refused the client's chain, or the server's own files are unusable.
    Server,
}

/// Why a handshake failed, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    UnknownIssuer,
    Expired,
    NotYetValid,
    NameMismatch,
    BadSignature,
    BadKey,
    KeyMismatch,
    MissingCertificate,
    BadPem,
    EmptyBundle,
    Other,
}

/// A failed handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{side:?} side: {kind:?}: {detail}")]
pub struct HandshakeError {
    pub side: Side,
    pub kind: FailureKind,
    pub detail: String,
}

/// Runs a full TLS 1.3 handshake in memory. The client verifies the server's chain against
/// its bundle for `server_name`; if `mutual`, the server requires and verifies the client's.
/// `now` overrides the clock (seconds since the epoch) for validity checks.
pub fn handshake(
    client: Endpoint<'_>,
    server: Endpoint<'_>,
    server_name: &str,
    mutual: bool,
    now: Option<u64>,
) -> Result<(), HandshakeError> {
    let time: Arc<dyn TimeProvider> = Arc::new(Clock(now));
    let name = ServerName::try_from(server_name.to_string()).map_err(|_| HandshakeError {
        side: Side::Client,
        kind: FailureKind::Other,
        detail: format!("server name {server_name:?} is neither a DNS name nor an IP address"),
    })?;
    let (client_on_node, server_on_node) =
        (client.key_pem == KEY_ON_NODE, server.key_pem == KEY_ON_NODE);
    let client_config = client_config(client, mutual, server_on_node, time.clone())?;
    let server_config = server_config(server, mutual, client_on_node, time)?;
    let client_conn =
        ClientConnection::new(client_config, name).map_err(|e| setup_error(Side::Client, e))?;
    let server_conn =
        ServerConnection::new(server_config).map_err(|e| setup_error(Side::Server, e))?;
    exchange(
        Connection::Client(client_conn),
        Connection::Server(server_conn),
    )
}

/// The clock of a handshake: fixed if `now` was given, the system clock otherwise.
#[derive(Debug)]
struct Clock(Option<u64>);

impl TimeProvider for Clock {
    fn current_time(&self) -> Option<UnixTime> {
        match self.0 {
            Some(secs) => Some(UnixTime::since_unix_epoch(Duration::from_secs(secs))),
            None => Some(UnixTime::now()),
        }
    }
}

/// One ring provider for every handshake (building it allocates its suite lists).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn setup_error(side: Side, error: rustls::Error) -> HandshakeError {
    HandshakeError {
        side,
        kind: FailureKind::Other,
        detail: format!("cannot set up the TLS session: {error}"),
    }
}

fn client_config(
    files: Endpoint<'_>,
    mutual: bool,
    server_key_on_node: bool,
    time: Arc<dyn TimeProvider>,
) -> Result<Arc<ClientConfig>, HandshakeError> {
    let provider = provider();
    let roots = files::root_store(files.bundle_pem, Side::Client)?;
    let identity = match mutual {
        true => Some(files::certified_key(
            files.chain_pem,
            files.key_pem,
            Side::Client,
            &provider,
        )?),
        false => None,
    };
    let builder = ClientConfig::builder_with_details(provider.clone(), time)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setup_error(Side::Client, e))?;
    let builder = if server_key_on_node {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| HandshakeError {
                side: Side::Client,
                kind: FailureKind::Other,
                detail: format!("cannot verify servers with the client's trust bundle: {e}"),
            })?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(stand_in::ServerChainOnly(inner)))
    } else {
        builder.with_root_certificates(roots)
    };
    let config = match identity {
        Some(key) => {
            let resolver: Arc<dyn ResolvesClientCert> = Arc::new(SingleCertAndKey::from(key));
            builder.with_client_cert_resolver(resolver)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn server_config(
    files: Endpoint<'_>,
    mutual: bool,
    client_key_on_node: bool,
    time: Arc<dyn TimeProvider>,
) -> Result<Arc<ServerConfig>, HandshakeError> {
    let provider = provider();
    let identity = files::certified_key(files.chain_pem, files.key_pem, Side::Server, &provider)?;
    let verifier = match mutual {
        true => {
            let roots = files::root_store(files.bundle_pem, Side::Server)?;
            let built =
                WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build();
            let built = built.map_err(|e| HandshakeError {
                side: Side::Server,
                kind: FailureKind::Other,
                detail: format!("cannot verify clients with the server's trust bundle: {e}"),
            })?;
            if client_key_on_node {
                let v: Arc<dyn rustls::server::danger::ClientCertVerifier> =
                    Arc::new(stand_in::ClientChainOnly(built));
                Some(v)
            } else {
                Some(built)
            }
        }
        false => None,
    };
    let builder = ServerConfig::builder_with_details(provider, time)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| setup_error(Side::Server, e))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let resolver: Arc<dyn ResolvesServerCert> = Arc::new(SingleCertAndKey::from(identity));
    Ok(Arc::new(builder.with_cert_resolver(resolver)))
}

/// Flights in a TLS 1.3 handshake are few; more rounds than this means a stall.
const MAX_ROUNDS: usize = 16;

/// Moves bytes both ways until both sides are done or one fails.
fn exchange(mut client: Connection, mut server: Connection) -> Result<(), HandshakeError> {
    let mut buffer = Vec::with_capacity(8 * 1024);
    for _ in 0..MAX_ROUNDS {
        let to_server = transfer(&mut client, &mut server, Side::Server, &mut buffer)?;
        let to_client = transfer(&mut server, &mut client, Side::Client, &mut buffer)?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
        if !to_server && !to_client {
            break;
        }
    }
    Err(HandshakeError {
        side: Side::Client,
        kind: FailureKind::Other,
        detail: "the handshake stalled: neither side had anything left to send".into(),
    })
}

/// Sends what `from` has to `to` (whose role is `to_side`) and lets `to` process it.
/// Returns whether any byte moved.
fn transfer(
    from: &mut Connection,
    to: &mut Connection,
    to_side: Side,
    buffer: &mut Vec<u8>,
) -> Result<bool, HandshakeError> {
    buffer.clear();
    while from.wants_write() {
        from.write_tls(buffer).map_err(|e| io_stall(to_side, e))?;
    }
    let mut pending = &buffer[..];
    let moved = !pending.is_empty();
    while !pending.is_empty() {
        to.read_tls(&mut pending)
            .map_err(|e| io_stall(to_side, e))?;
        to.process_new_packets()
            .map_err(|e| classify::classify(to_side, &e))?;
    }
    Ok(moved)
}

fn io_stall(side: Side, error: std::io::Error) -> HandshakeError {
    HandshakeError {
        side,
        kind: FailureKind::Other,
        detail: format!("in-memory transport failed: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_reports_the_given_instant() {
        let t = Clock(Some(1_700_000_000)).current_time().unwrap();
        assert_eq!(t.as_secs(), 1_700_000_000);
        assert!(Clock(None).current_time().unwrap().as_secs() > 1_700_000_000);
    }

    #[test]
    fn invalid_server_name_is_a_client_side_error() {
        let files = Endpoint {
            bundle_pem: b"",
            chain_pem: b"",
            key_pem: b"",
        };
        let err = handshake(files, files, "not a name!", false, None).unwrap_err();
        assert_eq!((err.side, err.kind), (Side::Client, FailureKind::Other));
    }
}
