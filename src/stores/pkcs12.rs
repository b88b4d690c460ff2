//! PKCS#12 keystores and truststores, through the `p12-keystore` crate.
//!
//! That crate writes both protections certroll offers (PBES2 with PBKDF2-HMAC-SHA256 and
//! AES-256-CBC with an HMAC-SHA256 MAC, and PBE-SHA1-3DES with an HMAC-SHA1 MAC), marks a
//! trusted-certificate bag with Java's attribute (OID 2.16.840.1.113894.746875.1.1, without
//! which Java loads no anchor from a PKCS#12 file), and reads every bag back with the
//! attribute it carries, so `verify` sees what Java will. A PKCS#12 writer of our own would
//! be several hundred lines of ASN.1 and key derivation to get exactly right; the crate is
//! maintained, pure Rust, and tested against Java and OpenSSL files.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, Pkcs12Archive,
    PrivateKey, PrivateKeyChain,
};
use zeroize::Zeroizing;

use super::{anchor_alias, Anchor, Password, Pkcs12Profile, StoreContents, StoreError, StoreForm};

/// Iterations of the key derivations: the JDK's own default for PKCS#12 files.
const ITERATIONS: u32 = 10_000;

/// Whether a PKCS#12 file holds a key and its chain, or anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkcs12Role {
    Keystore,
    Truststore,
}

/// A PKCS#12 file in one profile.
#[derive(Debug, Clone, Copy)]
pub struct Pkcs12 {
    pub profile: Pkcs12Profile,
    pub role: Pkcs12Role,
}

/// The alias of the key entry of a keystore certroll writes.
pub const KEY_ALIAS: &str = "certroll";

impl Pkcs12 {
    fn form(&self) -> &'static str {
        match self.role {
            Pkcs12Role::Keystore => "PKCS#12 keystore",
            Pkcs12Role::Truststore => "PKCS#12 truststore",
        }
    }

    fn render_err(&self, why: impl std::fmt::Display) -> StoreError {
        StoreError::Render {
            form: self.form(),
            why: why.to_string(),
        }
    }
}

