//! `[nodes.NAME]` merged with `[defaults]`: transport, SSH settings, paths, relays.
//!
//! A node key overrides the same key of `[defaults]`; the `ssh` table merges key by key.
//! Remote paths must be absolute (a relative path on a remote host would depend on the
//! login directory); local paths are resolved against the inventory's directory.

use super::file_access::{account, key_mode, mode};
use super::fxhash::FxHashMap;
use super::leaf_keys;
use super::locate::ValuePath;
use super::raw::{RawNode, RawSsh};
use super::validate::{suggest, Context, Problem};
use super::{Become, CaSpec, FileSettings, Link, Node, NodeId, SshSettings, TransportKind};
use crate::duration;

/// The path keys of a node, as written in the inventory.
const FILE_KEYS: [&str; 4] = ["trust_bundle", "cert", "key", "proof_cert"];

/// Whether a `transport` value means a local node; for an unknown one, the hint.
fn is_local(transport: &str) -> Result<bool, String> {
    const KNOWN: [&str; 2] = ["ssh", "local"];
    match transport {
        "ssh" => Ok(false),
        "local" => Ok(true),
        other => {
            let use_one = "use \"ssh\" (the default) or \"local\"";
            Err(match super::validate::closest(other, KNOWN.into_iter()) {
                Some(near) => format!("did you mean {near:?}? ({use_one})"),
                None => use_one.to_owned(),
            })
        }
    }
}

/// Paths into the text where a node key may come from: the node first, then `[defaults]`.
pub(super) fn key_at(node: &str, key: &[&str]) -> Problem {
    let mut own = ValuePath::keys(&["nodes", node]);
    let mut def = ValuePath::keys(&["defaults"]);
    for k in key {
        own = own.key(k);
        def = def.key(k);
    }
    Problem::new(own, String::new()).or_at(def)
}

/// Builds every node (`via` left unresolved) and returns the `via` names beside them.
pub fn build(
    raw: Vec<(String, RawNode)>,
    defaults: &RawNode,
    ctx: &Context,
    ca_count: usize,
) -> Result<(Vec<Node>, Vec<Option<String>>), Problem> {
    // A value of [defaults] is checked once, at its own place: a typo there is not a
    // problem of whichever node happens to be built first.
    if let Some(t) = defaults.transport.as_deref() {
        is_local(t).map_err(|hint| {
            Problem::new(
                ValuePath::keys(&["defaults", "transport"]),
                format!("unknown transport {t:?} in [defaults]"),
            )
            .hint(hint)
        })?;
    }
    let mut nodes = Vec::with_capacity(raw.len());
    let mut vias = Vec::with_capacity(raw.len());
    for (name, node) in raw {
        let (node, via) = build_one(name, node, defaults, ctx, ca_count)?;
        nodes.push(node);
        vias.push(via);
    }
    Ok((nodes, vias))
}

