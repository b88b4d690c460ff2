//! The files a peer serves with: reading the trust bundle, certificate chain and key from
//! disk, hashing exactly the bytes that were parsed, and turning them into rustls server and
//! client configurations. A reload is only accepted when all three files load together, so
//! a peer never runs with a half-updated set.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where the peer's three files live, exactly as given on its command line.
#[derive(Debug, Clone)]
pub struct FilePaths {
    pub bundle: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// SHA-256 (lower-case hex) of each of the three files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashes {
    pub bundle_sha256: String,
    pub cert_sha256: String,
    pub key_sha256: String,
}

/// Which of the three files an error is about; rendered in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Bundle,
    Cert,
    Key,
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::Bundle => "trust bundle",
            FileKind::Cert => "certificate",
            FileKind::Key => "private key",
        })
    }
}

/// Why a set of files could not be loaded. Messages never contain key material.
// The I/O error is part of the message (named `cause`, not `source`): the peer prints an
// error with `{e}`, so each level shows once.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read {kind} {} on node {node}: {cause}", path.display())]
    Read {
        kind: FileKind,
        path: PathBuf,
        node: String,
        cause: std::io::Error,
    },
    #[error("failed to parse {kind} {} on node {node}: {detail}", path.display())]
    Parse {
        kind: FileKind,
        path: PathBuf,
        node: String,
        detail: String,
    },
    #[error(
        "failed to build the TLS {role} configuration from certificate {} and private key {} on node {node}: {detail}",
        cert.display(),
        key.display()
    )]
    Config {
        role: &'static str,
        cert: PathBuf,
        key: PathBuf,
        node: String,
        detail: String,
    },
}

/// A loaded, consistent set of files and the TLS configurations built from them.
pub struct Material {
    pub hashes: Hashes,
    pub server: Arc<ServerConfig>,
    pub client: Arc<ClientConfig>,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn read(kind: FileKind, path: &Path, node: &str) -> Result<Vec<u8>, LoadError> {
    fs::read(path).map_err(|cause| LoadError::Read {
        kind,
        path: path.to_path_buf(),
        node: node.to_string(),
        cause,
    })
}

/// Hashes the three files as they are on disk now, without parsing them.
pub fn hash_on_disk(paths: &FilePaths, node: &str) -> Result<Hashes, LoadError> {
    Ok(Hashes {
        bundle_sha256: sha256_hex(&read(FileKind::Bundle, &paths.bundle, node)?),
        cert_sha256: sha256_hex(&read(FileKind::Cert, &paths.cert, node)?),
        key_sha256: sha256_hex(&read(FileKind::Key, &paths.key, node)?),
    })
}

/// Reads, hashes and parses the three files, and builds both TLS configurations.
/// `require_client_cert` makes the server demand and verify a client certificate.
pub fn load(
    paths: &FilePaths,
    node: &str,
    require_client_cert: bool,
) -> Result<Material, LoadError> {
    let bundle_pem = read(FileKind::Bundle, &paths.bundle, node)?;
    let cert_pem = read(FileKind::Cert, &paths.cert, node)?;
    let key_pem = read(FileKind::Key, &paths.key, node)?;
    let hashes = Hashes {
        bundle_sha256: sha256_hex(&bundle_pem),
        cert_sha256: sha256_hex(&cert_pem),
        key_sha256: sha256_hex(&key_pem),
    };
    let parse_err = |kind: FileKind, path: &Path, detail: String| LoadError::Parse {
        kind,
        path: path.to_path_buf(),
        node: node.to_string(),
        detail,
    };
    let roots =
        parse_bundle(&bundle_pem).map_err(|d| parse_err(FileKind::Bundle, &paths.bundle, d))?;
    let chain = parse_certs(&cert_pem).map_err(|d| parse_err(FileKind::Cert, &paths.cert, d))?;
    let key = parse_key(&key_pem).map_err(|d| parse_err(FileKind::Key, &paths.key, d))?;

    let config_err = |role: &'static str, detail: String| LoadError::Config {
        role,
        cert: paths.cert.clone(),
        key: paths.key.clone(),
        node: node.to_string(),
        detail,
    };
    let roots = Arc::new(roots);
    let server = server_config(
        roots.clone(),
        chain.clone(),
        key.clone_key(),
        require_client_cert,
    )
    .map_err(|d| config_err("server", d))?;
    let client = client_config(roots, chain, key).map_err(|d| config_err("client", d))?;
    Ok(Material {
        hashes,
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

fn parse_certs(pem_bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_detail(&e))?;
    if certs.is_empty() {
        return Err("no CERTIFICATE block found".to_string());
    }
    Ok(certs)
}

fn parse_bundle(pem_bytes: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in parse_certs(pem_bytes)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            format!(
                "certificate #{} is not a usable trust anchor: {e}",
                index + 1
            )
        })?;
    }
    Ok(roots)
}

/// Parses the key; the error text is fixed so that no byte of the key can leak into it.
fn parse_key(pem_bytes: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem_bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => "no PRIVATE KEY block found".to_string(),
        _ => "malformed PEM private key (expected PKCS#8, SEC1 or PKCS#1)".to_string(),
    })
}

/// Describes a certificate PEM error without echoing file content beyond marker lines.
fn pem_detail(e: &pem::Error) -> String {
    match e {
        pem::Error::Base64Decode(_) => "malformed base64 in a CERTIFICATE block".to_string(),
        other => format!("malformed PEM: {other}"),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    require_client_cert: bool,
) -> Result<ServerConfig, String> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if require_client_cert {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| format!("client certificate verifier: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| describe(&e))
}

/// rustls's text for a certificate/key error, made plain where rustls is terse.
fn describe(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            "the private key does not match the certificate".to_string()
        }
        other => other.to_string(),
    }
}

/// Client configuration; resumption is off so that every handshake verifies the full chain.
fn client_config(
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| describe(&e))?;
    config.resumption = Resumption::disabled();
    Ok(config)
}
