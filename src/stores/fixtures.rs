//! Test material for the store backends: a leaf with its key and chain, and two anchors.

use time::OffsetDateTime;

use super::{leaf_contents, trust_contents, Password, StoreContents};
use crate::inventory::InventoryBuilder;
use crate::materials::bundle_pem;
use crate::pki::{issue_node_leaf, new_ca};

pub fn pw(s: &str) -> Password {
    Password::new(s)
}

/// A node's leaf (key and chain) and a truststore of two generations' anchors.
pub fn leaf_and_anchors() -> (StoreContents, StoreContents) {
    let inv = InventoryBuilder::new().link("lb1", "app1").build();
    let spec = &inv.cas[0];
    let node = &inv.nodes[inv.node_id("app1").expect("app1 is in the inventory")];
    let now = OffsetDateTime::now_utc();
    let g1 = new_ca(spec, 1, now).expect("G1");
    let g2 = new_ca(spec, 2, now).expect("G2");
    let leaf = issue_node_leaf(spec, &g1, node, now).expect("leaf");
    let leaf = leaf_contents(leaf.key_pem.as_bytes(), leaf.cert_pem.as_bytes());
    (leaf, trust_contents(&bundle_pem(&[&g1, &g2])))
}
