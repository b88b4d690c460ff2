//! `key_store = "pkcs11"`: CA keys inside a PKCS#11 token (an HSM, a smart card,
//! SoftHSM). certroll generates a generation's key pair in the token (sensitive, not
//! extractable), signs through the token, and never sees the private key.
//!
//! One logged-in session per run and token, opened at the edge of a command
//! ([`Token::open`]); signatures go through it one at a time. ECDSA signs the SHA-256/384
//! digest with `CKM_ECDSA` and turns the raw `r‖s` into the DER `ECDSA-Sig-Value` X.509
//! wants; RSA uses `CKM_SHA256_RSA_PKCS`; Ed25519 uses `CKM_EDDSA`.
//!
//! This file opens the session and logs in; the token's keys (generation, lookup) are in
//! `token_keys.rs`, signing and the DER it needs in `token_sign.rs`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::inventory::Pkcs11Spec;

#[path = "token_keys.rs"]
mod keys;
#[path = "token_sign.rs"]
mod sign;

pub use sign::TokenSigner;

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
        let slot = find_slot(&context, spec)?;
        let session = context
            .open_rw_session(slot)
            .map_err(|e| spec_op(spec, "open a session", e))?;
        let pin = AuthPin::from(pin);
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid, _)) => {
                return Err(TokenError::WrongPin {
                    module: spec.module.clone(),
                    token: spec.token.clone(),
                })
            }
            Err(e) => return Err(spec_op(spec, "log in", e)),
        }
        Ok(Arc::new(Token {
            _context: context,
            session: Mutex::new(session),
            module: spec.module.clone(),
            label: spec.token.clone(),
        }))
    }

    fn op(&self, action: &str, e: impl std::fmt::Display) -> TokenError {
        operation(&self.module, &self.label, action, e)
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        // A panic while signing leaves the session usable: PKCS#11 keeps no partial state
        // across a failed C_Sign.
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn no_key(&self, label: &str) -> TokenError {
        TokenError::NoKey {
            module: self.module.clone(),
            token: self.label.clone(),
            label: label.to_string(),
        }
    }
}

/// The first slot whose token is labelled `spec.token`; the error lists the labels found.
fn find_slot(context: &Pkcs11, spec: &Pkcs11Spec) -> Result<Slot, TokenError> {
    let slots = context
        .get_slots_with_token()
        .map_err(|e| spec_op(spec, "list slots", e))?;
    let mut found = Vec::new();
    let mut chosen = None;
    for slot in slots {
        let info = context
            .get_token_info(slot)
            .map_err(|e| spec_op(spec, "read token info", e))?;
        let label = info.label().trim_end().to_string();
        if label == spec.token && chosen.is_none() {
            chosen = Some(slot);
        }
        found.push(format!("{label:?}"));
    }
    chosen.ok_or_else(|| TokenError::NoToken {
        module: spec.module.clone(),
        token: spec.token.clone(),
        found: if found.is_empty() {
            "none".into()
        } else {
            found.join(", ")
        },
    })
}

/// A failed `action` on the token `spec` names, before it is open.
fn spec_op(spec: &Pkcs11Spec, action: &str, e: CkError) -> TokenError {
    operation(&spec.module, &spec.token, action, e)
}

fn operation(
    module: &std::path::Path,
    token: &str,
    action: &str,
    e: impl std::fmt::Display,
) -> TokenError {
    TokenError::Operation {
        module: module.into(),
        token: token.into(),
        action: action.into(),
        message: e.to_string(),
    }
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
