//! The inventory file exactly as written: plain serde structures, no defaults applied.
//!
//! These types are deliberately flat (no spans, no validation) so that deserializing a
//! fleet of 100,000 nodes costs little more than the TOML parse itself. Every key is
//! optional here; `validate` applies defaults and rules, and positions are found again
//! only when a rule fails (see `locate`). Unknown keys are refused by serde with the
//! position of the key.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A whole inventory file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    /// `[certroll]`: tool settings.
    #[serde(default)]
    pub certroll: RawCertroll,
    /// `[ca.NAME]` tables, in the order the deserializer delivers them.
    #[serde(default)]
    pub ca: Named<RawCa>,
    /// `[defaults]`: node keys shared by every node.
    #[serde(default)]
    pub defaults: RawNode,
    /// `[nodes.NAME]` tables.
    #[serde(default)]
    pub nodes: Named<RawNode>,
    /// `[[links]]` tables, in file order.
    #[serde(default)]
    pub links: Vec<RawLink>,
    /// `[verify]`: defaults of `certroll verify`'s expiry windows.
    #[serde(default)]
    pub verify: super::verify_defaults::RawVerify,
    /// `[pools.NAME]` tables: disruption budgets of restart-only services.
    #[serde(default)]
    pub pools: Named<RawPool>,
}

/// `[pools.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub max_unavailable: Option<RawBudget>,
    pub min_healthy_time: Option<String>,
    pub windows: Option<Vec<String>>,
}

/// `max_unavailable`: a count (`2`) or a percentage (`"25%"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawBudget {
    Count(i64),
    Text(String),
}

/// `[certroll]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertroll {
    pub state_dir: Option<String>,
    /// A PostgreSQL state backend: its connection string, without a password.
    pub state: Option<String>,
    /// The environment variable holding the state backend's connection string.
    pub state_env: Option<String>,
    /// How long an unrenewed lease on a PostgreSQL backend lasts.
    pub lease_seconds: Option<u64>,
}

/// `[ca.NAME]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCa {
    pub subject: Option<String>,
    pub key_algorithm: Option<String>,
    pub validity: Option<String>,
    pub leaf_validity: Option<String>,
    pub renew_before: Option<String>,
    pub strategy: Option<String>,
    pub chain: Option<String>,
    pub bundle_foreign: Option<String>,
    pub key_store: Option<String>,
    pub passphrase_env: Option<String>,
    pub passphrase_file: Option<String>,
    pub pkcs11_module: Option<String>,
    pub pkcs11_token: Option<String>,
    pub pkcs11_key_label: Option<String>,
    pub pin_env: Option<String>,
    pub pin_file: Option<String>,
}

/// `[defaults]` or `[nodes.NAME]`: the same keys, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub ssh: Option<RawSsh>,
    pub transport: Option<String>,
    pub via: Option<String>,
    pub trust_bundle: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub proof_cert: Option<String>,
    pub reload: Option<String>,
    pub confirm: Option<String>,
    pub confirm_timeout: Option<String>,
    pub probe: Option<String>,
    pub tls_address: Option<String>,
    pub starttls: Option<String>,
    pub dns_names: Option<Vec<String>>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub key_mode: Option<String>,
    pub cert_mode: Option<String>,
    pub bundle_mode: Option<String>,
    #[serde(rename = "become")]
    pub become_with: Option<String>,
    pub keep_backups: Option<u32>,
    pub key_algorithm: Option<String>,
    pub key_source: Option<String>,
    pub store_dir: Option<String>,
    pub keystore: Option<String>,
    pub truststore: Option<String>,
    pub truststore_format: Option<String>,
    pub store_password_file: Option<String>,
    pub pkcs12_profile: Option<String>,
    pub combined_pem: Option<String>,
    pub os_trust: Option<String>,
    pub os_trust_dir: Option<String>,
    pub os_trust_update: Option<String>,
    pub pool: Option<String>,
    pub restarts: Option<bool>,
    pub restart_on_prune: Option<bool>,
    pub reload_trust: Option<String>,
}

/// The `ssh = { ... }` table of a node or of `[defaults]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<String>,
    pub known_hosts: Option<String>,
}

/// One `[[links]]` table before expansion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLink {
    pub client: Names,
    pub server: Names,
    #[serde(default)]
    pub mutual: bool,
    pub ca: Option<Name>,
}