fn build_one(
    name: String,
    raw: RawNode,
    d: &RawNode,
    ctx: &Context,
    ca_count: usize,
) -> Result<(Node, Option<String>), Problem> {
    let pick = |own: Option<String>, def: &Option<String>| own.or_else(|| def.clone());
    // [defaults] transport was checked by `build`.
    let local = match (raw.transport.as_deref(), d.transport.as_deref()) {
        (Some(own), _) => is_local(own).map_err(|hint| {
            Problem::new(
                ValuePath::keys(&["nodes", &name, "transport"]),
                format!("unknown transport {own:?} for node {name}"),
            )
            .hint(hint)
        })?,
        (None, Some(def)) => is_local(def).unwrap_or(false),
        (None, None) => false,
    };
    let stores = super::store_keys::build(&name, &raw, d, &|key, t| {
        node_path(&name, key, t, local, ctx)
    })?;
    let via = pick(raw.via, &d.via);
    if local && via.is_some() {
        return Err(Problem {
            message: format!(
                "node {name} is local but has via = {:?}",
                via.unwrap_or_default()
            ),
            ..key_at(&name, &["via"])
        }
        .hint("a local node is reached without SSH; remove via or use transport = \"ssh\""));
    }
    let transport = if local {
        TransportKind::Local
    } else {
        TransportKind::Ssh(ssh_settings(&name, raw.ssh.clone(), d.ssh.as_ref(), ctx)?)
    };
    let dir = if ca_count > 1 {
        "/etc/tls/{ca}"
    } else {
        "/etc/tls"
    };
    let file = |key: &str, own: Option<String>, def: &Option<String>, dflt: Option<&str>| {
        let template = own
            .or_else(|| def.clone())
            .or(dflt.map(|f| format!("{dir}/{f}")));
        template
            .map(|t| node_path(&name, key, t, local, ctx))
            .transpose()
    };
    let trust_bundle = file(
        "trust_bundle",
        raw.trust_bundle.clone(),
        &d.trust_bundle,
        Some("ca.pem"),
    )?;
    let cert = file("cert", raw.cert.clone(), &d.cert, Some("cert.pem"))?;
    let key = file("key", raw.key.clone(), &d.key, Some("key.pem"))?;
    let proof_cert = file("proof_cert", raw.proof_cert.clone(), &d.proof_cert, None)?;
    super::store_keys::distinct(
        &name,
        &stores,
        [
            trust_bundle.as_deref().unwrap_or_default(),
            cert.as_deref().unwrap_or_default(),
            key.as_deref().unwrap_or_default(),
        ],
    )?;
    let timeout = raw
        .confirm_timeout
        .as_deref()
        .or(d.confirm_timeout.as_deref());
    let confirm_timeout = duration::parse(timeout.unwrap_or("60s")).map_err(|e| Problem {
        message: format!("bad confirm_timeout for node {name}: {e}"),
        ..key_at(&name, &["confirm_timeout"])
    })?;
    let own_names = raw.dns_names.is_some();
    let dns_names = raw
        .dns_names
        .or_else(|| d.dns_names.clone())
        .unwrap_or_default();
    check_dns_names(&name, &dns_names, own_names)?;
    let tls = super::tls_target::build(
        &name,
        raw.tls_address.as_deref().or(d.tls_address.as_deref()),
        raw.starttls.as_deref().or(d.starttls.as_deref()),
        |key| key_at(&name, &[key]),
    )?;
    let key_source = leaf_keys::source(&name, pick(raw.key_source.clone(), &d.key_source))?;
    let node = Node {
        transport,
        via: None,
        // Defaults always provide these three; the fallbacks are unreachable.
        trust_bundle: trust_bundle.unwrap_or_default(),
        cert: cert.unwrap_or_default(),
        key: key.unwrap_or_default(),
        proof_cert,
        reload: pick(raw.reload, &d.reload),
        confirm: pick(raw.confirm, &d.confirm),
        confirm_timeout,
        probe: pick(raw.probe, &d.probe),
        tls,
        dns_names,
        become_with: become_with(
            &name,
            raw.become_with.as_deref().or(d.become_with.as_deref()),
        )?,
        files: FileSettings {
            owner: account(&name, "owner", pick(raw.owner, &d.owner))?,
            group: account(&name, "group", pick(raw.group, &d.group))?,
            key_mode: key_mode(&name, pick(raw.key_mode, &d.key_mode))?,
            cert_mode: mode(&name, "cert_mode", pick(raw.cert_mode, &d.cert_mode))?,
            bundle_mode: mode(&name, "bundle_mode", pick(raw.bundle_mode, &d.bundle_mode))?,
            keep_backups: raw.keep_backups.or(d.keep_backups).unwrap_or(0),
            key_algorithm: leaf_keys::algorithm(&name, pick(raw.key_algorithm, &d.key_algorithm))?,
            key_source,
            store_dir: pick(raw.store_dir, &d.store_dir),
        },
        stores,
        name,
    };
    Ok((node, via))
}

/// `become`: absent or `"sudo"`.
fn become_with(name: &str, value: Option<&str>) -> Result<Become, Problem> {
    match value {
        None => Ok(Become::Login),
        Some("sudo") => Ok(Become::Sudo),
        Some(other) => Err(Problem {
            message: format!("unknown become {other:?} for node {name}"),
            ..key_at(name, &["become"])
        }
        .hint("use \"sudo\", or leave become out to run as the login user")),
    }
}

