//! `[[links]]` tables expanded into one [`Link`] per (client, server, CA), in file order.
//!
//! `client` and `server` each take a name or a list; a table stands for every pair of
//! the cross product, which keeps big fleets compact. Names are resolved through a map
//! built once; duplicates are found by sorting the resolved ids, so expanding
//! 300,000 links costs tens of milliseconds.

use super::fxhash::FxHashMap;
use super::locate::ValuePath;
use super::raw::{Names, RawLink};
use super::validate::{suggest, Problem};
use super::{CaId, CaSpec, Link, Node, NodeId};

/// Expands and checks every link.
pub fn expand(
    raw: &[RawLink],
    index: &FxHashMap<&str, NodeId>,
    nodes: &[Node],
    cas: &[CaSpec],
) -> Result<Vec<Link>, Problem> {
    let mut links = Vec::with_capacity(raw.len());
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for (t, link) in raw.iter().enumerate() {
        let ca = resolve_ca(t, link, cas)?;
        resolve_names(t, "client", &link.client, index, nodes, &mut clients)?;
        resolve_names(t, "server", &link.server, index, nodes, &mut servers)?;
        for &client in &clients {
            for (si, &server) in servers.iter().enumerate() {
                if client == server {
                    return Err(self_link(t, link, si, &nodes[client].name));
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
    if let Some((first, second)) = find_duplicate(&links) {
        return Err(duplicate(raw, &links, first, second, nodes, cas));
    }
    Ok(links)
}

/// The earliest link (by position) that repeats an earlier one's (client, server, ca),
/// as `(earlier, later)` indices. Sorting packed keys is cheaper than a hash set.
fn find_duplicate(links: &[Link]) -> Option<(usize, usize)> {
    // Node, CA and link counts of an inventory that fits in memory fit in u32.
    let mut keys: Vec<(u32, u32, u32, u32)> = links
        .iter()
        .enumerate()
        .map(|(i, l)| (l.client as u32, l.server as u32, l.ca as u32, i as u32))
        .collect();
    keys.sort_unstable();
    keys.windows(2)
        .filter(|w| (w[0].0, w[0].1, w[0].2) == (w[1].0, w[1].1, w[1].2))
        .map(|w| (w[0].3 as usize, w[1].3 as usize))
        .min_by_key(|&(_, later)| later)
}

/// The table and server-list position an expanded link came from.
fn origin(raw: &[RawLink], link_index: usize) -> (usize, usize) {
    let mut start = 0;
    for (t, link) in raw.iter().enumerate() {
        let servers = link.server.as_slice().len();
        let count = link.client.as_slice().len() * servers;
        if link_index < start + count {
            return (t, (link_index - start) % servers);
        }
        start += count;
    }
    (0, 0)
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
            .binary_search_by(|c| c.name.as_str().cmp(name.as_str()))
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
    index: &FxHashMap<&str, NodeId>,
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

fn self_link(t: usize, link: &RawLink, server_pos: usize, name: &str) -> Problem {
    Problem::new(
        name_at(t, "server", &link.server, server_pos),
        format!("link {name} → {name} joins node {name} to itself"),
    )
    .hint("a node's TLS to itself needs no rotation plan; remove it from one side")
}

fn duplicate(
    raw: &[RawLink],
    links: &[Link],
    first: usize,
    second: usize,
    nodes: &[Node],
    cas: &[CaSpec],
) -> Problem {
    let l = &links[second];
    let (c, s, ca) = (
        &nodes[l.client].name,
        &nodes[l.server].name,
        &cas[l.ca].name,
    );
    let place = |i: usize| {
        let (t, server_pos) = origin(raw, i);
        name_at(t, "server", &raw[t].server, server_pos)
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
        Names::One(s) => s.to_string(),
        Names::Many(v) => {
            let names: Vec<&str> = v.iter().map(|n| n.as_str()).collect();
            format!("[{}]", names.join(", "))
        }
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

    fn l(client: NodeId, server: NodeId, ca: CaId) -> Link {
        Link {
            client,
            server,
            mutual: false,
            ca,
        }
    }

    #[test]
    fn duplicates_are_found_earliest_first() {
        assert_eq!(find_duplicate(&[l(0, 1, 0), l(1, 0, 0), l(0, 1, 1)]), None);
        let links = [l(0, 1, 0), l(2, 3, 0), l(2, 3, 0), l(0, 1, 0), l(0, 1, 0)];
        assert_eq!(find_duplicate(&links), Some((1, 2)));
        let links = [l(5, 6, 0), l(0, 1, 0), l(5, 6, 0), l(0, 1, 0)];
        assert_eq!(find_duplicate(&links), Some((0, 2)));
    }

    #[test]
    fn origins_walk_the_cross_products() {
        let many = |v: &[&str]| Names::Many(v.iter().map(|&s| s.into()).collect());
        let raw = [
            link(Names::One("a".into()), Names::One("b".into())),
            link(many(&["a", "b"]), many(&["c", "d", "e"])),
            link(Names::One("x".into()), Names::One("y".into())),
        ];
        assert_eq!(origin(&raw, 0), (0, 0));
        assert_eq!(origin(&raw, 1), (1, 0));
        assert_eq!(origin(&raw, 3), (1, 2));
        assert_eq!(origin(&raw, 5), (1, 1));
        assert_eq!(origin(&raw, 7), (2, 0));
    }
}
