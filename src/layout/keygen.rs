//! Leaf keys made on the node (`key_source = "node"`): the two remote commands that touch
//! them without the key ever crossing the transport.
//!
//! [`keygen`] makes a key in a pending directory of the node's store and returns the
//! request openssl prints for it (its CN a nonce certroll chose); the step then writes
//! the certificate with [`super::apply`] and [`super::Change::NodeKey`], which moves that
//! key into the new version. [`public_key`] asks the node for the public key of a key file,
//! which is how a key made on the node is checked (confirm, resume, `verify`): the private
//! key is never read back. Both run the layout script, with its quoting, deadline and
//! `become` rules.

use std::time::Duration;

use super::{command, failure, store_words, LayoutError};
use crate::inventory::{KeyAlgorithm, Node};
use crate::transport::Transport;

/// How long making a key may take (an RSA-4096 key takes seconds on a slow node).
pub const KEYGEN_TIMEOUT: Duration = Duration::from_secs(120);

/// A key made on a node, waiting in the store's pending directory `pending`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKeyRequest {
    /// `.key-<tag>`, relative to the store.
    pub pending: String,
    /// The request openssl printed for the key (PEM), not yet checked.
    pub csr_pem: String,
}

/// Makes a fresh `alg` key for `node`'s files of CA `ca` in a new pending directory of its
/// store and returns the request for it, whose subject is `CN=<nonce>`. `stop_at` is the
/// script's test hook (1..=3).
pub fn keygen(
    t: &dyn Transport,
    node: &Node,
    ca: &str,
    alg: KeyAlgorithm,
    nonce: &str,
    stop_at: u8,
) -> Result<NodeKeyRequest, LayoutError> {
    let words = store_words(node, ca);
    let store = words[0].clone();
    let tag = hex::encode(rand::random::<[u8; 8]>());
    let mut args: Vec<String> = vec!["keygen".into()];
    args.extend(words);
    args.extend([
        tag.clone(),
        alg.as_str().to_string(),
        nonce.to_string(),
        stop_at.to_string(),
    ]);
    let out = t.exec_input(&command(&args), &[], KEYGEN_TIMEOUT)?;
    if !out.success() {
        let action = format!("make an {} key for CA {ca} in {store}", alg.as_str());
        return Err(failure(node, action, &out));
    }
    Ok(NodeKeyRequest {
        pending: format!(".key-{tag}"),
        csr_pem: out.stdout,
    })
}

/// The public key (SubjectPublicKeyInfo, DER) of the key file at `path` on the node, as
/// openssl derives it there; `None` when there is no such file.
pub fn public_key(
    t: &dyn Transport,
    node: &Node,
    path: &str,
) -> Result<Option<Vec<u8>>, LayoutError> {
    let args = vec!["pubkey".to_string(), path.to_string()];
    let out = t.exec_input(&command(&args), &[], super::WRITE_TIMEOUT)?;
    let action = format!("check the key {path}");
    if !out.success() {
        return Err(failure(node, action, &out));
    }
    if out.stdout.trim() == "absent" {
        return Ok(None);
    }
    match pem::parse(out.stdout.trim()) {
        Ok(p) if p.tag() == "PUBLIC KEY" => Ok(Some(p.into_contents())),
        _ => Err(LayoutError::Node {
            node: node.name.clone(),
            action,
            message: "openssl printed no public key".into(),
            ownership: false,
        }),
    }
}
