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
//! within 1.3× of parse-only. Both times cover building the result, not freeing it.
//! Peak RSS is the process high-water mark (VmHWM).

mod timing;
use timing::{peak_rss_kb, Timing};

fn main() {
    let Some((path, text, runs)) = timing::bench_input("inventory_load") else {
        return;
    };

    // Runs alternate so that a busy machine slows both measurements alike; the best
    // wall-clock time and the best CPU time (user + system) of each are reported.
    let mut parse = Timing::default();
    let mut full = Timing::default();
    let mut parse_rss = String::new();
    let mut summary = (0, 0);
    for _ in 0..runs.max(1) {
        let raw = parse.measure(|| {
            certroll::inventory::parse_raw(&text, &path)
                .unwrap_or_else(|e| panic!("benchmark inventory does not parse: {e}"))
        });
        drop(std::hint::black_box(raw));
        if parse_rss.is_empty() {
            parse_rss = peak_rss_kb();
        }
        let inv = full.measure(|| {
            certroll::inventory::load(&path)
                .unwrap_or_else(|e| panic!("benchmark inventory is refused: {e}"))
        });
        summary = (inv.nodes.len(), inv.links.len());
        drop(inv);
    }
    println!("parse-only  {parse}   peak RSS {parse_rss} kB");
    println!("full load   {full}   peak RSS {} kB", peak_rss_kb());
    println!(
        "{} nodes, {} links; load / parse-only = {:.2} (wall), {:.2} (cpu)",
        summary.0,
        summary.1,
        full.wall.as_secs_f64() / parse.wall.as_secs_f64(),
        full.cpu.as_secs_f64() / parse.cpu.as_secs_f64()
    );
}
