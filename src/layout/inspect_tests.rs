//! `inspect` on real files, run by the local transport in a temporary directory with the
//! system's openssl: keystores made by `openssl pkcs12 -export` (as the node makes them)
//! and combined PEM files give back their chain and their key's public key, never the key;
//! a wrong password, a corrupt file, a FIFO or a bad password file is a state naming why.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::inspect::inspect_store;
use super::*;
use crate::materials::FileKind;
use crate::stores::fixtures::leaf_and_anchors;
use crate::stores::StoreContents;
use crate::transport::local::LocalTransport;

/// The fixture leaf's key (PKCS#8 PEM) and chain (PEM) in `dir`, and its contents.
fn leaf_files(dir: &Path) -> StoreContents {
    let (leaf, _) = leaf_and_anchors();
    let key = leaf.key.as_ref().expect("the fixture has a key");
    fs::write(
        dir.join("key.pem"),
        pem::encode(&pem::Pem::new("PRIVATE KEY", key.to_vec())),
    )
    .unwrap();
    let chain: String = leaf
        .chain
        .iter()
        .map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.clone())))
        .collect();
    fs::write(dir.join("chain.pem"), chain).unwrap();
    leaf
}

/// `openssl pkcs12 -export` of the leaf files in `dir` into `dir/name`, password `pw`.
fn export(dir: &Path, name: &str, pw: &str, extra: &[&str]) {
    fs::write(dir.join("export.pass"), format!("{pw}\n")).unwrap();
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(["pkcs12", "-export", "-in", "chain.pem", "-inkey", "key.pem"])
        .args([
            "-name",
            "certroll",
            "-passout",
            "file:export.pass",
            "-out",
            name,
        ])
        .args(extra)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn password_file(dir: &Path, text: &str, mode: u32) -> String {
    let p = dir.join("store.pass");
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p.display().to_string()
}

fn open(
    dir: &Path,
    kind: FileKind,
    name: &str,
    pw: Option<&str>,
) -> Option<Result<StoreContents, String>> {
    let node = super::tests::node(dir);
    let t = LocalTransport::new("n1", dir);
    let path = dir.join(name).display().to_string();
    inspect_store(&t, &node, kind, &path, pw)
}

#[test]
fn a_keystore_opened_on_the_node_gives_its_chain_and_public_key_but_never_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = leaf_files(dir.path());
    let chain: String = fs::read_to_string(dir.path().join("chain.pem")).unwrap();
    // A second certificate after the leaf: the chain comes back in order, leaf first.
    fs::write(dir.path().join("chain.pem"), chain.repeat(2)).unwrap();
    export(dir.path(), "app.p12", "s3cret", &[]);
    let pw = password_file(dir.path(), "s3cret\n", 0o600);
    let got = open(dir.path(), FileKind::Keystore, "app.p12", Some(&pw))
        .expect("present")
        .expect("opens");
    assert_eq!(got.chain.len(), 2, "{got:?}");
    assert_eq!(got.chain[0], leaf.chain[0]);
    assert!(got.key.is_none(), "no private key comes back");
    assert_eq!(got.spki(), leaf.spki(), "the key's public key");

    // What crosses the transport: no private key, no password.
    let t = LocalTransport::new("n1", dir.path());
    let path = dir.path().join("app.p12").display().to_string();
    let args = ["inspect".into(), "pkcs12".into(), path, pw];
    let out = t
        .exec_input(&command(&args), &[], WRITE_TIMEOUT)
        .expect("runs");
    assert!(out.stdout.contains("BEGIN PUBLIC KEY"), "{}", out.stdout);
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains("PRIVATE KEY"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}

#[test]
fn a_combined_pem_opened_on_the_node_gives_its_chain_and_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = leaf_files(dir.path());
    let text = fs::read_to_string(dir.path().join("chain.pem")).unwrap()
        + &fs::read_to_string(dir.path().join("key.pem")).unwrap();
    fs::write(dir.path().join("combined.pem"), text).unwrap();
    let got = open(dir.path(), FileKind::CombinedPem, "combined.pem", None)
        .expect("present")
        .expect("opens");
    assert_eq!(got.chain, leaf.chain);
    assert_eq!(got.spki(), leaf.spki());
    assert!(got.key.is_none());
}

#[test]
fn a_legacy_rc2_keystore_opens_on_openssl_3_through_its_legacy_provider() {
    let dir = tempfile::tempdir().unwrap();
    let leaf = leaf_files(dir.path());
    // What OpenSSL 1.1's default made (RC2-40 certificates): OpenSSL 3 opens it only with
    // -legacy.
    export(dir.path(), "old.p12", "pw", &["-legacy"]);
    let pw = password_file(dir.path(), "pw", 0o600);
    let got = open(dir.path(), FileKind::Keystore, "old.p12", Some(&pw))
        .expect("present")
        .expect("opens");
    assert_eq!(got.chain[0], leaf.chain[0]);
    assert_eq!(got.spki(), leaf.spki());
}

#[test]
fn a_wrong_password_a_corrupt_or_missing_store_a_fifo_or_a_bad_password_file_is_a_state() {
    let dir = tempfile::tempdir().unwrap();
    leaf_files(dir.path());
    export(dir.path(), "app.p12", "right", &[]);
    let pw = password_file(dir.path(), "not-Its-pw\n", 0o600);
    let why = |name: &str, pw: Option<&str>| {
        open(dir.path(), FileKind::Keystore, name, pw)
            .expect("present")
            .expect_err("does not open")
    };
    let e = why("app.p12", Some(&pw));
    assert!(e.contains("password does not open it"), "{e}");
    assert!(!e.contains("not-Its-pw"), "never the password: {e}");
    fs::write(dir.path().join("junk.p12"), "not a keystore").unwrap();
    let e = why("junk.p12", Some(&pw));
    assert!(e.contains("not a PKCS#12 file"), "{e}");
    assert!(open(dir.path(), FileKind::Keystore, "none.p12", Some(&pw)).is_none());
    let fifo = dir.path().join("fifo.p12");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let e = why("fifo.p12", Some(&pw));
    assert!(e.contains("not a regular file"), "{e}");
    // A password file every user may read: refused, named, as everywhere else.
    let open_pw = password_file(dir.path(), "right\n", 0o644);
    let e = why("app.p12", Some(&open_pw));
    assert!(
        e.contains(&open_pw) && e.contains("readable by every user"),
        "{e}"
    );
    let e = open(dir.path(), FileKind::CombinedPem, "junk.p12", None)
        .expect("present")
        .expect("a PEM without certificates still opens");
    assert!(e.chain.is_empty() && e.public_key.is_none());
}

/// libssh2 sends a command in one packet of at most 35,000 bytes: `inspect`, with its own
/// piece of script, still fits when `become = "sudo"` quotes it once more, and does not
/// make the other commands longer.
#[test]
fn the_inspect_command_fits_in_one_ssh_packet_under_sudo_and_leaves_apply_as_long_as_before() {
    use crate::shell::shell_quote;
    let long = "/srv/a-rather-long-directory-name/for-the-store/of-this-node/app.p12";
    let inspect = command(&["inspect".into(), "pkcs12".into(), long.into(), long.into()]);
    let sudo = format!("sudo -n -- sh -c {}", shell_quote(&inspect));
    assert!(sudo.len() < 32_000, "{} bytes", sudo.len());
    let apply = command(&["apply".into()]);
    assert!(!apply.contains("inspect()"), "apply carries no inspect");
    assert!(inspect.contains("inspect()") && !inspect.contains("os_check()"));
}
