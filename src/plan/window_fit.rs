//! Whether a rotation fits in its pools' restart windows before the old generation expires
//! (docs/plan.md#restart-only-nodes): a note per pool with windows, from a pessimistic
//! estimate — every restart of the pool takes the longest `confirm_timeout` of its members
//! plus its `min_healthy_time`, restarts run `max_unavailable` at a time, and a restart may
//! start until its window closes.

use time::{Duration as TimeDelta, OffsetDateTime};

use super::restarts::step_disrupts;
use super::Plan;
use crate::inventory::windows::Window;
use crate::inventory::Inventory;

/// Longest look ahead: past it the estimate says it does not fit.
const HORIZON_DAYS: i64 = 3 * 366;

/// One note per pool with windows and a member in `plan`.
pub fn window_fit(
    plan: &Plan,
    inv: &Inventory,
    now: OffsetDateTime,
    old_expires: Option<OffsetDateTime>,
) -> Vec<String> {
    let mut notes = Vec::new();
    for (p, pool) in inv.pools.pools.iter().enumerate() {
        if pool.windows.is_empty() {
            continue;
        }
        let restarts = plan
            .steps
            .iter()
            .filter(|s| inv.pools.pool_of(s.node) == Some(p) && step_disrupts(inv, s))
            .count();
        if restarts == 0 {
            continue;
        }
        let each = pool
            .members
            .iter()
            .map(|&m| inv.nodes[m].confirm_timeout)
            .max()
            .unwrap_or_default()
            + pool.min_healthy_time;
        let batches = restarts.div_ceil(pool.budget());
        let each_td = TimeDelta::try_from(each).unwrap_or(TimeDelta::MINUTE);
        let done = finish(&pool.windows, now, batches, each_td);
        let windows: Vec<String> = pool.windows.iter().map(ToString::to_string).collect();
        let head = format!(
            "pool {}: {restarts} restart(s), {} at a time, each at most {} (confirm_timeout + min_healthy_time), only in {}",
            pool.name,
            pool.budget(),
            crate::duration::format(each),
            windows.join(", ")
        );
        let rfc = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        let verdict = match (done, old_expires) {
            (Some(done), Some(exp)) if done < exp => format!(
                "they end by {} at the latest, before the old generation expires ({})",
                rfc(done),
                rfc(exp)
            ),
            (Some(done), Some(exp)) => format!(
                "they may end only by {}, AFTER the old generation expires ({}): widen the windows or raise max_unavailable",
                rfc(done),
                rfc(exp)
            ),
            (Some(done), None) => format!("they end by {} at the latest", rfc(done)),
            (None, _) => format!(
                "they do not fit in {HORIZON_DAYS} days of these windows: widen the windows or raise max_unavailable"
            ),
        };
        notes.push(format!("{head}: {verdict}"));
    }
    notes
}

/// When `batches` restarts of `each` are over, each starting while a window is open.
fn finish(
    windows: &[Window],
    now: OffsetDateTime,
    batches: usize,
    each: TimeDelta,
) -> Option<OffsetDateTime> {
    let horizon = now + TimeDelta::days(HORIZON_DAYS);
    let mut t = now;
    let mut left = batches;
    while left > 0 {
        t = crate::inventory::windows::next_open(windows, t);
        if t > horizon {
            return None;
        }
        let closes = windows
            .iter()
            .filter(|w| w.is_open(t))
            .map(|w| w.closes(t))
            .max()
            .unwrap_or(t);
        // Restarts start back to back while the window is open.
        while left > 0 && t < closes {
            t += each;
            left -= 1;
        }
        if left > 0 && t < closes {
            t = closes;
        }
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn restarts_fill_windows_one_after_the_other() {
        let w = [Window::parse("Sat 02:00-03:00 UTC").unwrap()];
        // Monday: the first window is Saturday; restarts of 25 min start at 02:00, 02:25
        // and 02:50 (a restart may start until the window closes), the 4th a week later.
        let now = datetime!(2026-12-07 12:00 UTC);
        assert_eq!(
            finish(&w, now, 3, TimeDelta::minutes(25)).unwrap(),
            datetime!(2026-12-12 03:15 UTC)
        );
        assert_eq!(
            finish(&w, now, 4, TimeDelta::minutes(25)).unwrap(),
            datetime!(2026-12-19 02:25 UTC)
        );
        let never = [Window::parse("Sat 02:00-02:01 UTC").unwrap()];
        assert_eq!(finish(&never, now, 1000, TimeDelta::hours(2)), None);
    }
}
