//! The node keys of the other forms of a node's files (docs/inventory.md#stores):
//! `keystore`, `truststore`, `truststore_format`, `store_password_file`, `pkcs12_profile`,
//! `combined_pem`, `os_trust` (with `os_trust_dir` and `os_trust_update`), each inherited
//! from `[defaults]` like the paths, checked when the inventory is loaded so that a mistake
//! stops every command with its line and column before anything changes.

use super::nodes::key_at;
use super::raw::RawNode;
use super::validate::Problem;
use super::Node;
use crate::stores::os_trust::OsTrust;
use crate::stores::{Pkcs12Profile, TruststoreFormat};

/// `keystore`, `truststore`, `truststore_format`, `store_password_file`, `pkcs12_profile`,
/// `combined_pem`, `os_trust` (path templates with `{ca}` and `{node}`), checked at load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSettings {
    pub keystore: Option<String>,
    pub truststore: Option<String>,
    pub truststore_format: TruststoreFormat,
    /// A file on the node holding the stores' password; read there, never sent anywhere.
    pub store_password_file: Option<String>,
    pub pkcs12_profile: Pkcs12Profile,
    pub combined_pem: Option<String>,
    pub os_trust: Option<OsTrustSettings>,
    /// No `key` was set for the node (nor in `[defaults]`).
    pub key_defaulted: bool,
}

/// `os_trust` with its anchors directory and update command (`os_trust_dir`,
/// `os_trust_update` override the distribution's, for tests and unusual hosts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsTrustSettings {
    pub family: OsTrust,
    pub dir: String,
    pub update: String,
}

impl Node {
    /// Whether the node's PEM key stays inside the store, with no link at `key`: its
    /// software reads the key from a keystore or a combined PEM and the inventory sets no
    /// `key` for it (docs/inventory.md#stores).
    pub fn key_in_store(&self) -> bool {
        let s = &self.stores;
        s.key_defaulted && (s.keystore.is_some() || s.combined_pem.is_some())
    }

    /// The store password file for CA `ca`, if the inventory names one.
    pub fn store_password_file(&self, ca: &str) -> Option<String> {
        let fill = |t: &str| t.replace("{ca}", ca).replace("{node}", &self.name);
        self.stores.store_password_file.as_deref().map(fill)
    }
}

/// The store keys of node `name`: its own over `[defaults]`' (`d`). `path` checks a path
/// template as the node's other paths are checked.
pub(super) fn build(
    name: &str,
    raw: &RawNode,
    d: &RawNode,
    path: &dyn Fn(&str, String) -> Result<String, Problem>,
) -> Result<StoreSettings, Problem> {
    let pick = |own: &Option<String>, def: &Option<String>| own.clone().or_else(|| def.clone());
    let at = |key: &str| key_at(name, &[key]);
    let file = |key: &str, own: &Option<String>, def: &Option<String>| {
        pick(own, def).map(|t| path(key, t)).transpose()
    };
    let keystore = file("keystore", &raw.keystore, &d.keystore)?;
    let truststore = file("truststore", &raw.truststore, &d.truststore)?;
    let combined_pem = file("combined_pem", &raw.combined_pem, &d.combined_pem)?;
    let store_password_file = file(
        "store_password_file",
        &raw.store_password_file,
        &d.store_password_file,
    )?;
    let truststore_format = match pick(&raw.truststore_format, &d.truststore_format) {
        None => TruststoreFormat::default(),
        Some(v) => TruststoreFormat::parse(&v).ok_or_else(|| {
            Problem {
                message: format!("unknown truststore_format {v:?} for node {name}"),
                ..at("truststore_format")
            }
            .hint("use \"pkcs12\" (the default) or \"jks\"")
        })?,
    };
    let pkcs12_profile = match pick(&raw.pkcs12_profile, &d.pkcs12_profile) {
        None => Pkcs12Profile::default(),
        Some(v) => Pkcs12Profile::parse(&v).ok_or_else(|| {
            Problem {
                message: format!("unknown pkcs12_profile {v:?} for node {name}"),
                ..at("pkcs12_profile")
            }
            .hint("use \"modern\" (the default: AES-256 and SHA-256, read by Java 11+ and OpenSSL 3) or \"legacy\" (3DES and SHA-1, for older readers)")
        })?,
    };
    if keystore.is_some() && store_password_file.is_none() {
        return Err(Problem {
            message: format!("node {name} has a keystore but no store_password_file"),
            ..at("keystore")
        }
        .hint("set store_password_file to the file on the node that holds the keystore's password (the one the application's configuration reads); a private key is never stored under a default password"));
    }
    let os_trust = match pick(&raw.os_trust, &d.os_trust) {
        None => None,
        Some(v) => {
            let family = OsTrust::parse(&v).ok_or_else(|| {
                Problem {
                    message: format!("unknown os_trust {v:?} for node {name}"),
                    ..at("os_trust")
                }
                .hint("use \"debian\" (Debian, Ubuntu, Alpine: update-ca-certificates) or \"rhel\" (RHEL, Fedora, Rocky: update-ca-trust)")
            })?;
            let dir = file("os_trust_dir", &raw.os_trust_dir, &d.os_trust_dir)?
                .unwrap_or_else(|| family.anchors_dir().to_string());
            let update = pick(&raw.os_trust_update, &d.os_trust_update)
                .unwrap_or_else(|| family.update_command().to_string());
            Some(OsTrustSettings {
                family,
                dir,
                update,
            })
        }
    };
    Ok(StoreSettings {
        keystore,
        truststore,
        truststore_format,
        store_password_file,
        pkcs12_profile,
        combined_pem,
        os_trust,
        key_defaulted: raw.key.is_none() && d.key.is_none(),
    })
}