/// A name in a link, stored inline when short (node names almost always are).
///
/// A fleet file holds hundreds of thousands of link ends; keeping them inside the
/// link records instead of in separate heap strings saves an allocation each and
/// lets validation read them sequentially.
#[derive(Clone, PartialEq, Eq)]
pub enum Name {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

const INLINE: usize = 22;

impl Name {
    pub fn as_str(&self) -> &str {
        match self {
            // Only whole UTF-8 strings are stored (see `From<&str>`), so this never fails.
            Name::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or("")
            }
            Name::Heap(s) => s,
        }
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        if s.len() > INLINE {
            return Name::Heap(s.into());
        }
        let mut bytes = [0u8; INLINE];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Name::Inline {
            len: s.len() as u8,
            bytes,
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name, E> {
                Ok(Name::from(v))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

/// `client` or `server` of a link: one node name or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    One(Name),
    Many(Vec<Name>),
}

impl Names {
    /// The names as a slice, whichever form was written.
    pub fn as_slice(&self) -> &[Name] {
        match self {
            Names::One(n) => std::slice::from_ref(n),
            Names::Many(v) => v,
        }
    }

    /// Whether the list form was used (positions then point at list elements).
    pub fn is_list(&self) -> bool {
        matches!(self, Names::Many(_))
    }
}

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NamesVisitor;
        impl<'de> Visitor<'de> for NamesVisitor {
            type Value = Names;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a node name or a list of node names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Names, E> {
                Ok(Names::One(Name::from(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Names, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(4));
                while let Some(name) = seq.next_element::<Name>()? {
                    v.push(name);
                }
                Ok(Names::Many(v))
            }
        }
        d.deserialize_any(NamesVisitor)
    }
}

/// A TOML table of named sub-tables kept as a vector of `(name, value)` pairs:
/// cheaper than a map, and the caller sorts it once.
#[derive(Debug)]
pub struct Named<T>(pub Vec<(String, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NamedVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for NamedVisitor<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of named tables")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut v = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(entry) = map.next_entry::<String, T>()? {
                    v.push(entry);
                }
                Ok(Named(v))
            }
        }
        d.deserialize_map(NamedVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_a_string_or_a_list() {
        let raw: RawInventory = toml::from_str(
            "[[links]]\nclient = \"a\"\nserver = [\"b\", \"c\"]\n[[links]]\nclient = [\"x\"]\nserver = \"y\"\nmutual = true\n",
        )
        .unwrap();
        assert_eq!(raw.links[0].client, Names::One("a".into()));
        let servers: Vec<&str> = raw.links[0]
            .server
            .as_slice()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(servers, ["b", "c"]);
        assert!(raw.links[0].server.is_list());
        assert!(!raw.links[0].mutual);
        assert!(raw.links[1].mutual);
    }

    #[test]
    fn names_refuse_other_types() {
        let err =
            toml::from_str::<RawInventory>("[[links]]\nclient = 3\nserver = \"y\"\n").unwrap_err();
        assert!(
            err.message()
                .contains("a node name or a list of node names"),
            "{err}"
        );
    }

    #[test]
    fn named_tables_keep_every_entry() {
        let raw: RawInventory =
            toml::from_str("[nodes.b]\nvia = \"a\"\n[nodes.a]\n[ca.x]\n").unwrap();
        let mut names: Vec<_> = raw.nodes.0.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(raw.ca.0.len(), 1);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<RawInventory>("[nodes.a]\nhots = \"x\"\n").unwrap_err();
        assert!(err.message().contains("unknown field `hots`"), "{err}");
        assert!(err.span().is_some());
    }

    #[test]
    fn names_are_inline_when_short_and_intact_when_long() {
        let short = Name::from("app-00001");
        assert!(matches!(short, Name::Inline { .. }));
        assert_eq!(short.as_str(), "app-00001");
        let edge = "é".repeat(11);
        assert_eq!(Name::from(edge.as_str()).as_str(), edge);
        let long = "a-node-name-longer-than-the-inline-buffer";
        assert!(matches!(Name::from(long), Name::Heap(_)));
        assert_eq!(Name::from(long).as_str(), long);
        assert_eq!(format!("{:?}", Name::from("x\"y")), "\"x\\\"y\"");
        assert_eq!(std::mem::size_of::<Name>(), 24);
    }
}
