//! Phase-by-phase benchmark of `certroll plan --rotate` on a large inventory.
//!
//! Generate a fleet, then run (release build):
//!
//! ```sh
//! scripts/gen-inventory.py 100000 300000 /tmp/big.toml
//! CERTROLL_BENCH_INVENTORY=/tmp/big.toml cargo bench --bench plan
//! ```
//!
//! Phases, each timed on its own (best of `CERTROLL_BENCH_RUNS`, default 3):
//!
//! - `toml tree`: `toml::from_str` into a generic `toml::Table` (the full TOML tree; for
//!   comparison only, certroll never builds it);
//! - `toml+serde`: the whole file in one `toml::from_str` into certroll's raw structures,
//!   on one thread: the "parse alone" floor that the whole command is compared with;
//! - `parse`: `inventory::parse_raw`, certroll's own parse (slices on every core, see
//!   `src/inventory/chunked.rs`);
//! - `validate`: defaults, rules, name resolution and link expansion (`parse_str` minus `parse`);
//! - `rotate`: `plan::rotate` (graph, steps, gates, waves, order) for the CA named by
//!   `CERTROLL_BENCH_CA` (default `internal`);
//! - `json` / `text`: rendering the plan into a sink that discards the bytes.
//!
//! The planner's own work is `validate` + `rotate`; its target is 0.5 s on 100,000
//! nodes and 300,000 links. Peak RSS of the whole command is measured separately with
//! `/usr/bin/time -v` (see `scripts/bench-plan.sh`), because this process holds several
//! phases' results at once.

use std::path::Path;

mod timing;
use timing::Timing;

use certroll::inventory::{parse_raw, parse_str, Inventory};
use certroll::output::plan::{json_to, text_to, PlanView};
use certroll::output::Style;
use certroll::plan::{rotate, ChainMode, Plan, Strategy};

fn main() {
    let Some((path, text, runs)) = timing::bench_input("plan") else {
        return;
    };
    let ca_name = std::env::var("CERTROLL_BENCH_CA").unwrap_or_else(|_| "internal".to_owned());

    let mut t = Phases::default();
    let mut summary = String::new();
    for _ in 0..runs {
        let tree = t
            .tree
            .measure(|| toml::from_str::<toml::Table>(&text).map(|t| t.len()));
        drop(tree);
        let serde = t.serde.measure(|| {
            toml::from_str::<certroll::inventory::raw::RawInventory>(&text)
                .expect("inventory parses")
        });
        drop(serde);
        let raw = t
            .parse
            .measure(|| parse_raw(&text, &path).expect("inventory parses"));
        drop(raw);
        let inv = t.load.measure(|| load_text(&text, &path));
        let ca = inv
            .cas
            .iter()
            .position(|c| c.name == ca_name)
            .unwrap_or_else(|| panic!("the inventory has no CA {ca_name}"));
        let plan = t.rotate.measure(|| {
            rotate(&inv, ca, Strategy::Phased, ChainMode::Plain).expect("phased always plans")
        });
        let view = PlanView {
            inv: &inv,
            plan: &plan,
            current: Some(1),
            next: Some(2),
        };
        let json_bytes = t.json.measure(|| render(|w| json_to(&view, w)));
        let text_bytes = t
            .text
            .measure(|| render(|w| text_to(&view, Style::plain(), w)));
        summary = describe(&inv, &plan, json_bytes, text_bytes);
        drop(plan);
        drop(inv);
    }
    let validate = t.load.wall.saturating_sub(t.parse.wall);
    let validate_cpu = t.load.cpu.saturating_sub(t.parse.cpu);
    println!("{summary}");
    println!(
        "toml tree   {}   (generic toml::Table, for comparison)",
        t.tree
    );
    println!(
        "toml+serde  {}   (the whole file in one toml::from_str into the raw structures,\n\
         \x20                                              one thread: the floor the 1.3× target refers to)",
        t.serde
    );
    println!(
        "parse       {}   (certroll: slices parsed on every core)",
        t.parse
    );
    println!(
        "validate    {}   (full load {})",
        Timing {
            wall: validate,
            cpu: validate_cpu
        },
        t.load
    );
    println!("rotate      {}", t.rotate);
    println!("json        {}", t.json);
    println!("text        {}", t.text);
    println!(
        "planner (validate + rotate): {:.3} s wall, {:.3} s cpu (target 0.5 s)",
        (validate + t.rotate.wall).as_secs_f64(),
        (validate_cpu + t.rotate.cpu).as_secs_f64()
    );
}

fn load_text(text: &str, path: &Path) -> Inventory {
    parse_str(text, path).unwrap_or_else(|e| panic!("benchmark inventory is refused: {e}"))
}

/// Renders into a counting sink; returns the number of bytes written.
fn render(f: impl FnOnce(&mut Counter) -> std::io::Result<()>) -> u64 {
    let mut sink = Counter(0);
    f(&mut sink).expect("rendering into a sink cannot fail");
    sink.0
}

/// A writer that only counts bytes.
struct Counter(u64);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn describe(inv: &Inventory, plan: &Plan, json: u64, text: u64) -> String {
    let edges: usize = plan.steps.iter().map(|s| s.after.len()).sum();
    format!(
        "{} nodes, {} links; plan: {} steps, {edges} gates, {} waves; json {:.1} MB, text {:.1} MB",
        inv.nodes.len(),
        inv.links.len(),
        plan.steps.len(),
        plan.wave_count(),
        json as f64 / 1e6,
        text as f64 / 1e6
    )
}

#[derive(Default)]
struct Phases {
    tree: Timing,
    serde: Timing,
    parse: Timing,
    load: Timing,
    rotate: Timing,
    json: Timing,
    text: Timing,
}
