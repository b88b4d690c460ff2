//! Reading a node's stores back for `verify`: each file's bytes and mode, opened with the
//! password from the node's `store_password_file` (read there once per node and CA), or
//! `changeit` for a truststore of a node that names none. A store that cannot be read or
//! opened is a state, never an error: `verify` reports it as a finding naming the file.
//!
//! With `key_source = "node"` the keystore and combined PEM hold a key that never leaves
//! the node, so they are not read here: the node opens them itself and sends back only
//! their certificates and the public key of their key ([`crate::layout::inspect_store`]);
//! the checks are the same, on the public key instead of the key.

use super::{
    combined_pem::CombinedPem, keystore_form, truststore_form, Password, StoreContents, StoreForm,
    DEFAULT_TRUSTSTORE_PASSWORD,
};
use crate::inventory::Node;
use crate::materials::FileKind;
use crate::transport::Transport;

/// One store of a node as `verify` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFile {
    pub kind: FileKind,
    pub path: String,
    /// `None`: the file does not exist; `Err`: why it could not be read or opened.
    pub opened: Option<Result<StoreContents, String>>,
    /// Permission bits, when known.
    pub mode: Option<u32>,
    /// Opened on the node (`key_source = "node"`): only its public material was read.
    pub on_node: bool,
}

/// The form that reads `kind` on `node`.
pub fn form_of(node: &Node, kind: FileKind) -> Box<dyn StoreForm> {
    let s = &node.stores;
    match kind {
        FileKind::Truststore => truststore_form(s.truststore_format, s.pkcs12_profile),
        FileKind::CombinedPem => Box::new(CombinedPem),
        _ => keystore_form(s.pkcs12_profile),
    }
}

/// Reads and opens every store `node` has for CA `ca`.
pub fn read_stores(t: &dyn Transport, node: &Node, ca: &str) -> Vec<StoreFile> {
    let paths = node.paths(ca);
    let mut password: Option<Result<Password, String>> = None;
    let mut out = Vec::new();
    for (kind, path) in [
        (FileKind::Keystore, &paths.keystore),
        (FileKind::Truststore, &paths.truststore),
        (FileKind::CombinedPem, &paths.combined_pem),
    ] {
        let Some(path) = path else { continue };
        let mode = t.file_mode(path).ok().flatten();
        // A keystore or combined PEM made on the node holds a key that never leaves it:
        // opened there (docs/inventory.md#stores).
        let on_node = kind != FileKind::Truststore
            && node.files.key_source == crate::inventory::KeySource::Node;
        if on_node {
            let file = match kind {
                FileKind::CombinedPem => None,
                _ => node.store_password_file(ca),
            };
            out.push(StoreFile {
                kind,
                path: path.clone(),
                opened: crate::layout::inspect_store(t, node, kind, path, file.as_deref()),
                mode,
                on_node,
            });
            continue;
        }
        let opened = match t.read_file(path) {
            Ok(None) => None,
            Err(e) => Some(Err(e.to_string())),
            Ok(Some(bytes)) => {
                let pw = if kind == FileKind::CombinedPem {
                    Ok(Password::new(""))
                } else {
                    password
                        .get_or_insert_with(|| match node.store_password_file(ca) {
                            None => Ok(Password::new(DEFAULT_TRUSTSTORE_PASSWORD)),
                            Some(file) => crate::layout::store_password(t, node, &file)
                                .map_err(|e| e.to_string()),
                        })
                        .clone()
                };
                Some(pw.and_then(|pw| {
                    form_of(node, kind)
                        .read(&bytes, &pw)
                        .map_err(|e| e.to_string())
                }))
            }
        };
        out.push(StoreFile {
            kind,
            path: path.clone(),
            opened,
            mode,
            on_node,
        });
    }
    out
}
