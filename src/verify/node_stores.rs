//! Checking a node's keystore, truststore and combined PEM against the PEM files they
//! stand for: a keystore's or combined PEM's key is its certificate's, it holds the same
//! leaf and chain as the certificate file; a truststore holds exactly the bundle's anchors,
//! each one Java would load; a file with a private key is not readable by every user. A
//! store that cannot be opened (wrong password, not PKCS#12 or JKS) is a finding naming
//! the file; the check itself never fails.

use sha2::{Digest, Sha256};

use super::{NodeContext, Parsed};
use crate::materials::FileKind;
use crate::stores::read::StoreFile;
use crate::stores::StoreContents;
use crate::verify::collect::CaFiles;
use crate::verify::finding::{mode_text, Finding};

/// Adds the findings of every store of the node to `out`.
pub fn check_stores(
    cx: &NodeContext<'_>,
    files: &CaFiles,
    parsed: &Parsed,
    out: &mut Vec<Finding>,
) {
    for store in &files.stores {
        check_one(cx, store, parsed, out);
    }
    if let Some(found) = &files.os_trust {
        // This CA's generations among the bundle's anchors: foreign ones are not certroll's.
        let want: Vec<Vec<u8>> = parsed
            .anchors
            .iter()
            .filter(|a| cx.known.anchor(a).is_some())
            .map(|a| a.der.clone())
            .collect();
        if let Some(detail) = crate::stores::os_trust::differences(found, &want) {
            out.push(Finding::OsTrustDiffers {
                dir: found.dir.clone(),
                detail,
            });
        }
    }
}

fn check_one(cx: &NodeContext<'_>, s: &StoreFile, parsed: &Parsed, out: &mut Vec<Finding>) {
    let (file, path) = (s.kind, s.path.clone());
    let contents = match &s.opened {
        None => return out.push(Finding::Missing { file, path }),
        Some(Err(detail)) => {
            return out.push(Finding::StoreUnopened {
                file,
                path,
                detail: detail.clone(),
            })
        }
        Some(Ok(c)) => c,
    };
    let differs = |detail: String| Finding::StoreDiffers {
        file,
        path: path.clone(),
        detail,
    };
    match file {
        FileKind::Truststore => {
            let mut held: Vec<&[u8]> = contents.anchors.iter().map(|a| a.der.as_slice()).collect();
            let mut want: Vec<&[u8]> = parsed.anchors.iter().map(|a| a.der.as_slice()).collect();
            held.sort_unstable();
            want.sort_unstable();
            want.dedup();
            held.dedup();
            if held != want {
                out.push(differs(format!(
                    "holds {} anchor(s), not the {} of the trust bundle {}",
                    held.len(),
                    want.len(),
                    cx.paths.trust_bundle
                )));
            }
            let untrusted = contents.anchors.iter().filter(|a| !a.java_trusted).count();
            if untrusted > 0 {
                out.push(differs(format!(
                    "holds {untrusted} certificate(s) without Java's trusted-certificate attribute (OID 2.16.840.1.113894.746875.1.1): Java loads no anchor from them"
                )));
            }
        }
        _ => {
            check_leaf(cx, contents, parsed, &path, out, &differs);
            if let Some(mode) = s.mode.filter(|m| m & 0o077 != 0) {
                if cx.node.files.key_mode != Some(mode & 0o777) || mode & 0o007 != 0 {
                    out.push(Finding::KeyMode {
                        path: path.clone(),
                        mode: mode_text(mode),
                    });
                }
            }
        }
    }
}

/// A keystore's or combined PEM's key, leaf and chain.
fn check_leaf(
    cx: &NodeContext<'_>,
    c: &StoreContents,
    parsed: &Parsed,
    path: &str,
    out: &mut Vec<Finding>,
    differs: &dyn Fn(String) -> Finding,
) {
    let Some(leaf) = c.chain.first() else {
        return out.push(differs("holds no certificate".into()));
    };
    // The public key of the store's private key: derived here from the key of a store
    // opened here, or as the node derived it for a store opened there.
    let spki = c.spki().map(|spki| hex::encode(Sha256::digest(spki)));
    let leaf_spki = crate::pki::parse_pem_certs(
        pem::encode(&pem::Pem::new("CERTIFICATE", leaf.clone())).as_bytes(),
    )
    .ok()
    .and_then(|v| v.into_iter().next())
    .map(|i| i.spki_sha256);
    match (spki, leaf_spki) {
        (None, _) => out.push(differs("holds no private key certroll can read".into())),
        (Some(k), Some(l)) if k != l => out.push(Finding::KeyMismatch {
            key: path.to_string(),
            cert: path.to_string(),
        }),
        _ => {}
    }
    let pem_chain: Vec<&[u8]> = parsed.chain.iter().map(|c| c.der.as_slice()).collect();
    let held: Vec<&[u8]> = c.chain.iter().map(Vec::as_slice).collect();
    if pem_chain.first().is_some_and(|l| *l != leaf.as_slice()) {
        out.push(differs(format!(
            "holds another leaf than the certificate file {}",
            cx.paths.cert
        )));
    } else if !pem_chain.is_empty() && held.len() > pem_chain.len() && held.starts_with(&pem_chain)
    {
        // The prune of a cross-signed rotation remakes every store with the chain it
        // writes: a store that still carries more (the retired cross certificate, say)
        // serves what the certificate file no longer does.
        out.push(differs(format!(
            "holds the chain of {} followed by {} certificate(s) that file no longer \
             carries (such as the cross certificate a cross-signed rotation's prune drops): \
             it serves another chain",
            cx.paths.cert,
            held.len() - pem_chain.len()
        )));
    } else if !pem_chain.is_empty() && held != pem_chain {
        out.push(differs(format!(
            "holds the leaf of {} with another chain ({} certificate(s), the file has {})",
            cx.paths.cert,
            held.len(),
            pem_chain.len()
        )));
    }
}
