//! A routine run at its end: the problems it left alone are named, with a non-zero exit
//! when any of them keeps the fleet from being healthy. (The plan of a resumed routine
//! run is rebuilt in [`crate::session::resume`].)

use super::CommandError;
use crate::exit;
use crate::inventory::Inventory;
use crate::output::style::plural;
use crate::plan::Unrepaired;

/// Ends a routine run that left problems alone: names them (unless the plan text already
/// did: `listed`) on stdout with the run's outcome — on stderr when `json` events own
/// stdout — and fails when one of them is critical. `code` is the exit code of the run
/// itself.
pub fn left_alone(
    inv: &Inventory,
    unrepaired: &[Unrepaired],
    listed: bool,
    json: bool,
    code: i32,
) -> Result<i32, CommandError> {
    if !listed {
        for u in unrepaired {
            let mark = if u.critical { "✗" } else { "!" };
            let message = crate::output::escape::line(&u.message);
            if json {
                crate::errln!("  {mark} {message}");
            } else {
                crate::outln!("  {mark} {message}");
            }
        }
    }
    let critical: Vec<&Unrepaired> = unrepaired.iter().filter(|u| u.critical).collect();
    if critical.is_empty() || code != exit::OK {
        return Ok(code);
    }
    let mut nodes: Vec<&str> = Vec::new();
    for u in &critical {
        let name = inv.nodes[u.node].name.as_str();
        if !nodes.contains(&name) {
            nodes.push(name);
        }
    }
    Err(CommandError::Other(anyhow::anyhow!(
        "{} left that certroll cannot repair (on {}: {}); everything else is done\n  hint: fix what is named above, then run `certroll verify`",
        plural(critical.len(), "problem"),
        plural(nodes.len(), "node"),
        nodes.join(", ")
    )))
}
