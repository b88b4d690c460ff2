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
//! Each (machine, path) is hashed once; only when two hashes meet are the two paths built
//! again and compared, so a 100,000-node fleet costs one hash per file.

use std::hash::{Hash, Hasher};

use super::fxhash::{map_with_capacity, FxHashMap, FxHasher};
use super::locate::ValuePath;
use super::validate::Problem;
use super::{CaId, CaSpec, Link, Node, NodeId, TransportKind};

/// The file keys of a node, in the order [`files`] yields them.
const KEYS: [&str; 4] = ["trust_bundle", "cert", "key", "proof_cert"];

/// Refuses two nodes that keep any of their files (over the CAs they take part in) at the
/// same place.
pub fn check(nodes: &[Node], links: &[Link], cas: &[CaSpec]) -> Result<(), Problem> {
    let mut member: Vec<Vec<CaId>> = vec![Vec::new(); nodes.len()];
    for l in links {
        for n in [l.client, l.server] {
            if !member[n].contains(&l.ca) {
                member[n].push(l.ca);
            }
        }
    }
    let mut seen: FxHashMap<u64, (NodeId, CaId, usize)> = map_with_capacity(nodes.len() * 3);
    for (id, node) in nodes.iter().enumerate() {
        for &ca in &member[id] {
            for (k, path) in files(node, &cas[ca].name) {
                let h = place_hash(node, &path);
                let Some(&(other, other_ca, other_k)) = seen.get(&h) else {
                    seen.insert(h, (id, ca, k));
                    continue;
                };
                let first = &nodes[other];
                let same = other != id
                    && machine(first) == machine(node)
                    && files(first, &cas[other_ca].name).any(|(fk, p)| fk == other_k && p == path);
                if same {
                    return Err(shared(first, KEYS[other_k], node, KEYS[k], &path));
                }
            }
        }
    }
    Ok(())
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

/// The node's files for CA `ca`: (index into [`KEYS`], normalized path).
fn files<'a>(node: &'a Node, ca: &str) -> impl Iterator<Item = (usize, String)> + 'a {
    let p = node.paths(ca);
    [Some(p.trust_bundle), Some(p.cert), Some(p.key), p.proof_cert]
        .into_iter()
        .enumerate()
        .filter_map(|(k, path)| path.map(|path| (k, normalize(&path))))
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
