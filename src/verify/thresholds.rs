//! The two expiry windows of `certroll verify`: a certificate expiring within the warning
//! window is a warning (exit 1), within the critical window it is critical (exit 2), so
//! that "expires in 3 days" is not a warning that cron ignores.
//!
//! Each window comes from the command line, else the inventory's `[verify]` table, else
//! a default: the CA's `renew_before` for the warning window, [`DEFAULT_CRITICAL`] for
//! the critical one. A critical window longer than the warning window is refused when
//! the operator chose it; the built-in default simply does not apply then (no critical
//! window before expiry), so `--warn-within 5d` alone keeps meaning what it always did.

use std::time::Duration as StdDuration;

use time::Duration;

use crate::inventory::{CaSpec, VerifyDefaults};

/// The critical window when neither the command line nor the inventory sets one.
pub const DEFAULT_CRITICAL: StdDuration = StdDuration::from_secs(7 * 86_400);

/// What the operator asked for, before each CA's defaults are applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asked {
    /// `--warn-within`.
    pub warn_within: Option<StdDuration>,
    /// `--critical-within`.
    pub critical_within: Option<StdDuration>,
}

/// The windows in force for one CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub warn_within: Duration,
    pub critical_within: Duration,
}

impl Windows {
    /// How bad a certificate expiring at `not_after` is at `now`: `None` outside both
    /// windows, `Some(false)` within the warning window, `Some(true)` within the critical
    /// window (or expired).
    pub fn classify(
        &self,
        not_after: time::OffsetDateTime,
        now: time::OffsetDateTime,
    ) -> Option<bool> {
        if not_after <= now.saturating_add(self.critical_within) {
            Some(true)
        } else if not_after <= now.saturating_add(self.warn_within) {
            Some(false)
        } else {
            None
        }
    }
}

/// The windows for `spec`, or why the operator's choice is refused (a sentence naming
/// both windows and where each came from).
pub fn windows(asked: &Asked, defaults: &VerifyDefaults, spec: &CaSpec) -> Result<Windows, String> {
    let (warn, warn_from) = match (asked.warn_within, defaults.warn_within) {
        (Some(w), _) => (w, "--warn-within".to_string()),
        (None, Some(w)) => (w, "warn_within in [verify]".to_string()),
        (None, None) => (
            spec.renew_before,
            format!("renew_before of CA {}", spec.name),
        ),
    };
    let critical = match (asked.critical_within, defaults.critical_within) {
        (Some(c), _) => Some((c, "--critical-within")),
        (None, Some(c)) => Some((c, "critical_within in [verify]")),
        (None, None) => None,
    };
    let critical = match critical {
        Some((c, from)) if c > warn => {
            return Err(format!(
                "{from} {} is longer than the warning window {} ({warn_from}) for CA {}: a \
                 certificate becomes a warning before it becomes critical, so the critical \
                 window must not be longer",
                crate::duration::format(c),
                crate::duration::format(warn),
                spec.name
            ))
        }
        Some((c, _)) => c,
        None if DEFAULT_CRITICAL <= warn => DEFAULT_CRITICAL,
        None => StdDuration::ZERO,
    };
    let long = |d: StdDuration| Duration::try_from(d).unwrap_or(Duration::MAX);
    Ok(Windows {
        warn_within: long(warn),
        critical_within: long(critical),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: StdDuration = StdDuration::from_secs(86_400);

    #[test]
    fn flags_win_over_the_inventory_which_wins_over_the_defaults() {
        let spec = CaSpec::new("internal", "CN=x");
        let none = VerifyDefaults::default();
        let w = windows(&Asked::default(), &none, &spec).unwrap();
        assert_eq!(w.warn_within, Duration::days(30));
        assert_eq!(w.critical_within, Duration::days(7));
        let inv = VerifyDefaults {
            warn_within: Some(20 * DAY),
            critical_within: Some(3 * DAY),
        };
        let w = windows(&Asked::default(), &inv, &spec).unwrap();
        assert_eq!(
            (w.warn_within, w.critical_within),
            (Duration::days(20), Duration::days(3))
        );
        let asked = Asked {
            warn_within: Some(10 * DAY),
            critical_within: Some(DAY),
        };
        let w = windows(&asked, &inv, &spec).unwrap();
        assert_eq!(
            (w.warn_within, w.critical_within),
            (Duration::days(10), Duration::days(1))
        );
    }

    #[test]
    fn critical_within_longer_than_warn_within_is_refused_naming_both() {
        let spec = CaSpec::new("internal", "CN=x");
        let asked = Asked {
            warn_within: Some(5 * DAY),
            critical_within: Some(10 * DAY),
        };
        let err = windows(&asked, &VerifyDefaults::default(), &spec).unwrap_err();
        assert!(err.contains("--critical-within 10d"), "{err}");
        assert!(err.contains("warning window 5d (--warn-within)"), "{err}");
        // The built-in critical window gives way to a short warning window.
        let short = Asked {
            warn_within: Some(5 * DAY),
            critical_within: None,
        };
        let w = windows(&short, &VerifyDefaults::default(), &spec).unwrap();
        assert_eq!(w.critical_within, Duration::ZERO);
    }

    #[test]
    fn classify_puts_the_critical_window_inside_the_warning_one() {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        let w = Windows {
            warn_within: Duration::days(30),
            critical_within: Duration::days(7),
        };
        assert_eq!(w.classify(now + Duration::days(3), now), Some(true));
        assert_eq!(w.classify(now - Duration::days(3), now), Some(true));
        assert_eq!(w.classify(now + Duration::days(20), now), Some(false));
        assert_eq!(w.classify(now + Duration::days(40), now), None);
    }
}
