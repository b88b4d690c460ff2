//! `key_store = "pkcs11"`: CA keys inside a PKCS#11 token (an HSM, a smart card,
//! SoftHSM). certroll generates a generation's key pair in the token (sensitive, not
//! extractable), signs through the token, and never sees the private key.
//!
//! One logged-in session per run and token, opened at the edge of a command
//! ([`Token::open`]); signatures go through it one at a time. ECDSA signs the SHA-256/384
//! digest with `CKM_ECDSA` and turns the raw `r‖s` into the DER `ECDSA-Sig-Value` X.509
//! wants; RSA uses `CKM_SHA256_RSA_PKCS`; Ed25519 uses `CKM_EDDSA`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use sha2::Digest;

use super::key::TokenKeyRef;
use crate::inventory::{KeyAlgorithm, Pkcs11Spec};

/// DER of the named-curve OIDs in `CKA_EC_PARAMS`.
const P256_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
const ED25519_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// Some tokens name the Edwards curve as a PrintableString instead of its OID.
const ED25519_NAME: &[u8] = b"\x13\x0cedwards25519";

/// Why the token could not be used. Every message names the module and the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("failed to load PKCS#11 module {module}: {message}")]
    Module { module: PathBuf, message: String },
    #[error("PKCS#11 module {module} has no token labelled {token:?} (tokens found: {found})")]
    NoToken {
        module: PathBuf,
        token: String,
        found: String,
    },
    #[error("failed to log in to PKCS#11 token {token:?} of module {module}: wrong PIN")]
    WrongPin { module: PathBuf, token: String },
    #[error("PKCS#11 token {token:?} of module {module} holds no private key labelled {label:?}")]
    NoKey {
        module: PathBuf,
        token: String,
        label: String,
    },
    #[error("failed to {action} in PKCS#11 token {token:?} of module {module}: {message}")]
    Operation {
        module: PathBuf,
        token: String,
        action: String,
        message: String,
    },
}

