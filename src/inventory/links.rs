//! `[[links]]` tables expanded into one [`Link`] per (client, server, CA), in file order.
//!
//! `client` and `server` each take a name or a list; a table stands for every pair of
//! the cross product, which keeps big fleets compact. Names are resolved through a map
//! built once; duplicates are found with a hash set of resolved ids, so expanding
//! 300,000 links costs a few milliseconds.

use std::collections::HashMap;

use super::locate::ValuePath;
use super::raw::{Names, RawLink};
use super::validate::{suggest, Problem};
use super::{CaId, CaSpec, Link, Node, NodeId};

/// Where an expanded link was written: table index and position in the server list.
///
/// Ids and positions are stored as `u32` to keep the duplicate map small; an inventory
/// with more than 4 billion nodes or link tables would not fit in memory anyway.
#[derive(Debug, Clone, Copy)]
struct Origin {
    table: u32,
    server: u32,
}

/// Expands and checks every link.
pub fn expand(
    raw: &[RawLink],
    index: &HashMap<&str, NodeId>,
    nodes: &[Node],
    cas: &[CaSpec],
) -> Result<Vec<Link>, Problem> {
    let mut links = Vec::with_capacity(raw.len());
    let mut seen: HashMap<(u32, u32, u32), Origin> = HashMap::with_capacity(raw.len());
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for (t, link) in raw.iter().enumerate() {
        let ca = resolve_ca(t, link, cas)?;
        resolve_names(t, "client", &link.client, index, nodes, &mut clients)?;
        resolve_names(t, "server", &link.server, index, nodes, &mut servers)?;
        for &client in &clients {
            for (si, &server) in servers.iter().enumerate() {
                let origin = Origin {
                    table: t as u32,
                    server: si as u32,
                };
                if client == server {
                    return Err(self_link(link, origin, &nodes[client].name));
                }
                let key = (client as u32, server as u32, ca as u32);
                if let Some(first) = seen.insert(key, origin) {
                    return Err(duplicate(raw, first, origin, nodes, key, cas));
                }
                links.push(Link {
                    client,
                    server,
                    mutual: link.mutual,
                    ca,
                });
            }
        }
    }
    Ok(links)
}

fn table_at(t: usize) -> ValuePath {
    ValuePath::keys(&["links"]).index(t)
}

/// The path of element `i` of `client` or `server` (the value itself when not a list).
fn name_at(t: usize, side: &str, names: &Names, i: usize) -> ValuePath {
    let p = table_at(t).key(side);
    if names.is_list() {
        p.index(i)
    } else {
        p
    }
}

fn resolve_ca(t: usize, link: &RawLink, cas: &[CaSpec]) -> Result<CaId, Problem> {
    let names = || cas.iter().map(|c| c.name.as_str());
    match &link.ca {
        None if cas.len() == 1 => Ok(0),
        None => Err(Problem::new(
            table_at(t),
            format!(
                "link {} has no ca, and there are several CAs: {}",
                describe(link),
                names().collect::<Vec<_>>().join(", ")
            ),
        )
        .hint("add ca = \"NAME\" to the link")),
        Some(name) => cas
            .binary_search_by(|c| c.name.as_str().cmp(name))
            .map_err(|_| {
                Problem::new(
                    table_at(t).key("ca"),
                    format!("link {} names unknown CA {name:?}", describe(link)),
                )
                .hint(suggest(name, names(), "CA"))
            }),
    }
}

/// Resolves one side of a link into `out` (cleared first).
fn resolve_names(
    t: usize,
    side: &str,
    names: &Names,
    index: &HashMap<&str, NodeId>,
    nodes: &[Node],
    out: &mut Vec<NodeId>,
) -> Result<(), Problem> {
    out.clear();
    if names.as_slice().is_empty() {
        return Err(Problem::new(
            table_at(t).key(side),
            format!("link has an empty {side} list"),
        )
        .hint(format!("name at least one {side} node, or remove the link")));
    }
    for (i, name) in names.as_slice().iter().enumerate() {
        match index.get(name.as_str()) {
            Some(&id) => out.push(id),
            None => {
                let known = nodes.iter().map(|n| n.name.as_str());
                return Err(Problem::new(
                    name_at(t, side, names, i),
                    format!("link {side} {name:?} is not a node"),
                )
                .hint(suggest(name, known, "node")));
            }
        }
    }
    Ok(())
}

fn self_link(link: &RawLink, at: Origin, name: &str) -> Problem {
    let t = at.table as usize;
    Problem::new(
        name_at(t, "server", &link.server, at.server as usize),
        format!("link {name} → {name} joins node {name} to itself"),
    )
    .hint("a node's TLS to itself needs no rotation plan; remove it from one side")
}

fn duplicate(
    raw: &[RawLink],
    first: Origin,
    second: Origin,
    nodes: &[Node],
    key: (u32, u32, u32),
    cas: &[CaSpec],
) -> Problem {
    let (c, s) = (&nodes[key.0 as usize].name, &nodes[key.1 as usize].name);
    let ca = &cas[key.2 as usize].name;
    let place = |o: Origin| {
        let link = &raw[o.table as usize];
        name_at(o.table as usize, "server", &link.server, o.server as usize)
    };
    Problem::new(
        place(second),
        format!("duplicate link {c} → {s} over CA {ca}"),
    )
    .also(place(first))
    .hint("each (client, server, ca) may appear once; merge the two links or set mutual on one")
}

/// `a → b` or `[a, b] → [c]` for messages.
fn describe(link: &RawLink) -> String {
    let side = |n: &Names| match n {
        Names::One(s) => s.clone(),
        Names::Many(v) => format!("[{}]", v.join(", ")),
    };
    format!("{} → {}", side(&link.client), side(&link.server))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(client: Names, server: Names) -> RawLink {
        RawLink {
            client,
            server,
            mutual: false,
            ca: None,
        }
    }

    #[test]
    fn describe_shows_both_forms() {
        let l = link(
            Names::One("a".into()),
            Names::Many(vec!["b".into(), "c".into()]),
        );
        assert_eq!(describe(&l), "a → [b, c]");
    }

    #[test]
    fn name_paths_index_only_lists() {
        let one = Names::One("a".into());
        let many = Names::Many(vec!["a".into()]);
        assert_eq!(name_at(2, "client", &one, 0).to_string(), "links[2].client");
        assert_eq!(
            name_at(2, "client", &many, 0).to_string(),
            "links[2].client[0]"
        );
    }
}