/// Refuses a `dns_names` entry that is neither a host name nor an IP address (see `san`).
fn check_dns_names(name: &str, names: &[String], own: bool) -> Result<(), Problem> {
    for (i, san) in names.iter().enumerate() {
        let Some(why) = super::san::problem(san) else {
            continue;
        };
        let at = if own {
            ValuePath::keys(&["nodes", name, "dns_names"])
        } else {
            ValuePath::keys(&["defaults", "dns_names"])
        };
        return Err(Problem::new(
            at.index(i),
            format!("dns_names entry {san:?} of node {name} is not a host name or IP address: {why}"),
        )
        .hint("write host names as RFC 1123 defines them (e.g. \"app1.example.com\") or IP addresses; see docs/inventory.md"));
    }
    Ok(())
}

/// Merges the node's `ssh` table over the defaults' one, key by key.
fn ssh_settings(
    name: &str,
    own: Option<RawSsh>,
    def: Option<&RawSsh>,
    ctx: &Context,
) -> Result<SshSettings, Problem> {
    let own = own.unwrap_or_default();
    let empty = RawSsh::default();
    let def = def.unwrap_or(&empty);
    let pick = |own: Option<String>, def: &Option<String>| own.or_else(|| def.clone());
    let Some(host) = pick(own.host, &def.host) else {
        return Err(Problem {
            message: format!("node {name} is reached over ssh but has no ssh.host"),
            ..key_at(name, &["ssh", "host"])
        }
        .hint(format!(
            "add ssh = {{ host = \"...\" }} to [nodes.{name}], or transport = \"local\""
        )));
    };
    let identity_file = own.identity_file.as_ref().or(def.identity_file.as_ref());
    let known_hosts = own.known_hosts.as_ref().or(def.known_hosts.as_ref());
    Ok(SshSettings {
        host,
        port: own.port.or(def.port).unwrap_or(22),
        user: pick(own.user, &def.user).unwrap_or_else(|| "root".to_owned()),
        identity_file: identity_file.map(|p| ctx.expand_home(p)),
        known_hosts: ctx.expand_home(known_hosts.map_or("~/.ssh/known_hosts", String::as_str)),
    })
}

/// Checks a path template's placeholders and makes it absolute (local) or refuses it (remote).
fn node_path(
    name: &str,
    key: &str,
    template: String,
    local: bool,
    ctx: &Context,
) -> Result<String, Problem> {
    if let Some(bad) = unknown_placeholder(&template) {
        return Err(Problem {
            message: format!("unknown placeholder {bad} in {key} {template:?} of node {name}"),
            ..key_at(name, &[key])
        }
        .hint("path templates may use {node} and {ca}"));
    }
    if local {
        return Ok(ctx.resolve(&template));
    }
    if !template.starts_with('/') {
        return Err(Problem {
            message: format!("{key} {template:?} of node {name} is a relative remote path"),
            ..key_at(name, &[key])
        }
        .hint("paths on an ssh node must be absolute, e.g. \"/etc/tls/ca.pem\""));
    }
    Ok(template)
}

/// The first `{…}` that is neither `{node}` nor `{ca}`.
fn unknown_placeholder(template: &str) -> Option<&str> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start..];
        let end = tail.find('}').map_or(tail.len(), |e| e + 1);
        let found = &tail[..end];
        if found != "{node}" && found != "{ca}" {
            return Some(found);
        }
        rest = &tail[end..];
    }
    None
}

/// Resolves `via` names, refusing unknown targets, local targets and loops.
pub fn resolve_vias(
    nodes: &[Node],
    vias: &[Option<String>],
    index: &FxHashMap<&str, NodeId>,
) -> Result<Vec<Option<NodeId>>, Problem> {
    let mut ids = Vec::with_capacity(nodes.len());
    for (node, via) in nodes.iter().zip(vias) {
        let Some(via) = via else {
            ids.push(None);
            continue;
        };
        let Some(&target) = index.get(via.as_str()) else {
            let names = nodes.iter().map(|n| n.name.as_str());
            return Err(Problem {
                message: format!("node {} has via = {via:?}, which is not a node", node.name),
                ..key_at(&node.name, &["via"])
            }
            .hint(suggest(via, names, "node")));
        };
        if nodes[target].is_local() {
            return Err(Problem {
                message: format!(
                    "node {} is reached via {via}, which is a local node",
                    node.name
                ),
                ..key_at(&node.name, &["via"])
            }
            .hint("via must name an ssh node whose session can relay the connection"));
        }
        ids.push(Some(target));
    }
    check_via_loops(nodes, &ids)?;
    Ok(ids)
}

