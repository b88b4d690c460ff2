//! Finding where a value sits in the inventory text, only when something is wrong with it.
//!
//! The happy path deserializes plain structures without spans (fast on 100,000-node
//! fleets). When a rule fails, the text is parsed once more into TOML's spanned tree and
//! the offending value is looked up by its path (`nodes.app1.via`, `links[3].client[1]`).
//! A path that does not exist in the text (a missing key) resolves to its deepest
//! existing ancestor, which is where the key should be written.

use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a path into the TOML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path to a value, e.g. `links[3].client`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValuePath(pub Vec<Seg>);

impl ValuePath {
    /// The document root.
    pub fn root() -> Self {
        ValuePath(Vec::new())
    }

    /// A path of plain keys, e.g. `ValuePath::keys(&["nodes", "app1", "via"])`.
    pub fn keys(keys: &[&str]) -> Self {
        ValuePath(keys.iter().map(|k| Seg::Key((*k).to_owned())).collect())
    }

    /// This path extended by a key.
    pub fn key(mut self, key: &str) -> Self {
        self.0.push(Seg::Key(key.to_owned()));
        self
    }

    /// This path extended by an array index.
    pub fn index(mut self, i: usize) -> Self {
        self.0.push(Seg::Index(i));
        self
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// How well a path was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub span: Range<usize>,
    /// The whole path exists (otherwise `span` is its deepest existing ancestor).
    pub exact: bool,
}

/// A spanned view of the text, parsed on demand.
pub struct Locator<'t> {
    root: Option<Spanned<DeTable<'t>>>,
}

impl<'t> Locator<'t> {
    /// Parses `text`; a text that does not parse locates nothing (it never reaches validation).
    pub fn new(text: &'t str) -> Self {
        Locator {
            root: DeTable::parse(text).ok(),
        }
    }

    /// Finds `path`, falling back to its deepest existing ancestor.
    pub fn find(&self, path: &ValuePath) -> Option<Found> {
        let root = self.root.as_ref()?;
        let mut span = 0..0;
        let mut table: Option<&DeTable<'t>> = Some(root.get_ref());
        let mut value: Option<&DeValue<'t>> = None;
        for seg in &path.0 {
            let next = match (seg, table, value) {
                (Seg::Key(k), Some(t), _) => {
                    t.get_key_value(k.as_str()).map(|(key, v)| (key.span(), v))
                }
                (Seg::Index(i), None, Some(DeValue::Array(a))) => a.get(*i).map(|v| (v.span(), v)),
                _ => None,
            };
            let Some((key_span, v)) = next else {
                return Some(Found { span, exact: false });
            };
            // A key's value is preferred, but a table opened by a header spans the whole
            // section; the key in the header is where a reader looks.
            span = match v.get_ref() {
                DeValue::Table(_) => key_span,
                _ => v.span(),
            };
            table = match v.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
            value = Some(v.get_ref());
        }
        Some(Found { span, exact: true })
    }

    /// The first of `paths` that exists exactly, else the deepest ancestor of the first one.
    pub fn find_any(&self, paths: &[ValuePath]) -> Option<Range<usize>> {
        let found: Vec<Found> = paths.iter().filter_map(|p| self.find(p)).collect();
        found
            .iter()
            .find(|f| f.exact)
            .or(found.first())
            .map(|f| f.span.clone())
    }
}

/// 1-based line and column (in characters) of byte offset `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[nodes.app1]\nvia = \"lb9\"\nssh = { port = 22 }\n\n[[links]]\nclient = \"a\"\n\n[[links]]\nclient = [\"a\", \"b\"]\n";

    fn at(path: &ValuePath) -> (usize, usize, bool) {
        let found = Locator::new(TEXT).find(path).unwrap();
        let (l, c) = line_col(TEXT, found.span.start);
        (l, c, found.exact)
    }

    #[test]
    fn finds_values_by_key() {
        assert_eq!(
            at(&ValuePath::keys(&["nodes", "app1", "via"])),
            (2, 7, true)
        );
        assert_eq!(
            at(&ValuePath::keys(&["nodes", "app1", "ssh", "port"])),
            (3, 16, true)
        );
    }

    #[test]
    fn finds_array_elements() {
        let p = ValuePath::keys(&["links"]).index(1).key("client").index(1);
        assert_eq!(at(&p), (9, 16, true));
        let p = ValuePath::keys(&["links"]).index(0).key("client");
        assert_eq!(at(&p), (6, 10, true));
    }

    #[test]
    fn missing_keys_point_at_the_deepest_ancestor() {
        assert_eq!(
            at(&ValuePath::keys(&["nodes", "app1", "ssh", "host"])),
            (3, 1, false)
        );
        assert_eq!(
            at(&ValuePath::keys(&["nodes", "app1", "dns_names"])),
            (1, 8, false)
        );
    }

    #[test]
    fn find_any_prefers_an_exact_match() {
        let loc = Locator::new(TEXT);
        let paths = [
            ValuePath::keys(&["nodes", "app1", "cert"]),
            ValuePath::keys(&["nodes", "app1", "via"]),
        ];
        let span = loc.find_any(&paths).unwrap();
        assert_eq!(line_col(TEXT, span.start), (2, 7));
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("x", 0), (1, 1));
        assert_eq!(line_col("x", 99), (1, 2));
    }

    #[test]
    fn paths_display_like_toml() {
        let p = ValuePath::keys(&["links"]).index(2).key("server");
        assert_eq!(p.to_string(), "links[2].server");
    }
}
