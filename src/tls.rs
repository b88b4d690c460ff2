//! Real TLS handshakes in memory between two sets of node files (rustls), and a
//! readable reason when one fails. Used by `plan --check` and by `verify`.

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
    _client: Endpoint<'_>,
    _server: Endpoint<'_>,
    _server_name: &str,
    _mutual: bool,
    _now: Option<u64>,
) -> Result<(), HandshakeError> {
    todo!()
}
