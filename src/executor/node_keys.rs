//! Leaves whose keys are made on the node (`key_source = "node"`), inside the node's own
//! step (so nodes make their keys in parallel, and a resumed step simply makes a new one).
//!
//! One remote command makes the key in the store's pending directory and prints a request
//! naming a fresh nonce; the request is checked ([`crate::pki::csr`]) and the leaf issued
//! for its public key with exactly the parameters of a leaf whose key is made here. The
//! private key never leaves the node: the step's write moves it into the new version.

use time::OffsetDateTime;

use crate::inventory::{CaSpec, Node};
use crate::layout;
use crate::materials::{LeafFiles, LeafKey, Leaves, MaterialError, PendingKey};
use crate::pki::csr::check_csr;
use crate::pki::{issue_leaf_for_key, CaCert};
use crate::transport::Transport;

/// [`Leaves`] made through the node's transport.
pub(super) struct NodeKeys<'a> {
    pub transport: &'a dyn Transport,
}

impl Leaves for NodeKeys<'_> {
    fn leaf(
        &self,
        spec: &CaSpec,
        ca: &CaCert,
        node: &Node,
        now: OffsetDateTime,
    ) -> Result<LeafFiles, MaterialError> {
        // The nonce binds the request to this exchange: nothing made before can answer it.
        let nonce = format!("certroll-{}", hex::encode(rand::random::<[u8; 16]>()));
        let alg = node.leaf_algorithm(spec);
        let req =
            layout::keygen(self.transport, node, &spec.name, alg, &nonce, 0).map_err(|e| {
                MaterialError::NodeKey {
                    transient: e.is_transient(),
                    message: e.to_string(),
                }
            })?;
        let csr = check_csr(&req.csr_pem, &nonce, alg, &node.name, &spec.name).map_err(|e| {
            MaterialError::NodeKey {
                message: e.to_string(),
                transient: false,
            }
        })?;
        #[cfg(debug_assertions)]
        crash_hook();
        let cert_pem =
            issue_leaf_for_key(spec, alg, ca, &node.name, &node.sans(), now, &csr.spki_der)
                .map_err(MaterialError::pki(node))?;
        Ok(LeafFiles {
            cert_pem,
            key: LeafKey::OnNode(PendingKey {
                pending: req.pending,
                spki_der: csr.spki_der,
            }),
        })
    }
}

/// Test hook (debug builds only): with `CERTROLL_TEST_CRASH_AFTER_KEYGEN` set, the process
/// dies here, between the node's keygen and the write, as a `kill -9` there would.
#[cfg(debug_assertions)]
fn crash_hook() {
    if std::env::var_os("CERTROLL_TEST_CRASH_AFTER_KEYGEN").is_some() {
        std::process::exit(137);
    }
}
