//! Topological order of the client→server graph, ties broken by breadth-first discovery.
//!
//! The single-visit strategy needs every node visited after all the nodes that verify it.
//! With plain chains that means every client before its servers (and, for a mutual link,
//! each side before the other: a cycle). A breadth-first walk from the first linked node
//! gives a natural reading order; Kahn's algorithm, picking the ready node discovered
//! first, turns it into a true topological order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use crate::inventory::{CaId, Inventory, NodeId};

/// A cycle in the precedence graph, as node ids in order; the first node repeats at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleError {
    pub nodes: Vec<NodeId>,
}

impl CycleError {
    /// `a → b → a`, with node names.
    pub fn render(&self, inv: &Inventory) -> String {
        let names: Vec<&str> = self
            .nodes
            .iter()
            .map(|&n| inv.nodes[n].name.as_str())
            .collect();
        names.join(" → ")
    }
}

/// Breadth-first discovery rank of every member node (undirected walk over the links,
/// each component started from its first node in link order). Non-members get `usize::MAX`.
pub(crate) fn discovery_rank(inv: &Inventory, ca: CaId) -> Vec<usize> {
    let n = inv.nodes.len();
    let mut adj = vec![Vec::new(); n];
    let mut starts = Vec::new();
    for l in inv.links_of(ca) {
        adj[l.client].push(l.server);
        adj[l.server].push(l.client);
        starts.push(l.client);
    }
    let mut rank = vec![usize::MAX; n];
    let mut next = 0;
    let mut queue = VecDeque::new();
    for s in starts {
        if rank[s] != usize::MAX {
            continue;
        }
        rank[s] = next;
        next += 1;
        queue.push_back(s);
        while let Some(v) = queue.pop_front() {
            for &w in &adj[v] {
                if rank[w] == usize::MAX {
                    rank[w] = next;
                    next += 1;
                    queue.push_back(w);
                }
            }
        }
    }
    rank
}

/// A topological order of the members of `ca` under `edges`, ties broken by `rank`;
/// or a cycle when there is none.
pub fn topological_order(
    members: &[NodeId],
    edges: &[Vec<NodeId>],
    rank: &[usize],
) -> Result<Vec<NodeId>, CycleError> {
    let mut indegree = vec![0usize; edges.len()];
    for &m in members {
        for &t in &edges[m] {
            indegree[t] += 1;
        }
    }
    let mut ready: BinaryHeap<Reverse<(usize, NodeId)>> = members
        .iter()
        .filter(|&&m| indegree[m] == 0)
        .map(|&m| Reverse((rank[m], m)))
        .collect();
    let mut order = Vec::with_capacity(members.len());
    while let Some(Reverse((_, v))) = ready.pop() {
        order.push(v);
        for &t in &edges[v] {
            indegree[t] -= 1;
            if indegree[t] == 0 {
                ready.push(Reverse((rank[t], t)));
            }
        }
    }
    if order.len() == members.len() {
        return Ok(order);
    }
    Err(find_cycle(members, edges, &indegree, rank))
}

/// Walks edges among the nodes Kahn's algorithm could not place (all have indegree > 0,
/// so every one has a predecessor among them) backwards until a node repeats.
fn find_cycle(
    members: &[NodeId],
    edges: &[Vec<NodeId>],
    indegree: &[usize],
    rank: &[usize],
) -> CycleError {
    let stuck: Vec<bool> = (0..edges.len()).map(|v| indegree[v] > 0).collect();
    let mut preds = vec![Vec::new(); edges.len()];
    for &m in members.iter().filter(|&&m| stuck[m]) {
        for &t in edges[m].iter().filter(|&&t| stuck[t]) {
            preds[t].push(m);
        }
    }
    // Start from the stuck node discovered first, so the message reads like the inventory.
    let start = members
        .iter()
        .copied()
        .filter(|&m| stuck[m])
        .min_by_key(|&m| rank[m])
        .unwrap_or(members[0]);
    let mut position = vec![usize::MAX; edges.len()];
    let mut path = Vec::new();
    let mut v = start;
    while position[v] == usize::MAX {
        position[v] = path.len();
        path.push(v);
        // Invariant: a stuck node has a stuck predecessor (its indegree counts only stuck nodes).
        v = *preds[v].iter().min_by_key(|&&p| rank[p]).unwrap_or(&v);
    }
    let mut cycle: Vec<NodeId> = path[position[v]..].to_vec();
    cycle.reverse(); // predecessors were followed: reverse into edge direction
                     // Start the cycle at its node discovered first, so it reads in inventory order.
    let first = (0..cycle.len())
        .min_by_key(|&i| rank[cycle[i]])
        .unwrap_or(0);
    cycle.rotate_left(first);
    cycle.push(cycle[0]);
    CycleError { nodes: cycle }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kahn_prefers_discovery_rank() {
        // 0 → 2, 1 → 2; rank says 1 was discovered before 0.
        let edges = vec![vec![2], vec![2], vec![]];
        let order = topological_order(&[0, 1, 2], &edges, &[1, 0, 2]).unwrap();
        assert_eq!(order, vec![1, 0, 2]);
    }

    #[test]
    fn reports_a_real_cycle() {
        // 0 → 1 → 2 → 1, and 2 → 3.
        let edges = vec![vec![1], vec![2], vec![1, 3], vec![]];
        let err = topological_order(&[0, 1, 2, 3], &edges, &[0, 1, 2, 3]).unwrap_err();
        assert_eq!(err.nodes.first(), err.nodes.last());
        let cyc = &err.nodes[..err.nodes.len() - 1];
        for (i, &a) in cyc.iter().enumerate() {
            let b = cyc[(i + 1) % cyc.len()];
            assert!(
                edges[a].contains(&b),
                "{a}→{b} is not an edge in {:?}",
                err.nodes
            );
        }
    }
}