/// Follows every `via` chain once; a chain that comes back to itself is a loop.
fn check_via_loops(nodes: &[Node], via: &[Option<NodeId>]) -> Result<(), Problem> {
    const NEW: u8 = 0;
    const WALKING: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; nodes.len()];
    let mut chain = Vec::new();
    for start in 0..nodes.len() {
        let mut cur = Some(start);
        chain.clear();
        while let Some(n) = cur.filter(|&n| state[n] != DONE) {
            if state[n] == WALKING {
                let from = chain.iter().position(|&c| c == n).unwrap_or(0);
                let names: Vec<&str> = chain[from..]
                    .iter()
                    .chain([&n])
                    .map(|&c| nodes[c].name.as_str())
                    .collect();
                return Err(Problem {
                    message: format!("via loop: {}", names.join(" → ")),
                    ..key_at(names[0], &["via"])
                }
                .hint("a via chain must end at a node reached directly"));
            }
            state[n] = WALKING;
            chain.push(n);
            cur = via[n];
        }
        for &c in &chain {
            state[c] = DONE;
        }
    }
    Ok(())
}

/// Refuses a node that would keep two of its files (over all its CAs) at one path.
pub fn check_files(nodes: &[Node], links: &[Link], cas: &[CaSpec]) -> Result<(), Problem> {
    // One bit per (node, CA) the node has links in.
    let words = cas.len().div_ceil(64);
    let mut member = vec![0u64; nodes.len() * words];
    for l in links {
        for n in [l.client, l.server] {
            member[n * words + l.ca / 64] |= 1 << (l.ca % 64);
        }
    }
    // Buffers reused across nodes: (path, CA, key) for each file of the node.
    let mut files: Vec<(String, usize, &str)> = Vec::new();
    for (id, node) in nodes.iter().enumerate() {
        let bits = &member[id * words..(id + 1) * words];
        let mut used = 0;
        for ca in (0..cas.len()).filter(|&ca| bits[ca / 64] & (1 << (ca % 64)) != 0) {
            let templates = [&node.trust_bundle, &node.cert, &node.key];
            let all = templates.into_iter().chain(node.proof_cert.as_ref());
            for (template, key) in all.zip(FILE_KEYS) {
                if used == files.len() {
                    files.push((String::new(), 0, ""));
                }
                fill(&mut files[used].0, template, &cas[ca].name, &node.name);
                if let Some(prev) = files[..used].iter().find(|f| f.0 == files[used].0) {
                    return Err(same_path(node, cas, (prev.1, prev.2), (ca, key), &prev.0));
                }
                (files[used].1, files[used].2) = (ca, key);
                used += 1;
            }
        }
    }
    Ok(())
}

/// Writes `template` with `{ca}` and `{node}` substituted into `out`, reusing its
/// allocation; the same result as [`Node::paths`].
pub(super) fn fill(out: &mut String, template: &str, ca: &str, node: &str) {
    out.clear();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (text, skip) = if tail.starts_with("{ca}") {
            (ca, 4)
        } else if tail.starts_with("{node}") {
            (node, 6)
        } else {
            ("{", 1)
        };
        out.push_str(text);
        rest = &tail[skip..];
    }
    out.push_str(rest);
}

fn same_path(
    node: &Node,
    cas: &[CaSpec],
    first: (usize, &str),
    second: (usize, &str),
    path: &str,
) -> Problem {
    let (name, ca1, ca2) = (&node.name, &cas[first.0].name, &cas[second.0].name);
    let (message, hint) = if first.0 == second.0 {
        (
            format!(
                "node {name} keeps its {} and its {} for CA {ca1} at the same path {path}",
                first.1, second.1
            ),
            "give each file its own path".to_owned(),
        )
    } else {
        (
            format!("node {name} keeps the {} of CA {ca1} and the {} of CA {ca2} at the same path {path}", first.1, second.1),
            format!("the node takes part in links of several CAs: put {{ca}} in its {} path, e.g. \"/etc/tls/{{ca}}/...\"", second.1),
        )
    };
    Problem {
        message,
        ..key_at(name, &[second.1])
    }
    .or_at(ValuePath::keys(&["nodes", name]))
    .hint(hint)
}

#[cfg(test)]
#[path = "nodes_tests.rs"]
mod tests;
