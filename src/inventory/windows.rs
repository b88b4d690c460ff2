//! Restart windows of a pool (`windows = ["Sat 02:00-05:00 UTC"]`): when a restart may start.
//!
//! A window is a set of weekdays and a time span in UTC; a span whose end is not after its
//! start runs past midnight into the next day. The grammar is small on purpose, so that a
//! window is read the same way by the operator and by certroll:
//! `DAYS HH:MM-HH:MM UTC`, where DAYS is `daily`, one day (`Sat`), a range (`Mon-Fri`) or a
//! comma list (`Sat,Sun`). Only UTC is accepted: a zone with daylight saving time would make
//! a window an hour off twice a year.

use std::fmt;

use time::{Duration as TimeDelta, OffsetDateTime, Time};

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const DAY_MINUTES: u32 = 24 * 60;

/// One restart window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The days the window opens on, Monday first.
    days: [bool; 7],
    /// Minutes after midnight UTC.
    start: u32,
    /// Minutes after midnight UTC; not after `start`: the window ends the next day.
    end: u32,
    /// As written in the inventory.
    text: String,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Window {
    /// Reads one window, or says why it cannot be read.
    pub fn parse(text: &str) -> Result<Window, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [days, span, zone] = parts[..] else {
            return Err("a window is written DAYS HH:MM-HH:MM UTC".into());
        };
        if zone != "UTC" {
            return Err(format!(
                "time zone {zone:?} is not supported: write the window in UTC"
            ));
        }
        let days = parse_days(days)?;
        let (from, to) = span
            .split_once('-')
            .ok_or_else(|| format!("time span {span:?} is not HH:MM-HH:MM"))?;
        let start = parse_time(from, false)?;
        let end = parse_time(to, true)?;
        if start == end % DAY_MINUTES && end != DAY_MINUTES {
            return Err(format!("time span {span:?} is empty"));
        }
        Ok(Window {
            days,
            start,
            end,
            text: text.to_string(),
        })
    }

    /// Whether a restart may start at `t`.
    pub fn is_open(&self, t: OffsetDateTime) -> bool {
        let t = t.to_offset(time::UtcOffset::UTC);
        let day = usize::from(t.weekday().number_days_from_monday());
        let minute = u32::from(t.hour()) * 60 + u32::from(t.minute());
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&minute)
        } else {
            (self.days[day] && minute >= self.start)
                || (self.days[(day + 6) % 7] && minute < self.end)
        }
    }

    /// The first instant at or after `t` when the window is open.
    pub fn next_open(&self, t: OffsetDateTime) -> OffsetDateTime {
        let t = t.to_offset(time::UtcOffset::UTC);
        if self.is_open(t) {
            return t;
        }
        let midnight = t.replace_time(Time::MIDNIGHT);
        let day = usize::from(t.weekday().number_days_from_monday());
        for ahead in 0..=7usize {
            let opens = midnight
                + TimeDelta::days(ahead as i64)
                + TimeDelta::minutes(i64::from(self.start));
            if self.days[(day + ahead) % 7] && opens > t {
                return opens;
            }
        }
        // Invariant: a window opens on at least one weekday, so a week ahead always holds one.
        t + TimeDelta::weeks(1)
    }

    /// When the window that is open at `t` closes (`t` itself when it is closed).
    pub fn closes(&self, t: OffsetDateTime) -> OffsetDateTime {
        let t = t.to_offset(time::UtcOffset::UTC);
        if !self.is_open(t) {
            return t;
        }
        let midnight = t.replace_time(Time::MIDNIGHT);
        let minute = u32::from(t.hour()) * 60 + u32::from(t.minute());
        let end = i64::from(self.end);
        if self.start < self.end || minute < self.end {
            // Opened today (no wrap), or opened yesterday and ends today.
            midnight + TimeDelta::minutes(end)
        } else {
            midnight + TimeDelta::days(1) + TimeDelta::minutes(end)
        }
    }
}

