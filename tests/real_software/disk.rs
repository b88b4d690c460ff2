//! What the rotations left on the nodes' disks: owners and modes of every file certroll
//! manages, and private keys other than the ones in use.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Owner, group and permission bits of a file (through symlinks: what the software opens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl std::fmt::Display for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} {:04o}", self.uid, self.gid, self.mode)
    }
}

/// One managed file: `node`, what it is, its host path.
pub type Managed = (String, &'static str, PathBuf);

pub fn meta(path: &Path) -> Meta {
    let m = fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    Meta {
        uid: m.uid(),
        gid: m.gid(),
        mode: m.mode() & 0o7777,
    }
}

pub fn snapshot(files: &[Managed]) -> BTreeMap<String, Meta> {
    files
        .iter()
        .map(|(node, what, path)| (format!("{node} {what} {}", path.display()), meta(path)))
        .collect()
}

/// The differences between two snapshots, one line each.
pub fn changed(before: &BTreeMap<String, Meta>, after: &BTreeMap<String, Meta>) -> Vec<String> {
    before
        .iter()
        .filter_map(|(k, b)| match after.get(k) {
            Some(a) if a == b => None,
            Some(a) => Some(format!("{k}: was {b}, now {a}")),
            None => Some(format!("{k}: gone")),
        })
        .collect()
}

/// Regular files under `dir` (symlinks are not followed; `skip` subtrees are left out)
/// that hold a PEM private key other than one of `current`.
pub fn other_private_keys(dir: &Path, current: &[Vec<u8>], skip: &[PathBuf]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), 0u32)];
    while let Some((d, depth)) = todo.pop() {
        if depth > 16 || skip.iter().any(|s| s == &d) {
            continue;
        }
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(m) = fs::symlink_metadata(&path) else {
                continue;
            };
            if m.is_dir() {
                todo.push((path, depth + 1));
            } else if m.is_file() && m.len() < 256 * 1024 {
                let data = fs::read(&path).unwrap_or_default();
                let is_key = data.windows(11).any(|w| w == b"PRIVATE KEY");
                if is_key && !current.iter().any(|c| c == &data) {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found
}
