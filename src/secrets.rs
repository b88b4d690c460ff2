//! Private keys where they do not belong: inside a certificate, bundle or proof-key file
//! certroll manages (they are public, usually 0644), and in readable copies of managed
//! files beside them (`key.pem.bak`, `key.pem~`, `.key.pem.certroll-…`), the usual way a
//! live key leaks to every user of a host.
//!
//! Copies are found by listing the directories of the managed files; only regular files
//! that other users may read and that are small enough to be a PEM file are opened, so a
//! FIFO, a device or a huge file beside a managed file is never read.

use crate::inventory::NodePaths;
use crate::transport::Transport;

/// Files larger than this are not scanned for keys (no PEM key is anywhere near it).
pub const MAX_SCANNED: u64 = 1 << 20;
/// At most this many candidate copies are opened per directory.
const MAX_OPENED: usize = 64;

pub use crate::transport::holds_private_key;

/// A copy of a managed file that holds a private key and that other users may read:
/// (path, mode).
pub type LooseCopy = (String, u32);

/// Looks beside each managed file of `paths` for readable copies holding a private key.
/// `all_managed` are every file the node holds for any CA (never reported as copies). A
/// directory that cannot be listed is skipped (the managed files' own findings say more).
pub fn loose_copies(
    t: &dyn Transport,
    paths: &NodePaths,
    all_managed: &[String],
) -> Vec<LooseCopy> {
    let managed: Vec<&str> = [&paths.trust_bundle, &paths.cert, &paths.key]
        .into_iter()
        .map(String::as_str)
        .chain(paths.proof_cert.as_deref())
        .collect();
    let mut dirs: Vec<(&str, Vec<&str>)> = Vec::new();
    for p in &managed {
        let (dir, name) = split(p);
        match dirs.iter_mut().find(|(d, _)| *d == dir) {
            Some((_, names)) => names.push(name),
            None => dirs.push((dir, vec![name])),
        }
    }
    let mut out = Vec::new();
    for (dir, names) in dirs {
        let Ok(Some(entries)) = t.list_dir(dir) else {
            continue;
        };
        let candidates = entries
            .iter()
            .filter(|e| e.regular && e.mode & 0o077 != 0 && e.size <= MAX_SCANNED)
            .filter(|e| !names.contains(&e.name.as_str()) && is_copy(&e.name, &names))
            .take(MAX_OPENED);
        for e in candidates {
            let path = join(dir, &e.name);
            if all_managed.contains(&path) {
                continue;
            }
            if let Ok(Some(data)) = t.read_file(&path) {
                if holds_private_key(&data) {
                    out.push((path, e.mode));
                }
            }
        }
    }
    out
}

/// Whether a file name looks like a copy of one of the managed `names` or of a key: the
/// name with something after it (`key.pem.bak`, `key.pem~`), a hidden variant
/// (`.key.pem.tmp`), any editor or backup suffix, or "key" in the name (`old-key.pem`).
fn is_copy(file: &str, names: &[&str]) -> bool {
    let unhidden = file.strip_prefix('.').unwrap_or(file);
    names.iter().any(|n| unhidden.starts_with(n))
        || file.to_ascii_lowercase().contains("key")
        || [".bak", "~", ".old", ".orig", ".save", ".swp"]
            .iter()
            .any(|s| file.ends_with(s))
}

/// (directory, file name) of a path; `.` for a bare name.
fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => (".", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    match dir {
        "." => name.to_string(),
        "/" => format!("/{name}"),
        d => format!("{d}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_keys_of_every_pem_kind_are_recognised() {
        for label in [
            "PRIVATE KEY",
            "EC PRIVATE KEY",
            "RSA PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
        ] {
            let pem = format!("-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n");
            assert!(holds_private_key(pem.as_bytes()), "{label}");
        }
        assert!(!holds_private_key(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        ));
    }

    #[test]
    fn copies_are_named_after_a_managed_file_or_carry_a_backup_suffix() {
        let names = ["key.pem", "cert.pem"];
        for copy in [
            "key.pem.bak",
            "key.pem.r1.bak",
            "key.pem~",
            ".key.pem.certroll-0a1b",
            "cert.pem.orig",
            "old.bak",
            "server-key-copy.pem",
        ] {
            assert!(is_copy(copy, &names), "{copy}");
        }
        for other in ["ca.pem", "README", "server.crt"] {
            assert!(!is_copy(other, &names), "{other}");
        }
        assert_eq!(split("/etc/tls/key.pem"), ("/etc/tls", "key.pem"));
        assert_eq!(split("key.pem"), (".", "key.pem"));
        assert_eq!(join("/", "k"), "/k");
    }
}
