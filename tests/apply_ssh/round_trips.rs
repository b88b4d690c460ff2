//! What one step costs in remote work, counted (never timed): a 20-node phased rotation
//! whose transport trace (`CERTROLL_TRACE_TRANSPORT`, debug builds) records every remote
//! command and every file operation certroll makes. A later change that adds a remote
//! command or a file read to every step fails here, whatever the machine's load
//! (docs/performance.md, "Round trips per step").

use std::collections::BTreeMap;
use std::path::Path;

use crate::status_steps;
use crate::support::cli::Control;
use crate::support::inventory::{FleetInventory, RELOADED};
use crate::support::run::certroll;
use crate::support::Fleet;

/// Remote commands per step of a rotation: the switch, the reload and the first confirm
/// attempt are one command.
const COMMANDS_PER_STEP: usize = 1;
/// File operations per step of a rotation (reads of the bundle a step composes from, and
/// the read-back of every written file).
const FILE_OPS_PER_STEP: f64 = 2.0;

/// The fleet of `scripts/bench-apply.sh 20`: 2 load balancers, 12 apps, 6 databases, each
/// app behind two load balancers and a mutual client of three databases.
fn fleet_inventory(fleet: &Fleet) -> FleetInventory<'_> {
    let mut inv = FleetInventory::new(fleet).default_key("confirm", &format!("test -e {RELOADED}"));
    for a in 0..12 {
        let app = format!("app{a:02}");
        for k in 0..2 {
            inv = inv.link(&format!("lb{:02}", (a + k) % 2), &app);
        }
        for k in 0..3 {
            inv = inv.mutual_link(&app, &format!("db{:02}", (a + k) % 6));
        }
    }
    inv
}

/// Operations in a transport trace, by kind (`exec`, `read_file`...).
fn count_ops(trace: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read(trace).unwrap_or_else(|e| panic!("read {}: {e}", trace.display()));
    let mut ops = BTreeMap::new();
    for line in text.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        // `=== node <name> <operation>`
        if let Some(rest) = line.strip_prefix("=== node ") {
            if let Some(op) = rest.split(' ').nth(1) {
                *ops.entry(op.to_string()).or_insert(0) += 1;
            }
        }
    }
    ops
}

#[test]
fn a_rotation_step_costs_one_remote_command() {
    let mut names: Vec<String> = (0..2).map(|i| format!("lb{i:02}")).collect();
    names.extend((0..12).map(|i| format!("app{i:02}")));
    names.extend((0..6).map(|i| format!("db{i:02}")));
    let fleet = Fleet::start(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let inv = fleet_inventory(&fleet);
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);

    let trace = ctl.dir.join("rotation.trace");
    let run = certroll(&ctl.inventory, &["apply", "--yes", "--rotate"], |c| {
        c.current_dir(&ctl.dir)
            .env_remove("CERTROLL_INVENTORY")
            .env("CERTROLL_TRACE_TRANSPORT", &trace);
    });
    run.expect_code(0);
    let steps = status_steps(&ctl);
    assert_eq!(steps.len(), 60, "3 steps per node: {steps:?}\n{run}");
    assert!(
        steps.iter().all(|(_, _, state)| state == "done"),
        "{steps:?}\n{run}"
    );

    let ops = count_ops(&trace);
    println!("{} steps: {ops:?}", steps.len());
    let commands = ops.get("exec").copied().unwrap_or(0);
    let file_ops: usize = ops
        .iter()
        .filter(|(op, _)| op.as_str() != "exec")
        .map(|(_, n)| n)
        .sum();
    assert!(
        commands <= COMMANDS_PER_STEP * steps.len(),
        "{commands} remote commands for {} steps (at most {COMMANDS_PER_STEP} a step): {ops:?}",
        steps.len()
    );
    assert!(
        file_ops as f64 <= FILE_OPS_PER_STEP * steps.len() as f64,
        "{file_ops} file operations for {} steps (at most {FILE_OPS_PER_STEP} a step): {ops:?}",
        steps.len()
    );
    // Every step ran its node's reload and confirm inside its one command.
    for node in fleet.names() {
        assert!(
            fleet.host_path(&node, RELOADED).exists(),
            "node {node} was reloaded"
        );
    }
}
