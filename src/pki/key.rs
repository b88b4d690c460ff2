//! A CA generation's private key as the store holds it, and the signer every issuing path
//! uses (docs/keys.md#ca-keys).
//!
//! A key is either PEM in memory (a `file` store, or an `encrypted` one after this run
//! unlocked it), an encrypted file this run did not unlock (read-only commands never ask
//! for a passphrase), or a reference to a key inside a PKCS#11 token, which certroll signs
//! through and never sees. [`CaSigner`] is the one rcgen signing key the issuing code
//! knows; whether the signature is computed here or in a token is hidden behind it.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm, SigningKey};
use zeroize::Zeroizing;

use super::keys::load_key;
use super::token::{Token, TokenSigner};

/// The private key of one CA generation. `Debug` never shows key material.
#[derive(Clone)]
pub enum CaKey {
    /// PKCS#8 PEM in memory: a `file` store's `ca.key`, or an `encrypted` one decrypted.
    Pem(Zeroizing<String>),
    /// An encrypted `ca.key` this run was given no passphrase for: certroll knows the
    /// generation holds its key but cannot sign with it.
    Locked(PathBuf),
    /// A key inside a PKCS#11 token (`ca.key.ref`).
    Token(TokenKey),
}

/// A key in a token: its reference, and the open token when this run logged in.
#[derive(Clone)]
pub struct TokenKey {
    pub reference: TokenKeyRef,
    pub(crate) token: Option<Arc<Token>>,
}

impl TokenKey {
    /// The key `reference` names in the logged-in `token`.
    pub fn open(reference: TokenKeyRef, token: Arc<Token>) -> TokenKey {
        TokenKey {
            reference,
            token: Some(token),
        }
    }
}

/// What `ca.key.ref` records: no secret, and nothing that depends on the module's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeyRef {
    /// The token label.
    pub token: String,
    /// The private key's `CKA_LABEL`.
    pub label: String,
    /// The private key's `CKA_ID`, hex (empty when the key has none).
    pub id_hex: String,
}

impl TokenKeyRef {
    /// The file's text: `token = …`, `label = …`, `id = …`, one per line.
    pub fn to_text(&self) -> String {
        format!(
            "# A CA key inside a PKCS#11 token; certroll signs through the token.\n\
             token = {}\nlabel = {}\nid = {}\n",
            self.token, self.label, self.id_hex
        )
    }

    /// Parses [`TokenKeyRef::to_text`]; the message says what is missing.
    pub fn parse(text: &str) -> Result<TokenKeyRef, String> {
        let mut fields = [None, None, None];
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once(" = ")
                .ok_or_else(|| format!("line {line:?} is not `key = value`"))?;
            let slot = match key {
                "token" => 0,
                "label" => 1,
                "id" => 2,
                other => return Err(format!("unknown field {other:?}")),
            };
            fields[slot] = Some(value.to_string());
        }
        let [Some(token), Some(label), id] = fields else {
            return Err("it needs a token and a label".into());
        };
        let id_hex = id.unwrap_or_default();
        if hex::decode(&id_hex).is_err() {
            return Err(format!("id {id_hex:?} is not hex"));
        }
        Ok(TokenKeyRef {
            token,
            label,
            id_hex,
        })
    }
}

impl CaKey {
    /// A signer for this key; the message says why there is none and never holds key
    /// material.
    pub fn signer(&self) -> Result<CaSigner, String> {
        match self {
            CaKey::Pem(pem) => load_key(pem).map(CaSigner::Pair),
            CaKey::Locked(path) => Err(format!(
                "the key {} is encrypted and this command was given no passphrase for it",
                path.display()
            )),
            CaKey::Token(key) => {
                let token = key.token.as_ref().ok_or_else(|| {
                    format!(
                        "the key {:?} is in PKCS#11 token {:?} and this command did not log \
                         in to it",
                        key.reference.label, key.reference.token
                    )
                })?;
                token.signer(&key.reference).map(CaSigner::Token)
            }
        }
    }

    /// The store the key is in, for messages: `file`, `encrypted` or `pkcs11`.
    pub fn kind(&self) -> &'static str {
        match self {
            CaKey::Pem(_) => "in memory",
            CaKey::Locked(_) => "encrypted",
            CaKey::Token(_) => "pkcs11",
        }
    }
}

impl std::fmt::Debug for CaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaKey::Pem(_) => f.write_str("CaKey::Pem(<redacted>)"),
            CaKey::Locked(path) => f.debug_tuple("CaKey::Locked").field(path).finish(),
            CaKey::Token(key) => f.debug_tuple("CaKey::Token").field(&key.reference).finish(),
        }
    }
}

/// The signing key of an issuing CA: a key pair in memory, or a key in a token. Short-lived
/// (one per certificate signed), so the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum CaSigner {
    Pair(KeyPair),
    Token(TokenSigner),
}

impl PublicKeyData for CaSigner {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaSigner::Pair(k) => k.der_bytes(),
            CaSigner::Token(t) => t.der_bytes(),
        }
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            CaSigner::Pair(k) => k.algorithm(),
            CaSigner::Token(t) => t.algorithm(),
        }
    }
}

impl SigningKey for CaSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CaSigner::Pair(k) => k.sign(msg),
            CaSigner::Token(t) => t.sign(msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_pem() {
        let pair = KeyPair::generate().unwrap();
        let pem = pair.serialize_pem();
        let key = CaKey::Pem(Zeroizing::new(pem.clone()));
        let shown = format!("{key:?}");
        assert!(!shown.contains(pem.lines().nth(1).unwrap()), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn reference_round_trips() {
        let r = TokenKeyRef {
            token: "ca token".into(),
            label: "internal G2".into(),
            id_hex: "0a0b".into(),
        };
        assert_eq!(TokenKeyRef::parse(&r.to_text()).unwrap(), r);
        assert!(TokenKeyRef::parse("token = t\n").is_err());
        assert!(TokenKeyRef::parse("token = t\nlabel = l\nid = zz\n").is_err());
    }

    #[test]
    fn locked_key_names_its_file() {
        let key = CaKey::Locked("/s/ca/x/g1/ca.key".into());
        let err = key.signer().err().unwrap();
        assert!(err.contains("/s/ca/x/g1/ca.key") && err.contains("no passphrase"));
    }
}