/// An open, logged-in token.
pub struct Token {
    // Kept so that the module stays loaded while the session lives.
    _context: Pkcs11,
    session: Mutex<Session>,
    pub module: PathBuf,
    pub label: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("module", &self.module)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Loads the module, finds the token by label and logs in with `pin`.
    pub fn open(spec: &Pkcs11Spec, pin: &str) -> Result<Arc<Token>, TokenError> {
        let module_error = |message: String| TokenError::Module {
            module: spec.module.clone(),
            message,
        };
        if !spec.module.is_file() {
            return Err(module_error("no such file".into()));
        }
        let context = Pkcs11::new(&spec.module).map_err(|e| module_error(e.to_string()))?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(module_error(format!("C_Initialize: {e}"))),
        }
        let op = |action: &str, e: CkError| TokenError::Operation {
            module: spec.module.clone(),
            token: spec.token.clone(),
            action: action.into(),
            message: e.to_string(),
        };
        let slots = context
            .get_slots_with_token()
            .map_err(|e| op("list slots", e))?;
        let mut found = Vec::new();
        let mut chosen = None;
        for slot in slots {
            let info = context
                .get_token_info(slot)
                .map_err(|e| op("read token info", e))?;
            let label = info.label().trim_end().to_string();
            if label == spec.token && chosen.is_none() {
                chosen = Some(slot);
            }
            found.push(format!("{label:?}"));
        }
        let slot = chosen.ok_or_else(|| TokenError::NoToken {
            module: spec.module.clone(),
            token: spec.token.clone(),
            found: if found.is_empty() {
                "none".into()
            } else {
                found.join(", ")
            },
        })?;
        let session = context
            .open_rw_session(slot)
            .map_err(|e| op("open a session", e))?;
        let pin = AuthPin::from(pin);
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid, _)) => {
                return Err(TokenError::WrongPin {
                    module: spec.module.clone(),
                    token: spec.token.clone(),
                })
            }
            Err(e) => return Err(op("log in", e)),
        }
        Ok(Arc::new(Token {
            _context: context,
            session: Mutex::new(session),
            module: spec.module.clone(),
            label: spec.token.clone(),
        }))
    }

    fn op(&self, action: &str, e: impl std::fmt::Display) -> TokenError {
        TokenError::Operation {
            module: self.module.clone(),
            token: self.label.clone(),
            action: action.into(),
            message: e.to_string(),
        }
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        // A panic while signing leaves the session usable: PKCS#11 keeps no partial state
        // across a failed C_Sign.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Generates a key pair labelled `label` in the token (token object, sensitive, not
    /// extractable, sign only). A key already labelled so (left by an interrupted run) is
    /// reused rather than doubled.
    pub fn generate(&self, alg: KeyAlgorithm, label: &str) -> Result<TokenKeyRef, TokenError> {
        if let Some(existing) = self.find_private(label, None)? {
            return self.reference(existing, label);
        }
        let id: [u8; 16] = rand::random();
        let (mechanism, public_extra) = match alg {
            KeyAlgorithm::EcdsaP256 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(P256_OID.to_vec())],
            ),
            KeyAlgorithm::EcdsaP384 => (
                Mechanism::EccKeyPairGen,
                vec![Attribute::EcParams(P384_OID.to_vec())],
            ),
            KeyAlgorithm::Ed25519 => (
                Mechanism::EccEdwardsKeyPairGen,
                vec![Attribute::EcParams(ED25519_OID.to_vec())],
            ),
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let bits = alg.rsa_bits().unwrap_or(2048) as u64;
                (
                    Mechanism::RsaPkcsKeyPairGen,
                    vec![
                        Attribute::ModulusBits(bits.into()),
                        Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                    ],
                )
            }
        };
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        public.extend(public_extra);
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        self.session()
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| self.op(&format!("generate {} key {label:?}", alg.as_str()), e))?;
        Ok(TokenKeyRef {
            token: self.label.clone(),
            label: label.to_string(),
            id_hex: hex::encode(id),
        })
    }

    /// The reference of an existing private key labelled `label`.
    pub fn find(&self, label: &str) -> Result<TokenKeyRef, TokenError> {
        let handle = self
            .find_private(label, None)?
            .ok_or_else(|| self.no_key(label))?;
        self.reference(handle, label)
    }

    fn no_key(&self, label: &str) -> TokenError {
        TokenError::NoKey {
            module: self.module.clone(),
            token: self.label.clone(),
            label: label.to_string(),
        }
    }

    fn reference(&self, handle: ObjectHandle, label: &str) -> Result<TokenKeyRef, TokenError> {
        let id = self.id_of(handle)?;
        Ok(TokenKeyRef {
            token: self.label.clone(),
            label: label.to_string(),
            id_hex: hex::encode(id),
        })
    }

    fn id_of(&self, handle: ObjectHandle) -> Result<Vec<u8>, TokenError> {
        let attrs = self
            .session()
            .get_attributes(handle, &[AttributeType::Id])
            .map_err(|e| self.op("read a key's id", e))?;
        Ok(attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::Id(id) => Some(id),
                _ => None,
            })
            .unwrap_or_default())
    }

    fn find_private(
        &self,
        label: &str,
        id: Option<&[u8]>,
    ) -> Result<Option<ObjectHandle>, TokenError> {
        let mut template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            template.push(Attribute::Id(id.to_vec()));
        }
        let found = self
            .session()
            .find_objects(&template)
            .map_err(|e| self.op(&format!("look up key {label:?}"), e))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            more => Err(self.op(
                &format!("look up key {label:?}"),
                format!(
                    "{} private keys carry that label; label each key once",
                    more.len()
                ),
            )),
        }
    }

    /// A signer for the key `reference` names, with its public key read from the token.
    pub fn signer(self: &Arc<Self>, reference: &TokenKeyRef) -> Result<TokenSigner, String> {
        self.signer_inner(reference).map_err(|e| e.to_string())
    }

    fn signer_inner(self: &Arc<Self>, reference: &TokenKeyRef) -> Result<TokenSigner, TokenError> {
        let id = hex::decode(&reference.id_hex).unwrap_or_default();
        let handle = self
            .find_private(&reference.label, Some(&id))?
            .ok_or_else(|| self.no_key(&reference.label))?;
        let label = &reference.label;
        let key_type = self
            .session()
            .get_attributes(handle, &[AttributeType::KeyType])
            .map_err(|e| self.op(&format!("read the type of key {label:?}"), e))?
            .into_iter()
            .find_map(|a| match a {
                Attribute::KeyType(t) => Some(t),
                _ => None,
            })
            .ok_or_else(|| self.op(&format!("read key {label:?}"), "it has no key type"))?;
        let public = self.public_object(handle, label)?;
        let (kind, der) = if key_type == KeyType::EC || key_type == KeyType::EC_EDWARDS {
            let attrs = self
                .session()
                .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
                .map_err(|e| self.op(&format!("read the public key of {label:?}"), e))?;
            let (mut params, mut point) = (Vec::new(), Vec::new());
            for a in attrs {
                match a {
                    Attribute::EcParams(p) => params = p,
                    Attribute::EcPoint(p) => point = p,
                    _ => {}
                }
            }
            let kind = match params.as_slice() {
                P256_OID => Kind::EcdsaP256,
                P384_OID => Kind::EcdsaP384,
                ED25519_OID | ED25519_NAME => Kind::Ed25519,
                _ => {
                    return Err(self.op(
                        &format!("use key {label:?}"),
                        "its curve is not P-256, P-384 or Ed25519",
                    ))
                }
            };
            (kind, unwrap_octet_string(&point, kind.point_len()))
        } else if key_type == KeyType::RSA {
            let attrs = self
                .session()
                .get_attributes(
                    public,
                    &[AttributeType::Modulus, AttributeType::PublicExponent],
                )
                .map_err(|e| self.op(&format!("read the public key of {label:?}"), e))?;
            let (mut n, mut e) = (Vec::new(), Vec::new());
            for a in attrs {
                match a {
                    Attribute::Modulus(m) => n = m,
                    Attribute::PublicExponent(x) => e = x,
                    _ => {}
                }
            }
            (Kind::Rsa, rsa_public_key_der(&n, &e))
        } else {
            return Err(self.op(
                &format!("use key {label:?}"),
                "it is neither an EC, Edwards nor RSA key",
            ));
        };
        Ok(TokenSigner {
            token: Arc::clone(self),
            handle,
            kind,
            public: der,
            last_error: Mutex::new(None),
        })
    }

    /// The public key object matching a private key: same `CKA_ID`, else same label.
    fn public_object(
        &self,
        private: ObjectHandle,
        label: &str,
    ) -> Result<ObjectHandle, TokenError> {
        let id = self.id_of(private)?;
        let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
        if id.is_empty() {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        } else {
            template.push(Attribute::Id(id));
        }
        let found = self
            .session()
            .find_objects(&template)
            .map_err(|e| self.op(&format!("look up the public key of {label:?}"), e))?;
        found.first().copied().ok_or_else(|| {
            self.op(
                &format!("use key {label:?}"),
                "the token holds no public key object with its CKA_ID",
            )
        })
    }

    /// Whether the private key `reference` names may leave the token (a test of the
    /// attributes certroll sets: `CKA_EXTRACTABLE` false, `CKA_SENSITIVE` true).
    pub fn is_extractable(&self, reference: &TokenKeyRef) -> Result<bool, TokenError> {
        let id = hex::decode(&reference.id_hex).unwrap_or_default();
        let handle = self
            .find_private(&reference.label, Some(&id))?
            .ok_or_else(|| self.no_key(&reference.label))?;
        let attrs = self
            .session()
            .get_attributes(
                handle,
                &[AttributeType::Extractable, AttributeType::Sensitive],
            )
            .map_err(|e| self.op("read key attributes", e))?;
        let mut extractable = true;
        let mut sensitive = false;
        for a in attrs {
            match a {
                Attribute::Extractable(x) => extractable = x,
                Attribute::Sensitive(s) => sensitive = s,
                _ => {}
            }
        }
        Ok(extractable || !sensitive)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa,
}

