//! Human durations used throughout the inventory: `60s`, `15m`, `12h`, `90d`, `2w`, `10y`.
//!
//! A year is 365 days; compound forms such as `1d12h` are accepted.

use std::fmt;
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected a number and a unit s, m, h, d, w or y, e.g. \"90d\" or \"60s\")")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses `90d`, `10y`, `60s`, `1h30m`.
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
    Ok(Duration::from_secs(total))
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
    fn formats_round_trip() {
        for s in ["45s", "90d", "10y", "2w", "15m", "12h"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
