//! The store's side of `certroll ca extend`: the current generation's certificate is
//! replaced by its same-key extension, and the certificate it replaces is kept beside it
//! (`gN/extended/ca-<serial>.pem`) as a record of what nodes may still trust.
//!
//! The new `ca.pem` is written atomically last: a crash leaves the old certificate in use
//! (and perhaps its record already copied), never a generation without a certificate.

use super::super::atomic::{create_private_dir, write_private};
use super::super::{parse_pem_certs, CaCert, PkiError};
use super::{generation_dir, read_pointer, CaStore};
use crate::inventory::CaSpec;

impl CaStore {
    /// Makes `extended` (the current generation re-issued with its key) the current
    /// generation's certificate. Refused while a rotation runs or when `extended` is not
    /// of the current generation's key.
    pub fn extend_current(&self, spec: &CaSpec, extended: &CaCert) -> Result<(), PkiError> {
        let root = self.ca_dir(spec)?;
        let state = |message: String| PkiError::State {
            path: root.clone(),
            message,
        };
        if read_pointer(&root.join("next"))?.is_some() {
            return Err(state(format!(
                "refusing to extend CA {}: a rotation is in progress; finish it (`certroll apply`) or roll it back first",
                spec.name
            )));
        }
        let current = self.current(spec)?.ok_or_else(|| {
            state(format!(
                "CA {} was never created: nothing to extend",
                spec.name
            ))
        })?;
        let key = |pem: &str| {
            parse_pem_certs(pem.as_bytes())
                .ok()
                .and_then(|c| c.into_iter().next())
                .map(|c| (c.spki_sha256, c.serial_hex))
        };
        let (Some((old_key, old_serial)), Some((new_key, _))) =
            (key(&current.cert_pem), key(&extended.cert_pem))
        else {
            return Err(state(
                "a certificate of the extension does not parse".into(),
            ));
        };
        if old_key != new_key || current.generation != extended.generation {
            return Err(state(format!(
                "refusing to extend CA {}: the new certificate is not of generation G{}'s key",
                spec.name, current.generation
            )));
        }
        let dir = generation_dir(&root, current.generation);
        let record = dir.join("extended");
        create_private_dir(&record)?;
        write_private(
            &record.join(format!("ca-{old_serial}.pem")),
            current.cert_pem.as_bytes(),
        )?;
        write_private(&dir.join("ca.pem"), extended.cert_pem.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    #[test]
    fn the_extension_replaces_ca_pem_and_keeps_the_old_certificate_on_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = CaStore::new(dir.path());
        let spec = CaSpec::new("internal", "CN=Test CA");
        let now = OffsetDateTime::now_utc();
        let g1 = store.init(&spec, now).unwrap();
        let longer =
            crate::pki::extend::extend(&spec, &g1, now + time::Duration::days(10)).unwrap();
        store.extend_current(&spec, &longer).unwrap();
        let current = store.current(&spec).unwrap().unwrap();
        assert_eq!(current.cert_pem, longer.cert_pem);
        assert_eq!(current.generation, 1);
        assert!(
            current.key_pem().is_some(),
            "the key is unchanged and still loads"
        );
        let kept = std::fs::read_dir(dir.path().join("ca/internal/g1/extended"))
            .unwrap()
            .count();
        assert_eq!(kept, 1);
        // Another key's certificate is refused.
        let other = crate::pki::new_ca(&spec, 1, now).unwrap();
        let err = store.extend_current(&spec, &other).unwrap_err().to_string();
        assert!(err.contains("not of generation G1's key"), "{err}");
    }
}