impl Kind {
    fn point_len(self) -> usize {
        match self {
            Kind::EcdsaP256 => 65,
            Kind::EcdsaP384 => 97,
            Kind::Ed25519 => 32,
            Kind::Rsa => 0,
        }
    }
}

/// Signs through a token key; rcgen sees an ordinary [`SigningKey`].
pub struct TokenSigner {
    token: Arc<Token>,
    handle: ObjectHandle,
    kind: Kind,
    /// `der_bytes`: the EC point, the raw Ed25519 key, or the DER `RSAPublicKey`.
    public: Vec<u8>,
    /// The token's message for the last failed signature (rcgen's error carries none).
    last_error: Mutex<Option<String>>,
}

impl TokenSigner {
    /// The token's reason for the last failed signature, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let session = self.token.session();
        let fail = |e: CkError| format!("the token refused to sign: {e}");
        match self.kind {
            Kind::EcdsaP256 => {
                let digest = sha2::Sha256::digest(msg);
                let raw = session
                    .sign(&Mechanism::Ecdsa, self.handle, &digest)
                    .map_err(fail)?;
                ecdsa_der(&raw, 32)
            }
            Kind::EcdsaP384 => {
                let digest = sha2::Sha384::digest(msg);
                let raw = session
                    .sign(&Mechanism::Ecdsa, self.handle, &digest)
                    .map_err(fail)?;
                ecdsa_der(&raw, 48)
            }
            Kind::Ed25519 => {
                let params = EddsaParams::new(EddsaSignatureScheme::Pure);
                session
                    .sign(&Mechanism::Eddsa(params), self.handle, msg)
                    .map_err(fail)
            }
            Kind::Rsa => session
                .sign(&Mechanism::Sha256RsaPkcs, self.handle, msg)
                .map_err(fail),
        }
    }
}

impl PublicKeyData for TokenSigner {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.kind {
            Kind::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Kind::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Kind::Ed25519 => &rcgen::PKCS_ED25519,
            Kind::Rsa => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl SigningKey for TokenSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.try_sign(msg).map_err(|message| {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the point on most tokens, bare on a few.
fn unwrap_octet_string(value: &[u8], point_len: usize) -> Vec<u8> {
    match value {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && rest.len() == point_len => {
            rest.to_vec()
        }
        _ => value.to_vec(),
    }
}

/// The DER `ECDSA-Sig-Value` (SEQUENCE of two INTEGERs) of a raw `r‖s` signature.
fn ecdsa_der(raw: &[u8], half: usize) -> Result<Vec<u8>, String> {
    if raw.len() != 2 * half {
        return Err(format!(
            "the token returned a {}-byte ECDSA signature, expected {}",
            raw.len(),
            2 * half
        ));
    }
    let (r, s) = raw.split_at(half);
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    Ok(der_tlv(0x30, &body))
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = der_integer(n);
    body.extend(der_integer(e));
    der_tlv(0x30, &body)
}

/// A non-negative DER INTEGER from big-endian bytes.
fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = match bytes.iter().position(|b| *b != 0) {
        Some(i) => bytes[i..].to_vec(),
        None => vec![0],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend(trimmed);
    der_tlv(0x02, &content)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
