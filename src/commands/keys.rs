//! The edge where a command unlocks a CA's key store, once per run (docs/keys.md#ca-keys):
//! the passphrase of an `encrypted` store or the PIN of a `pkcs11` one comes from the
//! environment variable or the file the inventory names, else from the terminal, and a
//! `pkcs11` token is opened and logged in to here.
//!
//! Everything that can be wrong with a key store — no secret and no terminal, a secret
//! file others can read, a wrong passphrase or PIN, a missing module, token or key — is
//! found here, before the command writes anything, and exits 78 (configuration).

use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::inventory::{CaSpec, Inventory, KeyStore, SecretSource};
use crate::pki::token::Token;
use crate::pki::{CaStore, Unlock, Unlocked};
use crate::session::CommandError;
use crate::transport::SecretEnv;

/// The environment variables that hold a secret of any CA of the inventory (its
/// `passphrase_env` or `pin_env`), whether or not this command reads them: no command
/// certroll runs on a node of this machine may inherit one (docs/keys.md#ca-keys).
pub fn secret_env(inv: &Inventory) -> SecretEnv {
    let names = inv.cas.iter().filter_map(|ca| {
        let source = match &ca.key_store {
            KeyStore::File => return None,
            KeyStore::Encrypted { passphrase } => passphrase,
            KeyStore::Pkcs11(p11) => &p11.pin,
        };
        match source {
            SecretSource::Env(var) => Some(var.clone()),
            SecretSource::File(_) | SecretSource::Prompt => None,
        }
    });
    SecretEnv::new(names)
}

/// What a secret is for, in prompts and messages.
struct Secret<'a> {
    /// "passphrase" or "PIN".
    what: &'static str,
    /// The inventory keys that name its sources, e.g. ("passphrase_env", "passphrase_file").
    keys: (&'static str, &'static str),
    source: &'a SecretSource,
}

/// Unlocks the key store of `spec` for a command that signs with it or writes a key, and
/// checks what is there already: the current and next generations' keys must decrypt
/// (or be found in the token) and belong to their certificates. `file` stores need
/// nothing. Returns the store, ready to use.
pub fn open_store(state_dir: &Path, spec: &CaSpec) -> Result<CaStore, CommandError> {
    let plain = CaStore::new(state_dir);
    let creating = plain.current(spec).ok().flatten().is_none();
    let unlock = unlock(spec, creating)?;
    let store = plain.with_unlock(unlock);
    for read in [CaStore::current, CaStore::next] {
        if let Err(e) = read(&store, spec) {
            if e.is_key_store() {
                return Err(CommandError::BadInput(format!("{e}; nothing was written")));
            }
            // Other damage is reported where the command reads the store.
        }
    }
    Ok(store)
}

/// Gets the secret of `spec`'s key store and, for a token, logs in. `creating`: the CA
/// has no generation yet, so a prompted passphrase is asked twice.
pub fn unlock(spec: &CaSpec, creating: bool) -> Result<Unlock, CommandError> {
    let mut unlock = Unlock::default();
    match &spec.key_store {
        KeyStore::File => {}
        KeyStore::Encrypted { passphrase } => {
            let secret = Secret {
                what: "passphrase",
                keys: ("passphrase_env", "passphrase_file"),
                source: passphrase,
            };
            let value = read_secret(spec, &secret, creating)?;
            unlock.insert(&spec.name, Unlocked::Passphrase(value));
        }
        KeyStore::Pkcs11(p11) => {
            let secret = Secret {
                what: "PIN",
                keys: ("pin_env", "pin_file"),
                source: &p11.pin,
            };
            let pin = read_secret(spec, &secret, false)?;
            let token = Token::open(p11, &pin).map_err(|e| {
                CommandError::BadInput(format!("CA {}: {e}; nothing was written", spec.name))
            })?;
            unlock.insert(&spec.name, Unlocked::Token(token));
        }
    }
    Ok(unlock)
}

