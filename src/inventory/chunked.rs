//! Parsing a large inventory piece by piece, so that the TOML tree never holds the whole fleet.
//!
//! The `toml` crate builds three whole-document structures before serde sees a value: the
//! token list, the event list and a spanned tree. On a 30 MB fleet file (100,000 nodes,
//! 300,000 links) they peak at over 1 GB. A fleet file is mostly a long run of
//! `[nodes.NAME]` tables and a long run of `[[links]]` tables, and those can be parsed in
//! slices of about [`CHUNK_BYTES`] and concatenated: the peak is then one slice's tree.
//!
//! Splitting must never change what the file means, so it is done only where the result is
//! provably the one a whole-file parse gives, and otherwise the caller parses the whole file
//! (also to report any error at its exact position):
//!
//! - a slice starts only at a line that is exactly `[nodes.NAME]` (a bare key) or exactly
//!   `[[links]]`, and only after an earlier header of the same kind, so that the first slice
//!   already holds a `[nodes.X]` / `[[links]]` header of each kind it splits on: whatever
//!   makes `nodes` or `links` something else (`links = []`, `[[nodes]]`, `[links]`) fails
//!   there;
//! - after the first split, every header is of those two kinds, so later slices can define
//!   nothing but nodes and links;
//! - in the first slice, no line may start with `nodes`, `links` or a quoted key, so that no
//!   root-level key defines `nodes` or `links` before their headers;
//! - every slice must parse: a split that falls inside a multi-line string, array or inline
//!   table leaves the slice before it unterminated, so a successful parse proves that each
//!   split is a real header;
//! - a node name may appear in only one slice (a whole-file parse refuses a table defined
//!   twice, but `[nodes.a.ssh]` then `[nodes.a]` is legal and is left to it).

use super::fxhash::{map_with_capacity, FxHashMap};
use super::raw::RawInventory;

/// Approximate size of one slice. Smaller slices lower the peak memory; each slice costs a
/// parser start-up, which is negligible at this size.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Parses `text` in slices, or returns `None` when the file must be parsed whole (small,
/// not splittable safely, or any slice failed).
pub fn parse(text: &str) -> Option<RawInventory> {
    parse_in(text, CHUNK_BYTES)
}

/// [`parse`] with slices of about `chunk` bytes.
fn parse_in(text: &str, chunk: usize) -> Option<RawInventory> {
    let splits = split_points(text, chunk)?;
    let mut bounds = Vec::with_capacity(splits.len() + 2);
    bounds.push(0);
    bounds.extend(splits);
    bounds.push(text.len());
    let ranges: Vec<(usize, usize)> = bounds.windows(2).map(|w| (w[0], w[1])).collect();
    let mut merged: Option<RawInventory> = None;
    for part in parse_all(text, &ranges) {
        let part = part?;
        match merged.as_mut() {
            None => merged = Some(part),
            Some(all) => {
                all.nodes.0.extend(part.nodes.0);
                all.links.extend(part.links);
            }
        }
    }
    let merged = merged?;
    let mut names: FxHashMap<&str, ()> = map_with_capacity(merged.nodes.0.len());
    if !merged
        .nodes
        .0
        .iter()
        .all(|(n, _)| names.insert(n, ()).is_none())
    {
        return None;
    }
    drop(names);
    Some(merged)
}

/// Parses every slice, on as many threads as there are cores (slices are independent),
/// returning the results in slice order; `None` for a slice that does not parse.
fn parse_all(text: &str, ranges: &[(usize, usize)]) -> Vec<Option<RawInventory>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(ranges.len())
        .max(1);
    let parse = |&(a, b): &(usize, usize)| toml::from_str::<RawInventory>(&text[a..b]).ok();
    if threads == 1 {
        return ranges.iter().map(parse).collect();
    }
    // Thread t parses slices t, t + threads, ...: slices are of similar size.
    let per_thread: Vec<Vec<Option<RawInventory>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    ranges
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(parse)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A panic in the parser is a bug: surface it rather than guess.
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut iters: Vec<_> = per_thread.into_iter().map(Vec::into_iter).collect();
    (0..ranges.len())
        .map(|i| iters[i % threads].next().flatten())
        .collect()
}

/// What a line that opens with `[` declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    /// Exactly `[nodes.NAME]` with a bare NAME.
    Node,
    /// Exactly `[[links]]`.
    Link,
    /// Anything else.
    Other,
}

fn classify(line: &str) -> Header {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line == "[[links]]" {
        return Header::Link;
    }
    let bare = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    match line
        .strip_prefix("[nodes.")
        .and_then(|rest| rest.strip_suffix(']'))
    {
        Some(name) if bare(name) => Header::Node,
        _ => Header::Other,
    }
}

/// Whether a line of the first slice could define `nodes` or `links` at the root.
fn suspicious(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('"') || t.starts_with('\'') || t.starts_with("nodes") || t.starts_with("links")
}

/// Byte offsets where slices start (never 0), or `None` when the file must be parsed whole.
fn split_points(text: &str, chunk: usize) -> Option<Vec<usize>> {
    if text.len() < 2 * chunk {
        return None;
    }
    let (mut seen_node, mut seen_link) = (false, false);
    let mut splits: Vec<usize> = Vec::new();
    let mut last = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let line = line.strip_suffix('\n').unwrap_or(line);
        let first = line.trim_start();
        if !first.starts_with('[') {
            if splits.is_empty() && suspicious(line) {
                return None;
            }
            continue;
        }
        let kind = if first.len() == line.len() {
            classify(line)
        } else {
            Header::Other
        };
        let splittable = match kind {
            Header::Node => std::mem::replace(&mut seen_node, true),
            Header::Link => std::mem::replace(&mut seen_link, true),
            Header::Other if splits.is_empty() => false,
            Header::Other => return None,
        };
        if splittable && start - last >= chunk && text.len() - start >= chunk / 2 {
            splits.push(start);
            last = start;
        }
    }
    (!splits.is_empty()).then_some(splits)
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