/// Refuses `os_trust` for now: its settings are read and checked, but installing anchors
/// into the operating system's store is not carried out yet, and a key that silently did
/// nothing would leave clients untrusting at the next rotation.
pub(super) fn os_trust_supported(name: &str, s: &StoreSettings) -> Result<(), Problem> {
    if s.os_trust.is_none() {
        return Ok(());
    }
    Err(Problem {
        message: format!("os_trust of node {name} is not supported by this version of certroll yet"),
        ..key_at(name, &["os_trust"])
    }
    .hint("install the CA's anchors with the node's reload command for now (see docs/recipes.md), and remove os_trust"))
}

/// Refuses a store path that is also another file of the node: each form needs its own file.
pub(super) fn distinct(name: &str, s: &StoreSettings, pem_paths: [&str; 3]) -> Result<(), Problem> {
    let at = |key: &str| key_at(name, &[key]);
    let [bundle, cert, key] = pem_paths;
    let mut seen: Vec<(&str, &str)> = vec![("trust_bundle", bundle), ("cert", cert)];
    if !s.key_defaulted {
        seen.push(("key", key));
    }
    for (key, p) in [
        ("keystore", &s.keystore),
        ("truststore", &s.truststore),
        ("combined_pem", &s.combined_pem),
    ] {
        let Some(p) = p else { continue };
        if let Some((other, _)) = seen.iter().find(|(_, q)| *q == p.as_str()) {
            return Err(Problem {
                message: format!("{key} and {other} of node {name} are the same file {p}"),
                ..at(key)
            }
            .hint("give every form of the node's files its own path"));
        }
        seen.push((key, p.as_str()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::inventory::parse_str;
    use crate::stores::{Pkcs12Profile, TruststoreFormat};

    const BASE: &str = "[ca.internal]\n[[links]]\nclient = \"c\"\nserver = \"s\"\n";

    fn load(nodes: &str) -> Result<crate::inventory::Inventory, String> {
        let text = format!("{BASE}{nodes}");
        parse_str(&text, Path::new("/inv/fleet.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn store_keys_inherit_from_defaults_and_fill_ca_and_node() {
        let inv = load(
            "[defaults]\nssh = { host = \"127.0.0.1\" }\ntrust_bundle = \"/tls/{node}/ca.pem\"\ncert = \"/tls/{node}/cert.pem\"\ntruststore = \"/t/{ca}/{node}.jks\"\ntruststore_format = \"jks\"\n\
             [nodes.c]\nkey = \"/tls/c/key.pem\"\n[nodes.s]\nkeystore = \"/k/{ca}.p12\"\nstore_password_file = \"/k/pass\"\npkcs12_profile = \"legacy\"\n",
        )
        .unwrap();
        let s = &inv.nodes[inv.node_id("s").unwrap()];
        let p = s.paths("internal");
        assert_eq!(p.keystore.as_deref(), Some("/k/internal.p12"));
        assert_eq!(p.truststore.as_deref(), Some("/t/internal/s.jks"));
        assert_eq!(s.stores.truststore_format, TruststoreFormat::Jks);
        assert_eq!(s.stores.pkcs12_profile, Pkcs12Profile::Legacy);
        // No `key` set and a keystore: the PEM key stays in the store, linked nowhere.
        assert!(p.key_in_store);
        assert!(
            p.key.ends_with("/.certroll-internal/current/key.pem"),
            "{}",
            p.key
        );
        let c = &inv.nodes[inv.node_id("c").unwrap()];
        assert!(
            !c.paths("internal").key_in_store,
            "a truststore alone keeps the PEM key"
        );
        assert_eq!(c.stores.pkcs12_profile, Pkcs12Profile::Modern);
    }

    #[test]
    fn a_keystore_without_a_password_file_is_refused_at_its_line() {
        let e = load(
            "[nodes.c]\ntransport = \"local\"\n[nodes.s]\ntransport = \"local\"\nkeystore = \"/k/s.p12\"\n",
        )
        .unwrap_err();
        assert!(e.starts_with("/inv/fleet.toml:9:"), "{e}");
        assert!(
            e.contains("has a keystore but no store_password_file"),
            "{e}"
        );
    }

    #[test]
    fn unknown_formats_profiles_and_families_are_named_with_their_line() {
        for (line, want) in [
            (
                "truststore_format = \"pem\"",
                "unknown truststore_format \"pem\"",
            ),
            (
                "pkcs12_profile = \"fips\"",
                "unknown pkcs12_profile \"fips\"",
            ),
            ("os_trust = \"alpine\"", "unknown os_trust \"alpine\""),
            ("keystore = \"relative.p12\"", "relative remote path"),
            (
                "combined_pem = \"/etc/tls/cert.pem\"",
                "combined_pem and cert of node s are the same file",
            ),
        ] {
            let e = load(&format!(
                "[nodes.c]\ntransport = \"local\"\n[nodes.s]\nssh = {{ host = \"127.0.0.1\" }}\nstore_password_file = \"/p\"\n{line}\n"
            ))
            .unwrap_err();
            assert!(e.starts_with("/inv/fleet.toml:"), "{e}");
            assert!(e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn os_trust_takes_the_family_defaults_unless_overridden_and_is_refused_for_now() {
        let raw = |family: &str, dir: Option<&str>| crate::inventory::raw::RawNode {
            os_trust: Some(family.into()),
            os_trust_dir: dir.map(str::to_string),
            os_trust_update: dir.map(|_| "true".to_string()),
            ..Default::default()
        };
        let path = |_: &str, t: String| Ok(t);
        let d = crate::inventory::raw::RawNode::default();
        let c = super::build("c", &raw("rhel", None), &d, &path)
            .unwrap()
            .os_trust
            .unwrap();
        assert_eq!(c.dir, "/etc/pki/ca-trust/source/anchors");
        assert_eq!(c.update, "update-ca-trust extract");
        let s = super::build("s", &raw("debian", Some("/tmp/a")), &d, &path)
            .unwrap()
            .os_trust
            .unwrap();
        assert_eq!((s.dir.as_str(), s.update.as_str()), ("/tmp/a", "true"));
        let e = load(
            "[nodes.c]\ntransport = \"local\"\n[nodes.s]\ntransport = \"local\"\nos_trust = \"debian\"\n",
        )
        .unwrap_err();
        assert!(e.contains("os_trust of node s is not supported"), "{e}");
    }
}