fn read_secret(
    spec: &CaSpec,
    secret: &Secret<'_>,
    twice: bool,
) -> Result<Zeroizing<String>, CommandError> {
    let bad = |message: String| CommandError::BadInput(format!("{message}; nothing was written"));
    let store = spec.key_store.as_str();
    let name = &spec.name;
    let what = secret.what;
    match secret.source {
        SecretSource::Env(var) => {
            let value = Zeroizing::new(std::env::var(var).map_err(|_| {
                bad(format!(
                    "CA {name} takes its {what} from the environment variable {var} \
                     ({} in the inventory), which is not set",
                    secret.keys.0
                ))
            })?);
            if value.is_empty() {
                return Err(bad(format!(
                    "CA {name} takes its {what} from the environment variable {var}, which is \
                     empty"
                )));
            }
            Ok(value)
        }
        SecretSource::File(path) => read_secret_file(path).map_err(|why| {
            bad(format!(
                "failed to read the {what} of CA {name} from {} ({}): {why}",
                path.display(),
                secret.keys.1
            ))
        }),
        SecretSource::Prompt => {
            if !std::io::stdin().is_terminal() {
                return Err(bad(format!(
                    "CA {name} has key_store = \"{store}\" and neither {} nor {}, and there \
                     is no terminal to ask for its {what} on",
                    secret.keys.0, secret.keys.1
                )));
            }
            let prompt = format!("{what} for CA {name}: ");
            let first = Zeroizing::new(
                rpassword::prompt_password(&prompt)
                    .map_err(|e| bad(format!("failed to read the {what} of CA {name}: {e}")))?,
            );
            if first.is_empty() {
                return Err(bad(format!("the {what} of CA {name} is empty")));
            }
            if twice {
                let again = Zeroizing::new(
                    rpassword::prompt_password(format!("{what} for CA {name} (again): "))
                        .map_err(|e| bad(format!("failed to read the {what} of CA {name}: {e}")))?,
                );
                if *again != *first {
                    return Err(bad(format!("the two {what}s for CA {name} differ")));
                }
            }
            Ok(first)
        }
    }
}

/// A secret file: a regular file nobody but its owner may read, one trailing newline
/// stripped.
pub fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "it has mode {mode:o}; a secret file must not be readable by group or other \
             (chmod 600 it)"
        ));
    }
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| e.to_string())?);
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8 text".to_string())?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if text.is_empty() {
        return Err("it is empty".into());
    }
    Ok(Zeroizing::new(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn secret_file_strips_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "p", "pass word\n\n", 0o600);
        assert_eq!(read_secret_file(&p).unwrap().as_str(), "pass word\n");
        let p = write(dir.path(), "q", "x", 0o400);
        assert_eq!(read_secret_file(&p).unwrap().as_str(), "x");
    }

    #[test]
    fn secret_file_readable_by_group_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "p", "secret\n", 0o640);
        let why = read_secret_file(&p).unwrap_err();
        assert!(
            why.contains("mode 640") && why.contains("chmod 600"),
            "{why}"
        );
        let p = write(dir.path(), "o", "secret\n", 0o604);
        assert!(read_secret_file(&p).is_err());
        assert!(read_secret_file(dir.path())
            .unwrap_err()
            .contains("regular file"));
        let p = write(dir.path(), "e", "\n", 0o600);
        assert!(read_secret_file(&p).unwrap_err().contains("empty"));
    }

    #[test]
    fn the_passphrase_and_pin_variables_of_every_ca_are_secret() {
        let text = "[ca.a]\nkey_store = \"encrypted\"\npassphrase_env = \"A_PASS\"\n\
                    [ca.b]\nkey_store = \"pkcs11\"\npkcs11_module = \"/m.so\"\n\
                    pkcs11_token = \"t\"\npkcs11_key_label = \"k\"\npin_env = \"B_PIN\"\n\
                    [ca.c]\nkey_store = \"encrypted\"\npassphrase_file = \"/p\"\n\
                    [ca.d]\n";
        let inv = crate::inventory::parse_str(text, Path::new("/inv/fleet.toml")).unwrap();
        assert_eq!(secret_env(&inv).names(), ["A_PASS", "B_PIN"]);
    }

    #[test]
    fn missing_env_is_a_config_error() {
        let mut spec = CaSpec::new("internal", "CN=internal CA");
        spec.key_store = KeyStore::Encrypted {
            passphrase: SecretSource::Env("CERTROLL_TEST_SURELY_UNSET_VAR".into()),
        };
        let err = unlock(&spec, true).unwrap_err();
        assert_eq!(err.exit_code(), crate::exit::BAD_INVENTORY);
        let text = err.to_string();
        assert!(
            text.contains("CERTROLL_TEST_SURELY_UNSET_VAR") && text.contains("nothing was written"),
            "{text}"
        );
    }
}
