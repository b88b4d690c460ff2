//! Commands that do certroll's own work first and run the node's commands after it.
//!
//! A step is one remote command: the file script switches the node's files, then runs the
//! node's `reload` and the first attempt of its `confirm` (docs/performance.md, "Round
//! trips per step"). The two parts need different rules. The file change must complete,
//! so SIGINT/SIGTERM wait for it; the node's commands must be stoppable, like any command
//! run with [`super::Transport::exec`], and keep their own time limits. The script tells
//! where it stands by printing a marker line on its standard output when each part begins;
//! [`Tracker`] watches the output for them and moves the deadline and the interruptibility
//! along, for both transports.

use std::time::{Duration, Instant};

/// A marker a staged command prints on its standard output when it enters a stage, and
/// how long the command may run from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage<'a> {
    /// Text the command prints (anywhere on a line: the output of what ran before may
    /// lack a final newline). It must be text nothing else the command runs can print:
    /// the apply script's markers carry the step's nonce, which its node commands never see.
    pub marker: &'a str,
    /// From the moment the marker is seen, the command's deadline is this far away.
    pub limit: Duration,
}

/// Where a staged command stands: its current deadline and whether a signal stops it.
#[derive(Debug, Clone)]
pub(crate) struct Tracker<'a> {
    stages: &'a [Stage<'a>],
    /// The next stage to look for.
    next: usize,
    /// Output before this offset was looked at already (past the last marker found).
    from: usize,
    pub deadline: Instant,
    pub interruptible: bool,
}

impl<'a> Tracker<'a> {
    /// A command with `deadline`, stopped by a signal from the start when `interruptible`,
    /// else from its first stage on.
    pub fn new(stages: &'a [Stage<'a>], deadline: Instant, interruptible: bool) -> Self {
        Tracker {
            stages,
            next: 0,
            from: 0,
            deadline,
            interruptible,
        }
    }

    /// Looks at the standard output gathered so far (`out`, which only grows; the part
    /// already seen is not searched again) for the next stages' markers, in order.
    pub fn observe(&mut self, out: &[u8], now: Instant) {
        while let Some(stage) = self.stages.get(self.next) {
            let needle = stage.marker.as_bytes();
            // A marker may have been cut by the end of the last read: back up a little.
            let start = self.from.min(out.len());
            let Some(at) = find(&out[start..], needle) else {
                self.from = out.len().saturating_sub(needle.len());
                return;
            };
            self.from = start + at + needle.len();
            self.deadline = now.checked_add(stage.limit).unwrap_or(self.deadline);
            self.interruptible = true;
            self.next += 1;
        }
    }

    /// How many stages were entered.
    #[cfg(test)]
    pub fn entered(&self) -> usize {
        self.next
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGES: [Stage<'static>; 2] = [
        Stage {
            marker: "certroll: files in place",
            limit: Duration::from_secs(5),
        },
        Stage {
            marker: "certroll: reload exited ",
            limit: Duration::from_secs(7),
        },
    ];

    #[test]
    fn stages_move_the_deadline_and_allow_signals_in_order() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&STAGES, t0 + Duration::from_secs(100), false);
        let mut out = b"123\nworking\ncertroll: files in".to_vec();
        t.observe(&out, t0);
        assert_eq!((t.entered(), t.interruptible), (0, false));
        // The rest of the marker arrives in the next read.
        out.extend_from_slice(b" place\nreloading");
        t.observe(&out, t0 + Duration::from_secs(1));
        assert_eq!((t.entered(), t.interruptible), (1, true));
        assert_eq!(t.deadline, t0 + Duration::from_secs(6));
        // The reload's output lacks a newline: the marker still counts.
        out.extend_from_slice(b"...certroll: reload exited 0\n");
        t.observe(&out, t0 + Duration::from_secs(2));
        assert_eq!(t.entered(), 2);
        assert_eq!(t.deadline, t0 + Duration::from_secs(9));
        // Nothing more to find: later output changes nothing.
        out.extend_from_slice(b"certroll: files in place\n");
        t.observe(&out, t0 + Duration::from_secs(3));
        assert_eq!(t.deadline, t0 + Duration::from_secs(9));
    }

    #[test]
    fn a_later_marker_before_an_earlier_one_does_not_count() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&STAGES, t0 + Duration::from_secs(100), false);
        // A command cannot skip the file change by printing the second marker first.
        t.observe(b"certroll: reload exited 0\n", t0);
        assert_eq!((t.entered(), t.interruptible), (0, false));
        assert_eq!(t.deadline, t0 + Duration::from_secs(100));
    }

    #[test]
    fn no_stages_keep_the_deadline_and_the_signal_rule() {
        let t0 = Instant::now();
        let mut t = Tracker::new(&[], t0, true);
        t.observe(b"anything", t0 + Duration::from_secs(1));
        assert_eq!((t.entered(), t.interruptible, t.deadline), (0, true, t0));
    }
}
