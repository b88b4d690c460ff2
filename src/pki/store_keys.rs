//! Where the store keeps a generation's private key, per the CA's `key_store`
//! (docs/keys.md#ca-keys): `ca.key` for `file` (PKCS#8 PEM) and `encrypted` (encrypted
//! PKCS#8), `ca.key.ref` for `pkcs11` (which token key; the key stays in the token).
//! Making a new generation's key, turning a key into the file to write, and loading it
//! back, checked against the certificate whenever it can be read.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::PublicKeyData;
use zeroize::Zeroizing;

use super::super::encrypted::{decrypt_pem, encrypt_pem, is_encrypted};
use super::super::issue::generate_pem;
use super::super::key::{TokenKey, TokenKeyRef};
use super::super::keys::load_key;
use super::super::{CaCert, CaKey, PkiError, Unlock};
use super::generation::{read_optional, read_text};
use super::{damaged, CaStore};
use crate::inventory::{CaSpec, KeyStore};

/// The key file of a `file` or `encrypted` store.
const KEY_FILE: &str = "ca.key";
/// The key reference of a `pkcs11` store.
const KEY_REF: &str = "ca.key.ref";

/// How a generation's key is loaded: the CA's name (for messages) and what the command
/// unlocked (`None`: nothing, keys load locked).
pub(super) struct KeyCtx<'a> {
    pub ca: &'a str,
    pub unlock: Option<&'a Unlock>,
}

impl<'a> KeyCtx<'a> {
    /// Loads keys without unlocking anything (for the certificates alone).
    pub fn none(ca: &'a str) -> Self {
        KeyCtx { ca, unlock: None }
    }
}

/// The key of generation `generation` of CA `ca` cannot be used (exit 78).
fn key_store_error(ca: &str, generation: u32, path: PathBuf, message: String) -> PkiError {
    PkiError::KeyStore {
        ca: ca.to_string(),
        generation: format!("G{generation}"),
        path,
        message,
    }
}

impl CaStore {
    /// A new generation's key, made where `spec`'s `key_store` keeps it: in memory for
    /// `file` and `encrypted` (written by [`CaStore::key_file`]), in the token for `pkcs11`.
    pub(super) fn new_key(
        &self,
        spec: &CaSpec,
        generation: u32,
        dir: &Path,
    ) -> Result<CaKey, PkiError> {
        let KeyStore::Pkcs11(p11) = &spec.key_store else {
            return generate_pem(spec.key_algorithm)
                .map(CaKey::Pem)
                .map_err(|m| PkiError::Generate {
                    ca: spec.name.clone(),
                    action: format!("create CA generation G{generation}"),
                    message: format!("key generation: {m}"),
                });
        };
        let fail = |message| key_store_error(&spec.name, generation, dir.join(KEY_REF), message);
        let token = self.unlock.token(&spec.name).ok_or_else(|| {
            fail(format!(
                "this command has not logged in to PKCS#11 token {:?}",
                p11.token
            ))
        })?;
        let label = format!(
            "{}{}",
            p11.key_label,
            super::super::generation_suffix(generation)
        );
        let reference = token
            .generate(spec.key_algorithm, &label)
            .map_err(|e| fail(e.to_string()))?;
        Ok(CaKey::Token(TokenKey {
            reference,
            token: Some(token.clone()),
        }))
    }

