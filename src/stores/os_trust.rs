//! The operating system's trust store (`os_trust`): a CA's anchors as one PEM file each in
//! the distribution's anchors directory, then its update command, so that curl without
//! `--cacert`, Go, Python and package managers trust them.
//!
//! Debian, Ubuntu and Alpine read `/usr/local/share/ca-certificates/*.crt` through
//! `update-ca-certificates`; the RHEL family reads `/etc/pki/ca-trust/source/anchors/`
//! through `update-ca-trust extract`. Only anchors are installed, never a node's leaf.

use super::pem_certs;

/// `os_trust`: which distribution family's trust store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OsTrust {
    Debian,
    Rhel,
}

impl OsTrust {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "debian" => Some(OsTrust::Debian),
            "rhel" => Some(OsTrust::Rhel),
            _ => None,
        }
    }

    /// The directory the family's update command reads local anchors from.
    pub fn anchors_dir(self) -> &'static str {
        match self {
            OsTrust::Debian => "/usr/local/share/ca-certificates",
            OsTrust::Rhel => "/etc/pki/ca-trust/source/anchors",
        }
    }

    /// The command that rebuilds the system bundle from the anchors directory.
    pub fn update_command(self) -> &'static str {
        match self {
            OsTrust::Debian => "update-ca-certificates",
            OsTrust::Rhel => "update-ca-trust extract",
        }
    }
}

/// The files of CA `ca`'s anchors in an anchors directory: `certroll-<ca>-<alias>.crt`
/// (the `.crt` suffix `update-ca-certificates` requires), one PEM certificate each.
pub fn anchor_files(ca: &str, bundle_pem: &[u8]) -> Vec<(String, Vec<u8>)> {
    anchor_files_der(ca, &pem_certs(bundle_pem))
}

/// [`anchor_files`] of DER certificates (one file per distinct anchor, in order).
pub fn anchor_files_der(ca: &str, anchors: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for der in anchors {
        let name = anchor_file_name(ca, der);
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let body = pem::encode(&pem::Pem::new("CERTIFICATE", der.clone()));
        out.push((name, body.into_bytes()));
    }
    out
}

/// The file name of one anchor of CA `ca`: `certroll-<ca>-anchor-<16 hex of its SHA-256>.crt`.
pub fn anchor_file_name(ca: &str, der: &[u8]) -> String {
    format!("certroll-{ca}-{}.crt", super::anchor_alias(der))
}

/// Whether a file name in an anchors directory is one certroll installed for CA `ca`.
pub fn is_ours(ca: &str, file_name: &str) -> bool {
    file_name
        .strip_prefix(&format!("certroll-{ca}-anchor-"))
        .is_some_and(|rest| rest.len() == 20 && rest.ends_with(".crt"))
}

/// One certroll file of an anchors directory: its name, mode and bytes (`None`: not a
/// regular file, or unreadable).
pub type FoundAnchor = (String, u32, Option<Vec<u8>>);

/// The certroll files of one CA in a node's anchors directory, as `verify` found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsTrustFiles {
    pub ca: String,
    pub dir: String,
    /// The files; `Err`: why the directory could not be listed; `Ok(None)`: no directory.
    pub files: Result<Option<Vec<FoundAnchor>>, String>,
}

/// Reads CA `ca`'s files in `node`'s anchors directory, if the node has `os_trust`.
pub fn read_os_trust(
    t: &dyn crate::transport::Transport,
    node: &crate::inventory::Node,
    ca: &str,
) -> Option<OsTrustFiles> {
    let dir = node.stores.os_trust.as_ref()?.dir.clone();
    let files = match t.list_dir(&dir) {
        Err(e) => Err(e.to_string()),
        Ok(None) => Ok(None),
        Ok(Some(entries)) => Ok(Some(
            entries
                .into_iter()
                .filter(|e| is_ours(ca, &e.name))
                .map(|e| {
                    let path = format!("{}/{}", dir.trim_end_matches('/'), e.name);
                    let body = e
                        .regular
                        .then(|| t.read_file(&path).ok().flatten())
                        .flatten();
                    (e.name, e.mode, body)
                })
                .collect(),
        )),
    };
    Some(OsTrustFiles {
        ca: ca.to_string(),
        dir,
        files,
    })
}

