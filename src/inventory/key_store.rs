//! `key_store` and its settings in `[ca.NAME]`: where a CA's generation keys live at rest.
//!
//! The inventory names where a passphrase or PIN comes from (an environment variable or a
//! file), never the secret itself: an inventory is shared and versioned, a secret is not.
//! Keys that belong to another store are refused rather than ignored, so that a typo in
//! `key_store` does not silently leave a key in plain text.

use std::path::PathBuf;

use super::locate::ValuePath;
use super::raw::RawCa;
use super::validate::Problem;
use super::{KeyStore, Pkcs11Spec, SecretSource};

/// Builds the `key_store` of CA `name` from its table.
pub fn build(name: &str, raw: &RawCa) -> Result<KeyStore, Problem> {
    let at = |key: &str| ValuePath::keys(&["ca", name, key]);
    let store = raw.key_store.as_deref().unwrap_or("file");
    let passphrase_keys = [
        ("passphrase_env", raw.passphrase_env.is_some()),
        ("passphrase_file", raw.passphrase_file.is_some()),
    ];
    let pkcs11_keys = [
        ("pkcs11_module", raw.pkcs11_module.is_some()),
        ("pkcs11_token", raw.pkcs11_token.is_some()),
        ("pkcs11_key_label", raw.pkcs11_key_label.is_some()),
        ("pin_env", raw.pin_env.is_some()),
        ("pin_file", raw.pin_file.is_some()),
    ];
    let refuse_foreign = |keys: &[(&str, bool)], belongs: &str| -> Result<(), Problem> {
        match keys.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(Problem::new(
                at(key),
                format!(
                    "{key} of CA {name} only applies to key_store = \"{belongs}\", not \"{store}\""
                ),
            )
            .or_at(at("key_store"))
            .hint(format!("set key_store = \"{belongs}\" or remove {key}"))),
            None => Ok(()),
        }
    };
    match store {
        "file" => {
            refuse_foreign(&passphrase_keys, "encrypted")?;
            refuse_foreign(&pkcs11_keys, "pkcs11")?;
            Ok(KeyStore::File)
        }
        "encrypted" => {
            refuse_foreign(&pkcs11_keys, "pkcs11")?;
            let passphrase = secret(
                name,
                ("passphrase_env", &raw.passphrase_env),
                ("passphrase_file", &raw.passphrase_file),
            )?;
            Ok(KeyStore::Encrypted { passphrase })
        }
        "pkcs11" => {
            refuse_foreign(&passphrase_keys, "encrypted")?;
            let required = |key: &str, value: &Option<String>| {
                value.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
                    Problem::new(
                        at("key_store"),
                        format!("CA {name} has key_store = \"pkcs11\" but no {key}"),
                    )
                    .hint(
                        "a pkcs11 store needs pkcs11_module (the module's .so), pkcs11_token \
                         (the token label) and pkcs11_key_label (the keys' base label)",
                    )
                })
            };
            let module = required("pkcs11_module", &raw.pkcs11_module)?;
            let token = required("pkcs11_token", &raw.pkcs11_token)?;
            let key_label = required("pkcs11_key_label", &raw.pkcs11_key_label)?;
            let pin = secret(name, ("pin_env", &raw.pin_env), ("pin_file", &raw.pin_file))?;
            Ok(KeyStore::Pkcs11(Pkcs11Spec {
                module: PathBuf::from(module),
                token,
                key_label,
                pin,
            }))
        }
        other => Err(Problem::new(
            at("key_store"),
            format!("unknown key_store {other:?} for CA {name}"),
        )
        .hint("use \"file\" (the default), \"encrypted\" or \"pkcs11\"")),
    }
}

/// One of an `*_env` and an `*_file` key, or neither (prompt).
fn secret(
    name: &str,
    env: (&str, &Option<String>),
    file: (&str, &Option<String>),
) -> Result<SecretSource, Problem> {
    let at = |key: &str| ValuePath::keys(&["ca", name, key]);
    match (env.1, file.1) {
        (Some(_), Some(_)) => Err(Problem::new(
            at(file.0),
            format!("CA {name} sets both {} and {}", env.0, file.0),
        )
        .hint(format!("keep one of {} and {}", env.0, file.0))),
        (Some(var), None) => {
            let valid = !var.is_empty() && !var.contains(['=', '\0']);
            if !valid {
                return Err(Problem::new(
                    at(env.0),
                    format!("{} of CA {name} is not an environment variable name", env.0),
                )
                .hint("write the variable's name, e.g. \"CERTROLL_CA_PASSPHRASE\""));
            }
            Ok(SecretSource::Env(var.clone()))
        }
        (None, Some(path)) if path.is_empty() => Err(Problem::new(
            at(file.0),
            format!("{} of CA {name} is empty", file.0),
        )),
        (None, Some(path)) => Ok(SecretSource::File(PathBuf::from(path))),
        (None, None) => Ok(SecretSource::Prompt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_file() {
        assert_eq!(build("x", &RawCa::default()).unwrap(), KeyStore::File);
    }

    #[test]
    fn encrypted_takes_one_secret_source() {
        let raw = RawCa {
            key_store: Some("encrypted".into()),
            passphrase_env: Some("PASS".into()),
            ..RawCa::default()
        };
        assert_eq!(
            build("x", &raw).unwrap(),
            KeyStore::Encrypted {
                passphrase: SecretSource::Env("PASS".into())
            }
        );
        let both = RawCa {
            passphrase_file: Some("/p".into()),
            ..raw
        };
        let p = build("x", &both).unwrap_err();
        assert!(p
            .message
            .contains("sets both passphrase_env and passphrase_file"));
    }

    #[test]
    fn foreign_keys_are_refused() {
        let raw = RawCa {
            passphrase_env: Some("PASS".into()),
            ..RawCa::default()
        };
        let p = build("x", &raw).unwrap_err();
        assert!(p
            .message
            .contains("only applies to key_store = \"encrypted\""));
        let raw = RawCa {
            key_store: Some("encrypted".into()),
            pin_env: Some("PIN".into()),
            ..RawCa::default()
        };
        assert!(build("x", &raw).is_err());
    }

    #[test]
    fn pkcs11_needs_module_token_and_label() {
        let mut raw = RawCa {
            key_store: Some("pkcs11".into()),
            pkcs11_module: Some("/m.so".into()),
            pkcs11_token: Some("tok".into()),
            ..RawCa::default()
        };
        let p = build("x", &raw).unwrap_err();
        assert!(p.message.contains("no pkcs11_key_label"), "{}", p.message);
        raw.pkcs11_key_label = Some("ca".into());
        raw.pin_file = Some("/pin".into());
        let KeyStore::Pkcs11(spec) = build("x", &raw).unwrap() else {
            panic!("not pkcs11");
        };
        assert_eq!(spec.pin, SecretSource::File("/pin".into()));
        assert_eq!(spec.token, "tok");
    }

    #[test]
    fn unknown_store_is_refused() {
        let raw = RawCa {
            key_store: Some("vault".into()),
            ..RawCa::default()
        };
        assert!(build("x", &raw)
            .unwrap_err()
            .message
            .contains("unknown key_store"));
    }
}