impl StoreForm for Pkcs12 {
    fn name(&self) -> &'static str {
        self.form()
    }

    fn render(&self, contents: &StoreContents, password: &Password) -> Result<Vec<u8>, StoreError> {
        let mut ks = KeyStore::new();
        match self.role {
            Pkcs12Role::Keystore => {
                let key = contents
                    .key
                    .as_ref()
                    .ok_or_else(|| self.render_err("no private key"))?;
                let key = PrivateKey::from_der(key).map_err(|e| self.render_err(e))?;
                let certs = contents
                    .chain
                    .iter()
                    .map(|d| Certificate::from_der(d))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| self.render_err(e))?;
                let Some(leaf) = contents.chain.first() else {
                    return Err(self.render_err("no certificate"));
                };
                // The local key id ties the key to its certificate: the leaf's SHA-1, as
                // keytool and OpenSSL make it.
                use sha1::Digest;
                let id = sha1::Sha1::digest(leaf).to_vec();
                ks.add_entry(
                    KEY_ALIAS,
                    KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(id, key, certs)),
                );
            }
            Pkcs12Role::Truststore => {
                for a in &contents.anchors {
                    let cert = Certificate::from_der(&a.der).map_err(|e| self.render_err(e))?;
                    ks.add_entry(&anchor_alias(&a.der), KeyStoreEntry::Certificate(cert));
                }
            }
        }
        let (enc, mac) = match self.profile {
            Pkcs12Profile::Modern => (
                EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
                MacAlgorithm::HmacSha256,
            ),
            Pkcs12Profile::Legacy => (
                EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
                MacAlgorithm::HmacSha1,
            ),
        };
        ks.writer(password.expose())
            .encryption_algorithm(enc)
            .encryption_iterations(ITERATIONS)
            .mac_algorithm(mac)
            .mac_iterations(ITERATIONS)
            .write()
            .map_err(|e| self.render_err(e))
    }

    fn read(&self, bytes: &[u8], password: &Password) -> Result<StoreContents, StoreError> {
        let archive =
            Pkcs12Archive::from_pkcs12(bytes, password.expose()).map_err(|e| match e {
                p12_keystore::error::Error::MacError(_)
                | p12_keystore::error::Error::UnpadError => StoreError::WrongPassword,
                other => StoreError::NotThisForm {
                    form: "PKCS#12",
                    why: other.to_string(),
                },
            })?;
        let mut out = StoreContents::default();
        let key = archive.keys.first();
        if let Some(k) = key {
            out.key = Some(Zeroizing::new(k.key.as_der().to_vec()));
        }
        let key_id = key
            .and_then(|k| k.local_key_id.as_ref())
            .map(|id| id.0.clone());
        // The leaf (the bag with the key's id) first, then the other chain bags in order.
        let mut chain: Vec<(bool, Vec<u8>)> = Vec::new();
        for c in &archive.certs {
            let der = c.cert.as_der().to_vec();
            let is_leaf = key_id.is_some() && c.local_key_id == key_id;
            if c.trusted && c.local_key_id.is_none() {
                out.anchors.push(Anchor {
                    der,
                    java_trusted: true,
                });
            } else if self.role == Pkcs12Role::Truststore && c.local_key_id.is_none() {
                out.anchors.push(Anchor {
                    der,
                    java_trusted: false,
                });
            } else {
                chain.push((is_leaf, der));
            }
        }
        chain.sort_by_key(|(leaf, _)| !leaf);
        out.chain = chain.into_iter().map(|(_, d)| d).collect();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::fixtures::{leaf_and_anchors, pw};

    fn both() -> [Pkcs12Profile; 2] {
        [Pkcs12Profile::Modern, Pkcs12Profile::Legacy]
    }

    #[test]
    fn a_keystore_reads_back_its_key_and_chain_in_each_profile() {
        let (leaf, _) = leaf_and_anchors();
        for profile in both() {
            let form = Pkcs12 {
                profile,
                role: Pkcs12Role::Keystore,
            };
            let bytes = form.render(&leaf, &pw("s3cret")).unwrap();
            let back = form.read(&bytes, &pw("s3cret")).unwrap();
            assert_eq!(back.key, leaf.key, "{profile:?}");
            assert_eq!(back.chain, leaf.chain, "{profile:?}");
            assert!(back.anchors.is_empty());
        }
    }

    #[test]
    fn a_truststore_reads_back_every_anchor_with_the_java_attribute() {
        let (_, trust) = leaf_and_anchors();
        for profile in both() {
            let form = Pkcs12 {
                profile,
                role: Pkcs12Role::Truststore,
            };
            let bytes = form.render(&trust, &pw("changeit")).unwrap();
            let mut back = form.read(&bytes, &pw("changeit")).unwrap();
            back.anchors.sort_by(|a, b| a.der.cmp(&b.der));
            let mut want = trust.anchors.clone();
            want.sort_by(|a, b| a.der.cmp(&b.der));
            assert_eq!(back.anchors, want, "{profile:?}");
            assert!(back.anchors.iter().all(|a| a.java_trusted));
        }
    }

    #[test]
    fn a_wrong_password_or_garbage_is_an_error_not_a_panic() {
        let (leaf, _) = leaf_and_anchors();
        let form = Pkcs12 {
            profile: Pkcs12Profile::Modern,
            role: Pkcs12Role::Keystore,
        };
        let bytes = form.render(&leaf, &pw("right")).unwrap();
        assert_eq!(
            form.read(&bytes, &pw("wrong")),
            Err(StoreError::WrongPassword)
        );
        assert!(matches!(
            form.read(b"not a store", &pw("right")),
            Err(StoreError::NotThisForm { .. })
        ));
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        assert!(form.read(&cut, &pw("right")).is_err());
    }
}
