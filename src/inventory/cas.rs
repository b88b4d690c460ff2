//! `[ca.NAME]` tables: defaults, key algorithms, and the ordering of the three lifetimes.
//!
//! A CA must outlive its leaves and a leaf must be renewed before it expires, so
//! `renew_before < leaf_validity < validity` is enforced here, not discovered at issue time.

use std::time::Duration;

use super::locate::ValuePath;
use super::raw::{Named, RawCa};
use super::validate::{check_name, Problem};
use super::{BundleForeign, CaSpec, ChainMode, KeyAlgorithm, Strategy};
use crate::duration;

/// Builds the CAs, sorted by name.
pub fn build(raw: Named<RawCa>) -> Result<Vec<CaSpec>, Problem> {
    let mut raw = raw.0;
    if raw.is_empty() {
        return Err(Problem::new(ValuePath::root(), "no CA is defined")
            .hint("add a [ca.NAME] table, e.g. [ca.internal] (every key has a default)"));
    }
    raw.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    raw.into_iter()
        .map(|(name, ca)| build_one(name, ca))
        .collect()
}

fn build_one(name: String, raw: RawCa) -> Result<CaSpec, Problem> {
    let at = |key: &str| ValuePath::keys(&["ca", &name, key]);
    check_name(&name, ValuePath::keys(&["ca", &name]), "CA")?;
    let key_algorithm = match raw.key_algorithm.as_deref() {
        None => KeyAlgorithm::EcdsaP256,
        Some(s) => KeyAlgorithm::parse(s).ok_or_else(|| {
            Problem::new(
                at("key_algorithm"),
                format!("unknown key_algorithm {s:?} for CA {name}"),
            )
            .hint(super::leaf_keys::ALGORITHM_HINT)
        })?,
    };
    let lifetime = |key: &str, value: &Option<String>, default: &str| {
        let text = value.as_deref().unwrap_or(default);
        duration::parse(text).map_err(|e| {
            Problem::new(at(key), format!("bad {key} for CA {name}: {e}"))
                .hint("write a number and a unit, e.g. \"10y\", \"90d\", \"12h\"")
        })
    };
    let validity = lifetime("validity", &raw.validity, "10y")?;
    let leaf_validity = lifetime("leaf_validity", &raw.leaf_validity, "90d")?;
    let renew_before = lifetime("renew_before", &raw.renew_before, "30d")?;
    check_order(&name, validity, leaf_validity, renew_before)?;
    let strategy =
        match raw.strategy.as_deref() {
            None | Some("phased") => Strategy::Phased,
            Some("ordered") => Strategy::Ordered,
            Some(s) => return Err(Problem::new(
                at("strategy"),
                format!("unknown strategy {s:?} for CA {name}"),
            )
            .hint(
                "use \"phased\" (the default, any topology) or \"ordered\" (one visit per node)",
            )),
        };
    let chain = match raw.chain.as_deref() {
        None | Some("plain") => ChainMode::Plain,
        Some("cross-signed") => ChainMode::CrossSigned,
        Some(s) => {
            return Err(
                Problem::new(at("chain"), format!("unknown chain {s:?} for CA {name}"))
                    .hint("use \"plain\" (the default) or \"cross-signed\""),
            )
        }
    };
    let bundle_foreign = match raw.bundle_foreign.as_deref() {
        None | Some("keep") => BundleForeign::Keep,
        Some("drop") => BundleForeign::Drop,
        Some(s) => {
            return Err(Problem::new(
                at("bundle_foreign"),
                format!("unknown bundle_foreign {s:?} for CA {name}"),
            )
            .hint("use \"keep\" (the default: other CAs in a bundle stay) or \"drop\" (certroll owns the whole file)"))
        }
    };
    let subject = raw.subject.unwrap_or_else(|| format!("CN={name} CA"));
    if let Err(why) = super::subject::parse(&subject) {
        return Err(
            Problem::new(at("subject"), format!("bad subject for CA {name}: {why}")).hint(
                "write CN=NAME, optionally followed by O=, OU=, C=, L=, ST= (each once), \
                 e.g. \"CN=Example CA,O=Example\"",
            ),
        );
    }
    Ok(CaSpec {
        bundle_foreign,
        subject,
        name,
        key_algorithm,
        validity,
        leaf_validity,
        renew_before,
        strategy,
        chain,
    })
}

/// `renew_before < leaf_validity < validity`; the error points at the shorter-lived side.
fn check_order(
    name: &str,
    validity: Duration,
    leaf_validity: Duration,
    renew_before: Duration,
) -> Result<(), Problem> {
    let at = |key: &str| ValuePath::keys(&["ca", name, key]);
    let human = duration::format;
    if leaf_validity >= validity {
        return Err(Problem::new(
            at("leaf_validity"),
            format!(
                "leaf_validity {} of CA {name} is not shorter than its validity {}",
                human(leaf_validity),
                human(validity)
            ),
        )
        .or_at(at("validity"))
        .hint("a leaf must expire before the CA that signs it: renew_before < leaf_validity < validity"));
    }
    if renew_before >= leaf_validity {
        return Err(Problem::new(
            at("renew_before"),
            format!(
                "renew_before {} of CA {name} is not shorter than its leaf_validity {}",
                human(renew_before),
                human(leaf_validity)
            ),
        )
        .or_at(at("leaf_validity"))
        .hint(
            "leaves are renewed renew_before their expiry: renew_before < leaf_validity < validity",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(name: &str, raw: RawCa) -> Result<Vec<CaSpec>, Problem> {
        build(Named(vec![(name.to_owned(), raw)]))
    }

    #[test]
    fn defaults_apply() {
        let cas = ca("internal", RawCa::default()).unwrap();
        let c = &cas[0];
        assert_eq!(c.subject, "CN=internal CA");
        assert_eq!(c.key_algorithm, KeyAlgorithm::EcdsaP256);
        assert_eq!(c.validity, duration::parse("10y").unwrap());
        assert_eq!(c.leaf_validity, duration::parse("90d").unwrap());
        assert_eq!(c.renew_before, duration::parse("30d").unwrap());
        // CaSpec::new, the fixture of the tests, is the same CA.
        let fixture = CaSpec::new("internal", "CN=internal CA");
        assert_eq!(
            format!("{c:?}"),
            format!("{fixture:?}"),
            "CaSpec::new must match the inventory's defaults"
        );
    }

    #[test]
    fn algorithms_parse_by_their_inventory_spelling() {
        for a in KeyAlgorithm::ALL {
            assert_eq!(KeyAlgorithm::parse(a.as_str()), Some(a));
        }
        assert_eq!(KeyAlgorithm::parse("rsa"), None);
        assert_eq!(KeyAlgorithm::parse("rsa-1024"), None);
    }

    #[test]
    fn lifetimes_must_nest() {
        let raw = RawCa {
            leaf_validity: Some("20y".into()),
            ..RawCa::default()
        };
        let p = ca("x", raw).unwrap_err();
        assert!(
            p.message.contains("leaf_validity 20y of CA x"),
            "{}",
            p.message
        );
        let raw = RawCa {
            renew_before: Some("90d".into()),
            ..RawCa::default()
        };
        let p = ca("x", raw).unwrap_err();
        assert!(
            p.message.contains("renew_before 90d of CA x"),
            "{}",
            p.message
        );
    }

    #[test]
    fn cas_come_out_sorted() {
        let raw = Named(vec![
            ("b".into(), RawCa::default()),
            ("a".into(), RawCa::default()),
        ]);
        let names: Vec<_> = build(raw).unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