/// What differs between the files found and `want` (this CA's anchors in the bundle,
/// DER): `None` when the directory holds exactly one 0644 file per anchor, named for it.
pub fn differences(found: &OsTrustFiles, want: &[Vec<u8>]) -> Option<String> {
    let ca = found.ca.as_str();
    let files = match &found.files {
        Err(e) => return Some(format!("could not be read: {e}")),
        Ok(None) if want.is_empty() => return None,
        Ok(None) => {
            return Some(format!(
                "does not exist; expected {} anchor file(s)",
                want.len()
            ))
        }
        Ok(Some(f)) => f,
    };
    let expected = anchor_files_der(ca, want);
    let mut problems = Vec::new();
    for (name, body) in &expected {
        match files.iter().find(|(n, _, _)| n == name) {
            None => problems.push(format!("lacks {name}")),
            Some((_, _, b)) if b.as_deref().map(pem_certs) != Some(pem_certs(body)) => {
                problems.push(format!("holds another certificate in {name}"))
            }
            Some((_, mode, _)) if mode & 0o7777 != 0o644 => {
                problems.push(format!("has {name} with mode {:o}, not 644", mode & 0o7777))
            }
            Some(_) => {}
        }
    }
    for (name, _, _) in files {
        if !expected.iter().any(|(n, _)| n == name) {
            problems.push(format!(
                "still holds {name}, an anchor the trust bundle no longer has"
            ));
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "does not hold exactly the {} anchor(s) of CA {ca} in the trust bundle: {}",
            expected.len(),
            problems.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::fixtures::leaf_and_anchors;

    #[test]
    fn one_file_per_anchor_named_for_the_ca_and_recognised_as_ours() {
        let (_, trust) = leaf_and_anchors();
        let bundle: String = trust
            .anchors
            .iter()
            .map(|a| pem::encode(&pem::Pem::new("CERTIFICATE", a.der.clone())))
            .collect();
        let files = anchor_files("internal", bundle.as_bytes());
        assert_eq!(files.len(), trust.anchors.len());
        for (name, body) in &files {
            assert!(is_ours("internal", name), "{name}");
            assert!(!is_ours("other", name));
            assert_eq!(pem_certs(body).len(), 1);
        }
        assert_eq!(OsTrust::parse("debian"), Some(OsTrust::Debian));
        assert_eq!(OsTrust::parse("alpine"), None);
    }

    #[test]
    fn differences_name_a_missing_a_stale_and_a_wrong_anchor_file() {
        let (_, trust) = leaf_and_anchors();
        let want: Vec<Vec<u8>> = trust.anchors.iter().map(|a| a.der.clone()).collect();
        let files = anchor_files_der("internal", &want);
        let found = |f: Vec<FoundAnchor>| OsTrustFiles {
            ca: "internal".into(),
            dir: "/usr/local/share/ca-certificates".into(),
            files: Ok(Some(f)),
        };
        let exact: Vec<FoundAnchor> = files
            .iter()
            .map(|(n, b)| (n.clone(), 0o644, Some(b.clone())))
            .collect();
        assert_eq!(differences(&found(exact.clone()), &want), None);
        let d = differences(&found(Vec::new()), &want).unwrap();
        assert!(d.contains(&format!("lacks {}", files[0].0)), "{d}");
        let mut stale = exact.clone();
        stale.push((
            "certroll-internal-anchor-0123456789abcdef.crt".into(),
            0o644,
            None,
        ));
        let d = differences(&found(stale), &want).unwrap();
        assert!(
            d.contains("still holds certroll-internal-anchor-0123456789abcdef.crt"),
            "{d}"
        );
        let mut loose = exact;
        loose[0].1 = 0o666;
        loose[0].2 = Some(b"junk".to_vec());
        let d = differences(&found(loose), &want).unwrap();
        assert!(d.contains("holds another certificate"), "{d}");
        let unread = OsTrustFiles {
            files: Err("permission denied".into()),
            ..found(Vec::new())
        };
        assert!(differences(&unread, &want)
            .unwrap()
            .contains("could not be read"));
    }
}
