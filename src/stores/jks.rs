//! JKS truststores: Java's original keystore format, still what many Java clients are
//! configured with (`-Djavax.net.ssl.trustStoreType=jks`).
//!
//! certroll writes only trusted-certificate entries, a small documented format: the magic
//! `FEEDFEED`, version 2, the entry count, each entry (tag 2, alias in modified UTF-8, a
//! creation time in milliseconds, the type `X.509`, the DER length and bytes), then a
//! SHA-1 digest of the password as UTF-16BE, the words "Mighty Aphrodite" and everything
//! before it. No crate of the ecosystem writes it; the reader also walks private-key
//! entries (tag 1) so a store someone else wrote is read rather than refused.

use sha1::{Digest, Sha1};

use super::{anchor_alias, Anchor, Password, StoreContents, StoreError, StoreForm};

const MAGIC: u32 = 0xFEED_FEED;
const WHITENER: &[u8] = b"Mighty Aphrodite";
const TRUSTED_CERT: u32 = 2;
const PRIVATE_KEY: u32 = 1;
/// A fixed creation time (2026-01-01): the same anchors always give the same bytes.
const CREATED_MS: u64 = 1_767_225_600_000;

/// The JKS truststore backend.
#[derive(Debug, Clone, Copy)]
pub struct Jks;

fn digest(password: &Password, body: &[u8]) -> [u8; 20] {
    let mut h = Sha1::new();
    for unit in password.expose().encode_utf16() {
        h.update(unit.to_be_bytes());
    }
    h.update(WHITENER);
    h.update(body);
    h.finalize().into()
}

fn put_utf(out: &mut Vec<u8>, s: &str) {
    // Aliases and "X.509" are ASCII: modified UTF-8 is plain bytes for them.
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl StoreForm for Jks {
    fn name(&self) -> &'static str {
        "JKS truststore"
    }

    fn render(&self, contents: &StoreContents, password: &Password) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&2u32.to_be_bytes());
        out.extend_from_slice(&(contents.anchors.len() as u32).to_be_bytes());
        for a in &contents.anchors {
            let len = u32::try_from(a.der.len()).map_err(|_| StoreError::Render {
                form: "JKS",
                why: "a certificate larger than 4 GiB".into(),
            })?;
            out.extend_from_slice(&TRUSTED_CERT.to_be_bytes());
            put_utf(&mut out, &anchor_alias(&a.der));
            out.extend_from_slice(&CREATED_MS.to_be_bytes());
            put_utf(&mut out, "X.509");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&a.der);
        }
        let d = digest(password, &out);
        out.extend_from_slice(&d);
        Ok(out)
    }

    fn read(&self, bytes: &[u8], password: &Password) -> Result<StoreContents, StoreError> {
        let mut r = Reader { b: bytes, at: 0 };
        if r.u32()? != MAGIC {
            return Err(bad("no FEEDFEED magic"));
        }
        let version = r.u32()?;
        if version != 1 && version != 2 {
            return Err(bad(format!("unknown version {version}")));
        }
        let count = r.u32()?;
        let mut out = StoreContents::default();
        for _ in 0..count {
            let tag = r.u32()?;
            r.utf()?;
            r.take(8)?;
            match tag {
                TRUSTED_CERT => {
                    let der = r.cert(version)?;
                    out.anchors.push(Anchor {
                        der,
                        java_trusted: true,
                    });
                }
                PRIVATE_KEY => {
                    // The key is protected with Sun's own scheme: it is not read, only skipped.
                    let n = r.u32()? as usize;
                    r.take(n)?;
                    let certs = r.u32()?;
                    for _ in 0..certs {
                        out.chain.push(r.cert(version)?);
                    }
                }
                other => return Err(bad(format!("unknown entry tag {other}"))),
            }
        }
        let body = &bytes[..r.at];
        let want = r.take(20)?;
        if r.at != bytes.len() {
            return Err(bad("bytes after the digest"));
        }
        if digest(password, body).as_slice() != want {
            return Err(StoreError::WrongPassword);
        }
        Ok(out)
    }
}

fn bad(why: impl Into<String>) -> StoreError {
    StoreError::NotThisForm {
        form: "JKS",
        why: why.into(),
    }
}

/// A bounds-checked big-endian reader.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| bad("cut short"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let s = self.take(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn utf(&mut self) -> Result<&'a [u8], StoreError> {
        let s = self.take(2)?;
        let n = usize::from(u16::from_be_bytes([s[0], s[1]]));
        self.take(n)
    }

    fn cert(&mut self, version: u32) -> Result<Vec<u8>, StoreError> {
        if version == 2 {
            let kind = self.utf()?;
            if kind != b"X.509" {
                return Err(bad("a certificate that is not X.509"));
            }
        }
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::fixtures::{leaf_and_anchors, pw};

    #[test]
    fn a_jks_truststore_reads_back_its_anchors() {
        let (_, trust) = leaf_and_anchors();
        let bytes = Jks.render(&trust, &pw("changeit")).unwrap();
        assert_eq!(&bytes[..8], &[0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2]);
        let back = Jks.read(&bytes, &pw("changeit")).unwrap();
        assert_eq!(back.anchors, trust.anchors);
        assert_eq!(
            bytes,
            Jks.render(&trust, &pw("changeit")).unwrap(),
            "stable"
        );
    }

    #[test]
    fn a_jks_with_a_wrong_password_or_cut_short_is_an_error() {
        let (_, trust) = leaf_and_anchors();
        let bytes = Jks.render(&trust, &pw("changeit")).unwrap();
        assert_eq!(
            Jks.read(&bytes, &pw("other")),
            Err(StoreError::WrongPassword)
        );
        for n in [0, 3, 11, bytes.len() - 1] {
            assert!(matches!(
                Jks.read(&bytes[..n], &pw("changeit")),
                Err(StoreError::NotThisForm { .. })
            ));
        }
        let mut more = bytes.clone();
        more.push(0);
        assert!(Jks.read(&more, &pw("changeit")).is_err());
    }
}
