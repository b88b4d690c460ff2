//! Validation rules applied after parsing (see docs/inventory.md).
//!
//! [`build`] turns a [`RawInventory`] into an [`Inventory`] in three passes, CAs, nodes,
//! links, each using indices built once (a name → id map), never per-link lookups by
//! scanning. A failed rule is a [`Problem`]: a message, a hint and the path(s) of the
//! offending value; `parse` turns the path into a line and column only then.

use std::path::{Path, PathBuf};

use super::fxhash::{map_with_capacity, FxHashMap};
use super::locate::ValuePath;
use super::raw::RawInventory;
use super::{cas, links, nodes, pools, shared_files, Inventory, NodeId};

/// A rule that failed, with the path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Candidate paths of the offending value; the first that exists in the text wins.
    pub at: Vec<ValuePath>,
    pub message: String,
    pub hint: Option<String>,
    /// A second position the message refers to (e.g. the first of two duplicates).
    pub also: Option<ValuePath>,
}

impl Problem {
    pub fn new(at: ValuePath, message: impl Into<String>) -> Self {
        Problem {
            at: vec![at],
            message: message.into(),
            hint: None,
            also: None,
        }
    }

    /// Adds a fallback path, used when the first does not exist (e.g. inherited from `[defaults]`).
    pub fn or_at(mut self, at: ValuePath) -> Self {
        self.at.push(at);
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn also(mut self, at: ValuePath) -> Self {
        self.also = Some(at);
        self
    }
}

/// What the passes share: where the inventory lives and how to expand `~`.
pub struct Context {
    /// Absolute directory of the inventory file.
    pub dir: PathBuf,
    /// `$HOME`, for `~` in `identity_file` and `known_hosts`.
    pub home: Option<String>,
}

impl Context {
    pub fn new(source: &Path) -> Self {
        let dir = source.parent().unwrap_or(Path::new(""));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        // `absolute` only fails when the working directory is unknown; a relative
        // directory is then the best that can be stored.
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        Context {
            dir,
            home: std::env::var("HOME").ok().filter(|h| !h.is_empty()),
        }
    }

    /// `path` resolved against the inventory's directory when relative.
    pub fn resolve(&self, path: &str) -> String {
        if Path::new(path).is_absolute() {
            path.to_owned()
        } else {
            self.dir.join(path).to_string_lossy().into_owned()
        }
    }

    /// `~` or `~/…` expanded to `$HOME` (left as written when `$HOME` is unset).
    pub fn expand_home(&self, path: &str) -> PathBuf {
        match (&self.home, path.strip_prefix('~')) {
            (Some(home), Some("")) => PathBuf::from(home),
            (Some(home), Some(rest)) if rest.starts_with('/') => {
                PathBuf::from(format!("{home}{rest}"))
            }
            _ => PathBuf::from(path),
        }
    }
}

/// Applies every rule and builds the inventory.
pub fn build(raw: RawInventory, source: &Path) -> Result<Inventory, Problem> {
    let ctx = Context::new(source);
    let cas = cas::build(raw.ca)?;
    let verify = super::verify_defaults::build(&raw.verify, &cas)?;
    let mut raw_nodes = raw.nodes.0;
    raw_nodes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, _) in &raw_nodes {
        check_name(name, ValuePath::keys(&["nodes", name]), "node")?;
    }
    // Most fleets name no pool: then no per-node table is built at all.
    let pool_keys: Vec<pools::NodeKeys> =
        if pools::any_keys(&raw.defaults) || raw_nodes.iter().any(|(_, n)| pools::any_keys(n)) {
            raw_nodes
                .iter()
                .map(|(_, n)| pools::NodeKeys::of(n, &raw.defaults))
                .collect()
        } else {
            Vec::new()
        };
    let (mut nodes, vias) = nodes::build(raw_nodes, &raw.defaults, &ctx, cas.len())?;
    let pools = pools::build(raw.pools, pool_keys, &nodes)?;
    // The map's keys point into one contiguous copy of the names: resolving 600,000
    // link ends then reads a compact block instead of 100,000 scattered strings.
    let arena: String = nodes.iter().map(|n| n.name.as_str()).collect();
    let mut index: FxHashMap<&str, NodeId> = map_with_capacity(nodes.len());
    let mut at = 0;
    for (i, n) in nodes.iter().enumerate() {
        index.insert(&arena[at..at + n.name.len()], i);
        at += n.name.len();
    }
    let via_ids = nodes::resolve_vias(&nodes, &vias, &index)?;
    let links = links::expand(&raw.links, &index, &nodes, &cas)?;
    drop(index);
    for (node, via) in nodes.iter_mut().zip(via_ids) {
        node.via = via;
    }
    nodes::check_files(&nodes, &links, &cas)?;
    shared_files::check(&nodes, &links, &cas)?;
    super::tls_target::check_one_ca(&nodes, &links, &cas)?;
    let state_dir = raw.certroll.state_dir.clone();
    let state = super::state_location::build(&raw.certroll)?;
    free_in_background(raw.links);
    let state_dir = state_dir.as_deref().unwrap_or(".certroll");
    Ok(Inventory {
        source: source.to_path_buf(),
        state_dir: PathBuf::from(ctx.resolve(state_dir)),
        state,
        cas,
        nodes,
        links,
        verify,
        pools,
    })
}

