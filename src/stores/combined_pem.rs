//! The combined PEM: the chain then the key in one file, as HAProxy's `crt` reads it. A
//! reader of one file can never see a key and a certificate of two generations.

use super::{pem_certs, pem_key, Password, StoreContents, StoreError, StoreForm};

/// The combined PEM backend (no password: the file's mode protects it, like `key.pem`).
#[derive(Debug, Clone, Copy)]
pub struct CombinedPem;

impl StoreForm for CombinedPem {
    fn name(&self) -> &'static str {
        "combined PEM"
    }

    fn render(&self, contents: &StoreContents, _: &Password) -> Result<Vec<u8>, StoreError> {
        let Some(key) = &contents.key else {
            return Err(StoreError::Render {
                form: "combined PEM",
                why: "no private key".into(),
            });
        };
        let mut out = String::new();
        for der in &contents.chain {
            out.push_str(&pem::encode(&pem::Pem::new("CERTIFICATE", der.clone())));
        }
        let key = zeroize::Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", key.to_vec())));
        out.push_str(&key);
        Ok(out.into_bytes())
    }

    fn read(&self, bytes: &[u8], _: &Password) -> Result<StoreContents, StoreError> {
        let chain = pem_certs(bytes);
        let key = pem_key(bytes);
        if chain.is_empty() || key.is_none() {
            return Err(StoreError::NotThisForm {
                form: "combined PEM",
                why: "it lacks a certificate or a PKCS#8 private key".into(),
            });
        }
        Ok(StoreContents {
            key,
            chain,
            ..StoreContents::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::fixtures::{leaf_and_anchors, pw};

    #[test]
    fn a_combined_pem_is_the_chain_then_the_key() {
        let (leaf, _) = leaf_and_anchors();
        let bytes = CombinedPem.render(&leaf, &pw("")).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(text.trim_end().ends_with("-----END PRIVATE KEY-----"));
        assert_eq!(CombinedPem.read(&bytes, &pw("")).unwrap(), leaf);
        assert!(CombinedPem.read(b"junk", &pw("")).is_err());
    }
}
