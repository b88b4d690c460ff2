//! Load-time benchmark of a large inventory: parse-only against the full `load`.
//!
//! Generate a fleet, then run:
//!
//! ```sh
//! scripts/gen-inventory.py 100000 300000 /tmp/big.toml
//! CERTROLL_BENCH_INVENTORY=/tmp/big.toml cargo bench --bench inventory_load
//! ```
//!
//! Parse-only is the TOML parse and serde deserialization into the raw structures;
//! full load adds defaults, validation and link expansion. The target is a full load
//! within 1.3× of parse-only. Peak RSS is the process high-water mark (VmHWM).

use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    let Some(path) = std::env::var_os("CERTROLL_BENCH_INVENTORY").map(PathBuf::from) else {
        // `cargo bench` with no inventory: say how to run it instead of failing the build.
        eprintln!(
            "inventory_load: set CERTROLL_BENCH_INVENTORY to an inventory file, e.g. one made by \
             scripts/gen-inventory.py 100000 300000 /tmp/big.toml"
        );
        return;
    };
    let runs: usize = std::env::var("CERTROLL_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("failed to read benchmark inventory {}: {e}", path.display()));
    println!(
        "inventory {} ({:.1} MB), best of {runs}",
        path.display(),
        text.len() as f64 / 1e6
    );

    let parse = best_of(runs, || {
        let raw = certroll::inventory::parse_raw(&text, &path)
            .unwrap_or_else(|e| panic!("benchmark inventory does not parse: {e}"));
        std::hint::black_box(raw.links.len());
    });
    println!(
        "parse-only  {:>7.3} s   peak RSS {} kB",
        parse.as_secs_f64(),
        peak_rss_kb()
    );

    let mut summary = (0, 0);
    let full = best_of(runs, || {
        let inv = certroll::inventory::load(&path)
            .unwrap_or_else(|e| panic!("benchmark inventory is refused: {e}"));
        summary = (inv.nodes.len(), inv.links.len());
    });
    println!(
        "full load   {:>7.3} s   peak RSS {} kB",
        full.as_secs_f64(),
        peak_rss_kb()
    );
    println!(
        "{} nodes, {} links; load / parse-only = {:.2}",
        summary.0,
        summary.1,
        full.as_secs_f64() / parse.as_secs_f64()
    );
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap_or_default()
}

/// Peak resident set size of this process, from /proc/self/status (Linux).
fn peak_rss_kb() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches(" kB").to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}
