//! The keys that choose a node's leaf keys: `key_algorithm` (instead of the CA's) and
//! `key_source` (made on the control host or on the node). See docs/keys.md.

use super::nodes::key_at;
use super::validate::Problem;
use super::{KeyAlgorithm, KeySource};

/// The hint of an unknown `key_algorithm`, for CAs and nodes alike.
pub const ALGORITHM_HINT: &str =
    "use one of: ecdsa-p256 (the default), ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096";

/// `key_algorithm` of a node: its leaves' algorithm, instead of the CA's.
pub fn algorithm(name: &str, value: Option<String>) -> Result<Option<KeyAlgorithm>, Problem> {
    let Some(v) = value else { return Ok(None) };
    match KeyAlgorithm::parse(&v) {
        Some(a) => Ok(Some(a)),
        None => Err(Problem {
            message: format!("unknown key_algorithm {v:?} for node {name}"),
            ..key_at(name, &["key_algorithm"])
        }
        .hint(ALGORITHM_HINT)),
    }
}

/// `key_source`: `"control"` (the default) or `"node"`.
pub fn source(name: &str, value: Option<String>) -> Result<KeySource, Problem> {
    match value.as_deref() {
        None | Some("control") => Ok(KeySource::Control),
        Some("node") => Ok(KeySource::Node),
        Some(other) => Err(Problem {
            message: format!("unknown key_source {other:?} for node {name}"),
            ..key_at(name, &["key_source"])
        }
        .hint("use \"node\" (keys made on the node, which needs openssl) or \"control\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips_and_unknown_ones_are_named() {
        for a in KeyAlgorithm::ALL {
            assert_eq!(algorithm("web1", Some(a.as_str().into())).unwrap(), Some(a));
        }
        assert_eq!(algorithm("web1", None).unwrap(), None);
        let e = algorithm("web1", Some("rsa-1024".into())).unwrap_err();
        assert_eq!(
            e.message,
            "unknown key_algorithm \"rsa-1024\" for node web1"
        );
    }

    #[test]
    fn key_source_defaults_to_control() {
        assert_eq!(source("web1", None).unwrap(), KeySource::Control);
        assert_eq!(
            source("web1", Some("node".into())).unwrap(),
            KeySource::Node
        );
        let e = source("web1", Some("hsm".into())).unwrap_err();
        assert_eq!(e.message, "unknown key_source \"hsm\" for node web1");
    }
}