    /// What to write for `ca`'s key under `spec`'s `key_store`: the file name and its text.
    pub(in crate::pki) fn key_file(
        &self,
        spec: &CaSpec,
        ca: &CaCert,
        dir: &Path,
    ) -> Result<Option<(&'static str, Zeroizing<String>)>, PkiError> {
        let fail =
            |message| key_store_error(&spec.name, ca.generation, dir.join(KEY_FILE), message);
        let Some(key) = &ca.key else {
            return Ok(None);
        };
        match (key, &spec.key_store) {
            (CaKey::Pem(pem), KeyStore::File) => Ok(Some((KEY_FILE, pem.clone()))),
            (CaKey::Pem(pem), KeyStore::Encrypted { .. }) => {
                let passphrase = self
                    .unlock
                    .passphrase(&spec.name)
                    .ok_or_else(|| fail("this command was given no passphrase".into()))?;
                let encrypted =
                    encrypt_pem(pem, passphrase.as_bytes()).map_err(|e| fail(e.to_string()))?;
                Ok(Some((KEY_FILE, encrypted)))
            }
            (CaKey::Pem(_), KeyStore::Pkcs11(_)) => Err(fail(
                "key_store is \"pkcs11\": certroll does not copy a key into the token; \
                 put it there yourself and name it with --pkcs11-key-label"
                    .into(),
            )),
            (CaKey::Token(t), _) => Ok(Some((KEY_REF, Zeroizing::new(t.reference.to_text())))),
            (CaKey::Locked(path), _) => Err(fail(format!(
                "the key {} is locked in this command",
                path.display()
            ))),
        }
    }
}

/// The key of the generation in `dir`, checked against the certificate's `spki` whenever
/// it can be read (plain, decrypted, or in a logged-in token).
pub(super) fn load_key_of(
    dir: &Path,
    generation: u32,
    keys: &KeyCtx<'_>,
    spki: &[u8],
) -> Result<CaKey, PkiError> {
    let ref_path = dir.join(KEY_REF);
    match read_optional(&ref_path, "read CA key reference")? {
        Some(text) => load_token_key(&text, &ref_path, generation, keys, spki),
        None => load_key_file(&dir.join(KEY_FILE), generation, keys, spki),
    }
}

/// The token key `ca.key.ref` (`text`, at `ref_path`) names; checked when this command
/// logged in to the token.
fn load_token_key(
    text: &str,
    ref_path: &Path,
    generation: u32,
    keys: &KeyCtx<'_>,
    spki: &[u8],
) -> Result<CaKey, PkiError> {
    let fail = |message| key_store_error(keys.ca, generation, ref_path.into(), message);
    let reference = TokenKeyRef::parse(text).map_err(|m| damaged(ref_path, m))?;
    let token = keys.unlock.and_then(|u| u.token(keys.ca)).cloned();
    if let Some(token) = &token {
        if token.label != reference.token {
            return Err(fail(format!(
                "the key is in PKCS#11 token {:?}, but the inventory's pkcs11_token is {:?}",
                reference.token, token.label
            )));
        }
        let signer = token.signer(&reference).map_err(fail)?;
        if signer.subject_public_key_info() != spki {
            return Err(fail(format!(
                "token key {:?} does not belong to {}",
                reference.label,
                ref_path.with_file_name("ca.pem").display()
            )));
        }
    }
    Ok(CaKey::Token(TokenKey { reference, token }))
}

/// The key file `ca.key` at `key_path`: private (0600), decrypted when this command has
/// the passphrase (else locked), and the certificate's.
fn load_key_file(
    key_path: &Path,
    generation: u32,
    keys: &KeyCtx<'_>,
    spki: &[u8],
) -> Result<CaKey, PkiError> {
    let text = Zeroizing::new(read_text(key_path, "read CA key")?);
    let mode = fs::metadata(key_path)
        .map_err(|source| PkiError::Io {
            action: "inspect CA key".into(),
            path: key_path.into(),
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(damaged(
            key_path,
            format!(
                "CA key has mode {:o}; it must be 0600 (chmod 600 it)",
                mode & 0o777
            ),
        ));
    }
    let pem = if is_encrypted(&text) {
        match keys.unlock.and_then(|u| u.passphrase(keys.ca)) {
            Some(passphrase) => decrypt_pem(&text, passphrase.as_bytes()).map_err(|e| {
                key_store_error(keys.ca, generation, key_path.into(), e.to_string())
            })?,
            None => return Ok(CaKey::Locked(key_path.into())),
        }
    } else {
        text
    };
    let pair = load_key(&pem).map_err(|m| damaged(key_path, m))?;
    if pair.subject_public_key_info() != spki {
        return Err(damaged(
            key_path,
            format!(
                "the key does not belong to {}",
                key_path.with_file_name("ca.pem").display()
            ),
        ));
    }
    Ok(CaKey::Pem(pem))
}
