//! Two nodes must not keep a file at the same place: if db1 and db2 both write
//! `/srv/tls/cert.pem` on one machine, the second leaf overwrites the first and db1 serves
//! db2's certificate (or a bundle changes under a node whose gate has not been passed).
//!
//! "The same place" means the same machine and the same path after `{ca}` and `{node}`
//! are filled in and `.`/`..`/`//` are resolved. Local nodes all share this machine; SSH
//! nodes share one when they name the same host (case-insensitive), port and `via` node.
//! The same path on different SSH hosts is fine. Symbolic links between different paths
//! cannot be seen without reading the machine, and are not detected here.
//!
//! Each (machine, path) is hashed once and the hashes sorted; only when two hashes meet are
//! the two paths built again and compared, so a 100,000-node fleet costs one hash per file.

use std::hash::{Hash, Hasher};

use super::fxhash::FxHasher;
use super::locate::ValuePath;
use super::validate::Problem;
use super::{CaSpec, Link, Node, NodeId, TransportKind};

/// One file of a node: (node, CA × 4 + index into [`KEYS`]).
type File = (NodeId, usize);

/// The file keys of a node, in the order [`templates`] yields them.
const KEYS: [&str; 4] = ["trust_bundle", "cert", "key", "proof_cert"];

/// Refuses two nodes that keep any of their files (over the CAs they take part in) at the
/// same place.
pub fn check(nodes: &[Node], links: &[Link], cas: &[CaSpec]) -> Result<(), Problem> {
    // One bit per (node, CA) the node has links in.
    let words = cas.len().div_ceil(64);
    let mut member = vec![0u64; nodes.len() * words];
    for l in links {
        for n in [l.client, l.server] {
            member[n * words + l.ca / 64] |= 1 << (l.ca % 64);
        }
    }
    // (hash of the place, node, CA × 4 + key) for every file, sorted: equal places are
    // neighbours. Sorting a flat vector costs far less memory than a map on big fleets.
    let mut places: Vec<(u64, NodeId, usize)> = Vec::with_capacity(nodes.len() * 3);
    let mut buf = String::new();
    for (id, node) in nodes.iter().enumerate() {
        let bits = &member[id * words..(id + 1) * words];
        for ca in (0..cas.len()).filter(|&ca| bits[ca / 64] & (1 << (ca % 64)) != 0) {
            for (k, template) in templates(node) {
                place(&mut buf, template, &cas[ca].name, &node.name);
                places.push((place_hash(node, &buf), id, ca * 4 + k));
            }
        }
    }
    places.sort_unstable();
    let path_of = |id: NodeId, ca_key: usize| {
        let mut out = String::new();
        let k = ca_key % 4;
        if let Some((_, t)) = templates(&nodes[id]).find(|&(fk, _)| fk == k) {
            place(&mut out, t, &cas[ca_key / 4].name, &nodes[id].name);
        }
        out
    };
    // The clash reported is the first in node and file order, whatever the hashes.
    let mut first: Option<(File, File, String)> = None;
    for run in places.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
        for (i, &(_, a, a_file)) in run.iter().enumerate() {
            for &(_, b, b_file) in &run[i + 1..] {
                let earlier = first.as_ref().is_none_or(|f| (b, b_file) < f.1);
                if a == b || !earlier || machine(&nodes[a]) != machine(&nodes[b]) {
                    continue;
                }
                let path = path_of(b, b_file);
                if path_of(a, a_file) == path {
                    first = Some(((a, a_file), (b, b_file), path));
                }
            }
        }
    }
    match first {
        None => Ok(()),
        Some(((a, a_file), (b, b_file), path)) => {
            let (ka, kb) = (KEYS[a_file % 4], KEYS[b_file % 4]);
            Err(shared(&nodes[a], ka, &nodes[b], kb, &path))
        }
    }
}

/// The node's path templates: (index into [`KEYS`], template).
fn templates(node: &Node) -> impl Iterator<Item = (usize, &str)> {
    [
        Some(node.trust_bundle.as_str()),
        Some(node.cert.as_str()),
        // A PEM key kept inside the store has no link at `key`: nothing is written there.
        (!node.key_in_store()).then_some(node.key.as_str()),
        node.proof_cert.as_deref(),
    ]
    .into_iter()
    .enumerate()
    .filter_map(|(k, t)| t.map(|t| (k, t)))
}

/// Writes the file's place into `out`: the template filled in, normalized when needed.
fn place(out: &mut String, template: &str, ca: &str, node: &str) {
    super::nodes::fill(out, template, ca, node);
    if out.contains("//") || out.contains("/.") || out.starts_with('.') {
        *out = normalize(out);
    }
}

/// Where a node's files live: `None` for this machine, else (host, port, via).
fn machine(node: &Node) -> Option<(String, u16, Option<NodeId>)> {
    match &node.transport {
        TransportKind::Local => None,
        TransportKind::Ssh(s) => Some((s.host.to_ascii_lowercase(), s.port, node.via)),
    }
}

fn place_hash(node: &Node, path: &str) -> u64 {
    let mut h = FxHasher::default();
    machine(node).hash(&mut h);
    path.hash(&mut h);
    h.finish()
}

/// `path` with empty and `.` components dropped and `..` applied (lexically).
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    if path.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

fn shared(first: &Node, first_key: &str, second: &Node, second_key: &str, path: &str) -> Problem {
    let place = match &second.transport {
        TransportKind::Local => "on this machine".to_string(),
        TransportKind::Ssh(s) => format!("on host {} port {}", s.host, s.port),
    };
    let (a, b) = (&first.name, &second.name);
    Problem::new(
        ValuePath::keys(&["nodes", b, second_key]),
        format!(
            "nodes {a} and {b} keep a file at the same path {path} {place} \
             (the {first_key} of {a} and the {second_key} of {b}): one would overwrite the other"
        ),
    )
    .or_at(ValuePath::keys(&["defaults", second_key]))
    .or_at(ValuePath::keys(&["nodes", b]))
    .also(ValuePath::keys(&["nodes", a]))
    .hint("give each node its own files, e.g. put {node} in the path: \"/etc/tls/{node}/cert.pem\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(normalize("/srv//tls/./a/../cert.pem"), "/srv/tls/cert.pem");
        assert_eq!(normalize("/a/b"), "/a/b");
        assert_eq!(normalize("rel/./x"), "rel/x");
    }
}
