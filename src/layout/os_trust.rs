//! A node's `os_trust` as a step hands it to the node-side script: the CA's anchors for the
//! operating system's trust store as words and data of the apply script, and the same
//! installation alone for a resumed step whose files were in place
//! (docs/layout.md#the-operating-systems-trust-store).

use super::{command, failure, script_io, store_words, LayoutError, END_MARKER, WRITE_TIMEOUT};
use crate::inventory::Node;
use crate::transport::{ExecOutput, Stage, Transport};

/// A CA's anchors for the operating system's trust store of a node (`os_trust`): exactly
/// the files `certroll-<ca>-anchor-<sha256 prefix>.crt` of `dir` this CA should have.
#[derive(Debug, Clone, Copy)]
pub struct OsTrustInstall<'a> {
    pub dir: &'a str,
    pub update: &'a str,
    /// The anchors, DER.
    pub anchors: &'a [Vec<u8>],
}

impl<'a> OsTrustInstall<'a> {
    /// The node's `os_trust` settings with `anchors`, if it has them.
    pub fn of(node: &'a Node, anchors: &'a [Vec<u8>]) -> Option<Self> {
        node.stores.os_trust.as_ref().map(|o| OsTrustInstall {
            dir: &o.dir,
            update: &o.update,
            anchors,
        })
    }

    /// The script's words OSDIR OSUPDATE OSFILES, and the files' data for its input.
    pub(super) fn words(install: Option<&Self>, ca: &str) -> ([String; 3], Vec<u8>) {
        let Some(i) = install else {
            return (["-".into(), String::new(), String::new()], Vec::new());
        };
        let mut names = Vec::new();
        let mut data = Vec::new();
        for (name, body) in crate::stores::os_trust::anchor_files_der(ca, i.anchors) {
            names.push(format!("{name}:{}", body.len()));
            data.extend_from_slice(&body);
        }
        (
            [i.dir.to_string(), i.update.to_string(), names.join(" ")],
            data,
        )
    }
}

/// Installs CA `ca`'s anchors in the operating system's trust store of `node` alone (a
/// resumed step whose files were in place already) and runs the update command when the
/// anchors directory changed, or an earlier script changed it and was stopped before its
/// update exited 0. Returns the update command's result when it ran.
pub fn install_os_trust(
    t: &dyn Transport,
    node: &Node,
    ca: &str,
    install: &OsTrustInstall<'_>,
) -> Result<Option<ExecOutput>, LayoutError> {
    let words = store_words(node, ca);
    let store = words[0].clone();
    let (os_words, mut input) = OsTrustInstall::words(Some(install), ca);
    let mut args = vec!["ostrust".to_string()];
    args.extend(words);
    args.extend(os_words);
    args.push(END_MARKER.to_string());
    // The end of the data, then the step's nonce: the script's markers carry it.
    let nonce = script_io::nonce();
    input.extend_from_slice(format!("{END_MARKER} {nonce}\n").as_bytes());
    let in_place = script_io::files_in_place(&nonce);
    let stages = [Stage {
        marker: &in_place,
        limit: node.confirm_timeout,
    }];
    let out = t.exec_staged(
        &command(&args),
        &input,
        WRITE_TIMEOUT + node.confirm_timeout,
        &stages,
    )?;
    let r = script_io::parse(&out.stdout, &out.stderr, false, &nonce);
    if !r.in_place {
        let action = format!(
            "install the anchors of CA {ca} in {} (store {store})",
            install.dir
        );
        return Err(failure(node, action, &out));
    }
    Ok(r.os_update)
}
