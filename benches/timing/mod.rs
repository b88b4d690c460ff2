//! Timing helpers shared by the benchmarks: best wall-clock and CPU time over several runs,
//! and the process's peak resident set size (Linux `/proc`). Not every bench uses every helper.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Best wall-clock and CPU times over several runs.
pub struct Timing {
    pub wall: Duration,
    pub cpu: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            wall: Duration::MAX,
            cpu: Duration::MAX,
        }
    }
}

impl Timing {
    /// Times `f`; its result is returned so that freeing it is not part of the time.
    pub fn measure<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let (start, cpu_start) = (Instant::now(), cpu_time());
        let value = f();
        self.wall = self.wall.min(start.elapsed());
        self.cpu = self.cpu.min(cpu_time().saturating_sub(cpu_start));
        value
    }
}

impl std::fmt::Display for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (w, c) = (self.wall.as_secs_f64(), self.cpu.as_secs_f64());
        write!(f, "{w:>7.3} s wall  {c:>7.3} s cpu")
    }
}

/// User + system CPU time of this process, from /proc/self/stat (Linux, 100 ticks/s).
pub fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line; field 3 is index 0 here.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Peak resident set size of this process, from /proc/self/status (Linux).
pub fn peak_rss_kb() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches(" kB").to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The inventory a bench reads (`CERTROLL_BENCH_INVENTORY`), its text and the number of
/// runs (`CERTROLL_BENCH_RUNS`, default 3), announced on stdout. `None`, with a hint on
/// stderr, when no inventory is given: `cargo bench` alone then does nothing.
pub fn bench_input(bench: &str) -> Option<(PathBuf, String, usize)> {
    let Some(path) = std::env::var_os("CERTROLL_BENCH_INVENTORY").map(PathBuf::from) else {
        eprintln!(
            "{bench}: set CERTROLL_BENCH_INVENTORY to an inventory file, e.g. one made by \
             scripts/gen-inventory.py 100000 300000 /tmp/big.toml"
        );
        return None;
    };
    let runs: usize = std::env::var("CERTROLL_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("failed to read benchmark inventory {}: {e}", path.display()));
    println!(
        "inventory {} ({:.1} MB), best of {runs}",
        path.display(),
        text.len() as f64 / 1e6
    );
    Some((path, text, runs))
}
