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
    pem_certs(bundle_pem)
        .into_iter()
        .map(|der| {
            let name = format!("certroll-{ca}-{}.crt", super::anchor_alias(&der));
            let body = pem::encode(&pem::Pem::new("CERTIFICATE", der));
            (name, body.into_bytes())
        })
        .collect()
}

/// Whether a file name in an anchors directory is one certroll installed for CA `ca`.
pub fn is_ours(ca: &str, file_name: &str) -> bool {
    file_name
        .strip_prefix(&format!("certroll-{ca}-anchor-"))
        .is_some_and(|rest| rest.len() == 20 && rest.ends_with(".crt"))
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
}
