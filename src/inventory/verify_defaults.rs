//! `[verify]`: the inventory's defaults for `certroll verify`'s two expiry windows,
//! `warn_within` and `critical_within` (docs/inventory.md#verify).
//!
//! They live in their own table so that cron lines and on-call engineers get the same
//! thresholds without repeating flags. The order rule (a critical window is never longer
//! than the warning window) is checked here, against every CA's effective warning window,
//! so that a bad pair is refused at load with its position (exit 78).

use std::time::Duration;

use serde::Deserialize;

use super::locate::ValuePath;
use super::validate::Problem;
use super::CaSpec;
use crate::duration;

/// `[verify]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    pub warn_within: Option<String>,
    pub critical_within: Option<String>,
}

/// `[verify]`: defaults of `verify --warn-within` and `--critical-within`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyDefaults {
    /// Warn about certificates expiring within this (else each CA's `renew_before`).
    pub warn_within: Option<Duration>,
    /// Certificates expiring within this are critical (else the built-in 7 days, see
    /// [`crate::verify::thresholds`]).
    pub critical_within: Option<Duration>,
}

/// Parses `[verify]` and checks its order against every CA's warning window.
pub fn build(raw: &RawVerify, cas: &[CaSpec]) -> Result<VerifyDefaults, Problem> {
    let at = |key: &str| ValuePath::keys(&["verify", key]);
    let parse = |key: &str, value: &Option<String>| -> Result<Option<Duration>, Problem> {
        value
            .as_deref()
            .map(|text| {
                duration::parse(text).map_err(|e| {
                    Problem::new(at(key), format!("bad {key} in [verify]: {e}"))
                        .hint("write a number and a unit, e.g. \"30d\", \"7d\", \"12h\"")
                })
            })
            .transpose()
    };
    let defaults = VerifyDefaults {
        warn_within: parse("warn_within", &raw.warn_within)?,
        critical_within: parse("critical_within", &raw.critical_within)?,
    };
    if let Some(critical) = defaults.critical_within {
        for ca in cas {
            let (warn, from) = match defaults.warn_within {
                Some(w) => (w, "[verify] warn_within".to_string()),
                None => (ca.renew_before, format!("renew_before of CA {}", ca.name)),
            };
            if critical > warn {
                return Err(Problem::new(
                    at("critical_within"),
                    format!(
                        "critical_within {} in [verify] is longer than the warning window {} ({from})",
                        duration::format(critical),
                        duration::format(warn)
                    ),
                )
                .hint("a certificate becomes a warning before it becomes critical: critical_within <= warn_within"));
            }
        }
    }
    Ok(defaults)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(warn: Option<&str>, critical: Option<&str>) -> RawVerify {
        RawVerify {
            warn_within: warn.map(str::to_string),
            critical_within: critical.map(str::to_string),
        }
    }

    #[test]
    fn critical_longer_than_warn_is_refused_at_critical_within() {
        let cas = [CaSpec::new("internal", "CN=x")];
        let err = build(&raw(Some("5d"), Some("10d")), &cas).unwrap_err();
        assert!(
            err.message.contains("longer than the warning window"),
            "{}",
            err.message
        );
        // Without warn_within the CA's renew_before (30 days) is the warning window.
        let err = build(&raw(None, Some("31d")), &cas).unwrap_err();
        assert!(
            err.message.contains("renew_before of CA internal"),
            "{}",
            err.message
        );
        let ok = build(&raw(None, Some("3d")), &cas).unwrap();
        assert_eq!(ok.critical_within, Some(Duration::from_secs(3 * 86_400)));
        assert_eq!(ok.warn_within, None);
    }
}