/// The first instant at or after `t` when any of `windows` is open; `t` when there are none.
pub fn next_open(windows: &[Window], t: OffsetDateTime) -> OffsetDateTime {
    windows.iter().map(|w| w.next_open(t)).min().unwrap_or(t)
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    if text.eq_ignore_ascii_case("daily") {
        return Ok([true; 7]);
    }
    let day = |d: &str| {
        DAYS.iter()
            .position(|n| n.eq_ignore_ascii_case(d))
            .ok_or_else(|| {
                format!(
                    "unknown day {d:?}: use {}, a range (Mon-Fri), a list (Sat,Sun) or daily",
                    DAYS.join(", ")
                )
            })
    };
    for part in text.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (day(a)?, day(b)?);
                let mut d = a;
                loop {
                    days[d] = true;
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(part)?] = true,
        }
    }
    Ok(days)
}

/// `HH:MM` as minutes after midnight; `24:00` only as an end.
fn parse_time(text: &str, is_end: bool) -> Result<u32, String> {
    let bad = || format!("time {text:?} is not HH:MM (00:00 to 23:59, or 24:00 as an end)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    match (h, m) {
        (24, 0) if is_end => Ok(DAY_MINUTES),
        (0..=23, 0..=59) => Ok(h * 60 + m),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_saturday_night_window_opens_and_closes() {
        let w = Window::parse("Sat 02:00-05:00 UTC").unwrap();
        // 2026-12-05 is a Saturday.
        assert!(w.is_open(datetime!(2026-12-05 02:00 UTC)));
        assert!(w.is_open(datetime!(2026-12-05 04:59 UTC)));
        assert!(!w.is_open(datetime!(2026-12-05 05:00 UTC)));
        assert!(!w.is_open(datetime!(2026-12-06 03:00 UTC)));
        assert_eq!(
            w.next_open(datetime!(2026-12-05 06:00 UTC)),
            datetime!(2026-12-12 02:00 UTC)
        );
        assert_eq!(
            w.closes(datetime!(2026-12-05 03:00 UTC)),
            datetime!(2026-12-05 05:00 UTC)
        );
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens() {
        let w = Window::parse("Fri 22:00-02:00 UTC").unwrap();
        assert!(w.is_open(datetime!(2026-12-04 23:00 UTC)));
        assert!(w.is_open(datetime!(2026-12-05 01:59 UTC)));
        assert!(!w.is_open(datetime!(2026-12-05 22:30 UTC)));
        assert_eq!(
            w.closes(datetime!(2026-12-05 01:00 UTC)),
            datetime!(2026-12-05 02:00 UTC)
        );
        assert_eq!(
            w.closes(datetime!(2026-12-04 23:00 UTC)),
            datetime!(2026-12-05 02:00 UTC)
        );
    }

    #[test]
    fn day_lists_ranges_and_daily_are_read() {
        let w = Window::parse("Fri-Mon 00:00-24:00 UTC").unwrap();
        assert_eq!(w.days, [true, false, false, false, true, true, true]);
        let w = Window::parse("sat,SUN 01:00-02:00 UTC").unwrap();
        assert_eq!(w.days, [false, false, false, false, false, true, true]);
        assert_eq!(
            Window::parse("daily 01:00-02:00 UTC").unwrap().days,
            [true; 7]
        );
    }

    #[test]
    fn unreadable_windows_say_why() {
        for (text, why) in [
            ("Sat 02:00-05:00", "DAYS HH:MM-HH:MM UTC"),
            ("Sat 02:00-05:00 CET", "not supported"),
            ("Sam 02:00-05:00 UTC", "unknown day"),
            ("Sat 2:00-05:00 UTC", "not HH:MM"),
            ("Sat 02:00-25:00 UTC", "not HH:MM"),
            ("Sat 02:00 UTC", "HH:MM-HH:MM"),
            ("Sat 02:00-02:00 UTC", "empty"),
        ] {
            let err = Window::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn next_open_of_several_windows_is_the_earliest() {
        let ws = [
            Window::parse("Sun 02:00-05:00 UTC").unwrap(),
            Window::parse("Wed 02:00-05:00 UTC").unwrap(),
        ];
        // 2026-12-07 is a Monday.
        assert_eq!(
            next_open(&ws, datetime!(2026-12-07 12:00 UTC)),
            datetime!(2026-12-09 02:00 UTC)
        );
        assert_eq!(
            next_open(&[], datetime!(2026-12-07 12:00 UTC)),
            datetime!(2026-12-07 12:00 UTC)
        );
    }
}