/// Frees a large vector on another thread: releasing hundreds of thousands of small
/// allocations one by one would otherwise hold up the caller (a tenth of a `plan` on a
/// 300,000-link fleet). Small vectors are freed here.
fn free_in_background<T: Send + 'static>(v: Vec<T>) {
    const LARGE: usize = 10_000;
    if v.len() >= LARGE {
        std::thread::spawn(move || drop(v));
    }
}

/// Node and CA names are used in paths and messages: `[A-Za-z0-9._-]+`.
pub fn check_name(name: &str, at: ValuePath, what: &str) -> Result<(), Problem> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !name.is_empty() && name.chars().all(ok) {
        return Ok(());
    }
    Err(Problem::new(at, format!("invalid {what} name {name:?}"))
        .hint("names may use only letters, digits, '.', '_' and '-'"))
}

/// "did you mean …?" for an unknown name, or the list of known names when none is close.
pub fn suggest<'a>(unknown: &str, known: impl Iterator<Item = &'a str>, what: &str) -> String {
    let known: Vec<&str> = known.collect();
    match closest(unknown, known.iter().copied()) {
        Some(name) => format!("did you mean {name:?}?"),
        None if known.is_empty() => format!("no {what} is defined"),
        None => format!(
            "known {what}s include: {}",
            known.iter().take(5).copied().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The known name closest to `unknown` (Levenshtein distance), if it is close enough to be
/// a typo of it: at most a third of its length, and at least 2, edits away.
pub fn closest<'a>(unknown: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for name in known {
        let d = edit_distance(unknown, name);
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, name));
        }
    }
    let close = (unknown.chars().count() / 3).max(2);
    best.filter(|&(d, _)| d <= close).map(|(_, name)| name)
}

/// Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("app1", "app1"), 0);
        assert_eq!(edit_distance("app1", "app2"), 1);
        assert_eq!(edit_distance("ap1", "app1"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggest_picks_the_closest_name() {
        let known = ["app1", "app2", "db1"];
        assert_eq!(
            suggest("apq1", known.into_iter(), "node"),
            "did you mean \"app1\"?"
        );
        let far = suggest("zzzzzz", known.into_iter(), "node");
        assert_eq!(far, "known nodes include: app1, app2, db1");
        assert_eq!(suggest("x", std::iter::empty(), "CA"), "no CA is defined");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("app-1.eu_west", ValuePath::root(), "node").is_ok());
        let p = check_name("app 1", ValuePath::root(), "node").unwrap_err();
        assert_eq!(p.message, "invalid node name \"app 1\"");
        assert!(check_name("", ValuePath::root(), "node").is_err());
        assert!(check_name("a/b", ValuePath::root(), "CA").is_err());
    }

    #[test]
    fn home_is_expanded_only_at_the_start() {
        let ctx = Context {
            dir: PathBuf::from("/inv"),
            home: Some("/home/op".into()),
        };
        assert_eq!(
            ctx.expand_home("~/.ssh/id"),
            PathBuf::from("/home/op/.ssh/id")
        );
        assert_eq!(ctx.expand_home("~"), PathBuf::from("/home/op"));
        assert_eq!(ctx.expand_home("~bob/x"), PathBuf::from("~bob/x"));
        assert_eq!(ctx.expand_home("/a/~/b"), PathBuf::from("/a/~/b"));
        assert_eq!(ctx.resolve("tls/ca.pem"), "/inv/tls/ca.pem");
        assert_eq!(ctx.resolve("/etc/ca.pem"), "/etc/ca.pem");
    }

    #[test]
    fn relative_sources_get_an_absolute_directory() {
        let ctx = Context::new(Path::new("certroll.toml"));
        assert!(ctx.dir.is_absolute());
    }
}
