//! The chain a node presents after a cross-signed leaf swap, `[leaf(new), new-with-old]`,
//! carries the cross certificate only for verifiers that still trust the old anchor alone.
//! Once every verifier of the node trusts the new anchor the cross certificate has no
//! use, and once the old generation is archived it is a certificate of a retired
//! generation (docs/design.md#cross-signed). This is where a chain sheds it: the node's
//! trust-prune rewrites its certificate file without the cross certificate, keeping the
//! leaf (and so the key) and every other block as they are.

use crate::pki::cert_pem;

/// The DER of the first certificate of `pem_text` (a cross certificate as the CA store
/// holds it), or `None` when it holds none.
pub fn first_der(pem_text: &str) -> Option<Vec<u8>> {
    pem::parse_many(pem_text.as_bytes())
        .ok()?
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
}

/// `chain` without the certificate whose DER is `drop`, every other block kept in its
/// order; `None` when the chain does not carry that certificate (nothing to change) or
/// is not PEM (nothing certroll can rewrite safely).
pub fn without(chain: &[u8], drop: &[u8]) -> Option<Vec<u8>> {
    let blocks = pem::parse_many(chain).ok()?;
    let dropped = |b: &pem::Pem| b.tag() == "CERTIFICATE" && b.contents() == drop;
    if !blocks.iter().any(dropped) {
        return None;
    }
    let mut out = String::new();
    for block in blocks.iter().filter(|b| !dropped(b)) {
        let text = if block.tag() == "CERTIFICATE" {
            cert_pem(block.contents())
        } else {
            pem::encode_config(
                block,
                pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
            )
        };
        out.push_str(text.trim_end());
        out.push('\n');
    }
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::stand_in_cert as cert;

    #[test]
    fn the_cross_certificate_goes_and_the_leaf_stays_byte_for_byte() {
        let (leaf, _) = cert(1);
        let (cross, cross_der) = cert(2);
        let chain = format!("{}\n{}\n", leaf.trim_end(), cross.trim_end());
        let out = without(chain.as_bytes(), &cross_der).expect("the chain carries it");
        assert_eq!(String::from_utf8(out).unwrap(), leaf);
        assert_eq!(first_der(&cross), Some(cross_der));
    }

    #[test]
    fn a_chain_without_it_or_not_pem_is_left_alone() {
        let (leaf, _) = cert(1);
        let (intermediate, _) = cert(3);
        let (_, cross_der) = cert(2);
        let chain = format!("{leaf}{intermediate}");
        assert_eq!(without(chain.as_bytes(), &cross_der), None);
        assert_eq!(without(b"not pem \xff", &cross_der), None);
        assert_eq!(first_der("no certificate"), None);
    }

    #[test]
    fn other_certificates_keep_their_order() {
        let (leaf, _) = cert(1);
        let (cross, cross_der) = cert(2);
        let (intermediate, _) = cert(3);
        let chain = format!("{leaf}{cross}{intermediate}");
        let out = String::from_utf8(without(chain.as_bytes(), &cross_der).unwrap()).unwrap();
        assert_eq!(out, format!("{leaf}{intermediate}"));
    }
}
