//! What a command unlocked for the CA store, once, at its edge: an `encrypted` store's
//! passphrase or a `pkcs11` store's logged-in token, by CA name.
//!
//! The store never reads an environment variable, a file or a terminal itself: commands
//! gather the secrets first (src/commands/keys.rs), so that a wrong one stops the command
//! before anything is written, and the simulation, which has no [`Unlock`], can never
//! reach a token or ask for a passphrase.

use std::collections::BTreeMap;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::token::Token;

/// The unlocked key stores of one run. `Debug` never shows a secret.
#[derive(Clone, Default)]
pub struct Unlock {
    cas: BTreeMap<String, Unlocked>,
}

/// One CA's unlocked store.
#[derive(Clone)]
pub enum Unlocked {
    /// The passphrase of an `encrypted` store (zeroized when dropped).
    Passphrase(Zeroizing<String>),
    /// The logged-in token of a `pkcs11` store.
    Token(Arc<Token>),
}

impl Unlock {
    /// Records what was unlocked for CA `ca`.
    pub fn insert(&mut self, ca: &str, unlocked: Unlocked) {
        self.cas.insert(ca.to_string(), unlocked);
    }

    /// What was unlocked for CA `ca`, if anything.
    pub fn get(&self, ca: &str) -> Option<&Unlocked> {
        self.cas.get(ca)
    }

    /// The passphrase given for CA `ca`.
    pub fn passphrase(&self, ca: &str) -> Option<&str> {
        match self.get(ca) {
            Some(Unlocked::Passphrase(p)) => Some(p.as_str()),
            _ => None,
        }
    }

    /// The token opened for CA `ca`.
    pub fn token(&self, ca: &str) -> Option<&Arc<Token>> {
        match self.get(ca) {
            Some(Unlocked::Token(t)) => Some(t),
            _ => None,
        }
    }
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (ca, unlocked) in &self.cas {
            match unlocked {
                Unlocked::Passphrase(_) => map.entry(ca, &"passphrase <redacted>"),
                Unlocked::Token(t) => map.entry(ca, t),
            };
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_passphrase() {
        let mut u = Unlock::default();
        u.insert(
            "internal",
            Unlocked::Passphrase(Zeroizing::new("hunter2".into())),
        );
        let shown = format!("{u:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("internal"),
            "{shown}"
        );
        assert_eq!(u.passphrase("internal"), Some("hunter2"));
        assert!(u.token("internal").is_none() && u.get("other").is_none());
    }
}
