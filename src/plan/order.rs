//! Topological order of the client→server graph, ties broken by breadth-first discovery.

/// A cycle in the client→server graph, as node ids in order (first repeated at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleError {
    pub nodes: Vec<usize>,
}

pub fn topological_order() {}
