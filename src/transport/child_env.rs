//! The environment a command certroll starts on this machine begins with: certroll's own,
//! minus the variables that hold certroll's secrets.
//!
//! A local node's `reload`, `confirm` and `probe`, the scripts that write its files, and a
//! `sudo` that wraps them are children of certroll, and a child inherits the environment.
//! When a CA's passphrase or PIN comes from an environment variable (`passphrase_env`,
//! `pin_env`), that variable is in certroll's environment for the whole run, so every
//! such child would read it. The command layer names those variables once
//! ([`SecretEnv::new`]) and hands them down through the connector to the transports; the
//! transport removes them from each child it spawns. Nothing here reads the inventory,
//! and certroll's own environment is never changed (removing a variable from a running,
//! threaded process is not safe).
//!
//! SSH nodes need nothing: certroll never forwards environment variables (nor its agent)
//! over a session, so a remote command sees only what the node's sshd gives it.

use std::process::Command;
use std::sync::Arc;

/// The names of the environment variables no child of certroll may inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretEnv {
    names: Arc<[String]>,
}

impl SecretEnv {
    /// Hides `names` (duplicates and empty names are dropped).
    pub fn new<I, S>(names: I) -> SecretEnv
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list: Vec<String> = names
            .into_iter()
            .map(Into::into)
            .filter(|n| !n.is_empty())
            .collect();
        list.sort();
        list.dedup();
        SecretEnv { names: list.into() }
    }

    /// Nothing to hide.
    pub fn none() -> SecretEnv {
        SecretEnv::default()
    }

    /// The hidden names, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Removes every hidden variable from the environment `cmd` will start with.
    pub fn strip(&self, cmd: &mut Command) {
        for name in self.names.iter() {
            cmd.env_remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sorted_once_without_empty_ones() {
        let env = SecretEnv::new(["PIN", "", "PASS", "PIN"]);
        assert_eq!(env.names(), ["PASS", "PIN"]);
        assert!(SecretEnv::none().names().is_empty());
    }

    #[test]
    fn a_hidden_variable_does_not_reach_the_child() {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("printf '%s|%s' \"${CERTROLL_T_SECRET-unset}\" \"${CERTROLL_T_PLAIN-unset}\"")
            .env("CERTROLL_T_SECRET", "hunter2")
            .env("CERTROLL_T_PLAIN", "shown");
        SecretEnv::new(["CERTROLL_T_SECRET"]).strip(&mut cmd);
        let out = cmd.output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "unset|shown");
    }
}
