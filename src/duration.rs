//! Human durations used throughout the inventory: `60s`, `15m`, `12h`, `90d`, `2w`, `10y`.
//!
//! A year is 365 days; compound forms such as `1d12h` are accepted. No duration may exceed
//! [`MAX`] (1000 years): every duration is added to the current time somewhere (a CA's
//! expiry, a confirm deadline, a warning horizon), and a cap well inside what clocks and
//! X.509 dates can hold (year 9999) means none of those additions can overflow.

use std::fmt;
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected a number and a unit s, m, h, d, w or y, e.g. \"90d\" or \"60s\")")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// The longest duration accepted anywhere: 1000 years.
pub const MAX: Duration = Duration::from_secs(1000 * 365 * 86_400);

/// Parses `90d`, `10y`, `60s`, `1h30m`; refuses anything longer than [`MAX`].
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        if digits.is_empty() {
            return Err(err("a unit must follow a number"));
        }
        let unit: u64 = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            'y' => 365 * 86_400,
            _ => return Err(err("unknown unit")),
        };
        let n: u64 = digits.parse().map_err(|_| err("number too large"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| err("number too large"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(err("the unit is missing"));
    }
    let d = Duration::from_secs(total);
    if d > MAX {
        return Err(err(
            "it is longer than 1000y, the longest duration certroll accepts",
        ));
    }
    Ok(d)
}

/// The instant `d` from now, or the latest instant this clock can hold if that overflows
/// (durations are capped at [`MAX`], so the fallback only matters for computed ones).
pub fn deadline(d: Duration) -> std::time::Instant {
    let now = std::time::Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(MAX))
        .unwrap_or(now)
}

/// Formats a duration with the largest exact unit, the inverse of [`parse`] for single units.
pub fn format(d: Duration) -> String {
    Human(d).to_string()
}

/// Display adapter for durations.
pub struct Human(pub Duration);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let units = [
            (365 * 86_400, "y"),
            (7 * 86_400, "w"),
            (86_400, "d"),
            (3600, "h"),
            (60, "m"),
        ];
        for (size, name) in units {
            if secs >= size && secs.is_multiple_of(size) {
                return write!(f, "{}{}", secs / size, name);
            }
        }
        write!(f, "{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_units() {
        assert_eq!(parse("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse("90d").unwrap(), Duration::from_secs(90 * 86_400));
        assert_eq!(
            parse("10y").unwrap(),
            Duration::from_secs(10 * 365 * 86_400)
        );
    }

    #[test]
    fn parses_compound() {
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse("90").unwrap_err().reason, "the unit is missing");
        assert_eq!(
            parse("d").unwrap_err().reason,
            "a unit must follow a number"
        );
        assert_eq!(parse("5x").unwrap_err().reason, "unknown unit");
        assert_eq!(parse("").unwrap_err().reason, "it is empty");
        assert!(parse("99999999999999999999y").is_err());
    }

    #[test]
    fn huge_durations_are_refused_not_overflowed() {
        assert_eq!(parse("1000y").unwrap(), MAX);
        for huge in ["1001y", "300000000000y", "7980y", "10000y", "999y2y"] {
            let e = parse(huge).unwrap_err();
            assert!(e.to_string().contains("longer than 1000y"), "{huge}: {e}");
        }
        let far = deadline(Duration::MAX);
        assert!(far > std::time::Instant::now());
    }

    #[test]
    fn formats_round_trip() {
        for s in ["45s", "90d", "10y", "2w", "15m", "12h"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
