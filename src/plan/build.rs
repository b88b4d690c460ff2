//! Building the steps of bootstrap, renew and rotate plans (DESIGN §3).

use super::Plan;
use crate::inventory::{CaId, Inventory, NodeId};

/// Why no plan could be built.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("strategy \"ordered\" needs an acyclic client→server graph; it has a cycle: {cycle}")]
    Cycle { cycle: String },
}

pub fn bootstrap(_inv: &Inventory, _ca: CaId, _nodes: &[NodeId]) -> Plan { todo!() }
pub fn renew(_inv: &Inventory, _ca: CaId, _nodes: &[NodeId]) -> Plan { todo!() }
pub fn rotate(_inv: &Inventory, _ca: CaId, _s: super::Strategy, _c: super::ChainMode) -> Result<Plan, PlanError> { todo!() }
