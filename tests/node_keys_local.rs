//! Keys made on the node (`key_source = "node"`) through the real binary on local-transport
//! nodes: a crash between the node's keygen and the write, resumed, ends with a matching
//! pair on every node and no pending key left; a node without openssl fails with a message
//! that says what is missing where, and a cross-signed rotation that would need it there
//! for a keystore is refused before anything changes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::run::{certroll, Run};

struct Fleet {
    dir: tempfile::TempDir,
}

impl Fleet {
    fn new() -> Fleet {
        Fleet::with("key_source = \"node\"\n", "")
    }

    /// The two nodes with `defaults` added to `[defaults]` and `app` to `[nodes.app]`.
    fn with(defaults: &str, app: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[ca.internal]\nsubject = \"CN=Node keys CA\"\n\n\
             [defaults]\ntransport = \"local\"\n{defaults}trust_bundle = \"nodes/{{node}}/ca.pem\"\n\
             cert = \"nodes/{{node}}/cert.pem\"\nkey = \"nodes/{{node}}/key.pem\"\n\n\
             [nodes.app]\ndns_names = [\"app.test\"]\n{app}[nodes.db]\ndns_names = [\"db.test\"]\n\n\
             [[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\n"
        );
        std::fs::write(dir.path().join("certroll.toml"), text).unwrap();
        Fleet { dir }
    }

    /// A directory of links to every tool of the system but openssl, for a PATH.
    fn bin_without_openssl(&self) -> PathBuf {
        let bin = self.dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for dir in ["/usr/bin", "/bin"] {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let name = e.file_name();
                if name == "openssl" || bin.join(&name).exists() {
                    continue;
                }
                std::os::unix::fs::symlink(e.path(), bin.join(&name)).unwrap();
            }
        }
        bin
    }

    fn run(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Run {
        certroll(&self.dir.path().join("certroll.toml"), args, |cmd| {
            cmd.envs(env.iter().copied());
        })
    }

    fn store(&self, node: &str) -> PathBuf {
        self.dir
            .path()
            .join("nodes")
            .join(node)
            .join(".certroll-internal")
    }

    fn pending(&self, node: &str) -> Vec<String> {
        std::fs::read_dir(self.store(node))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".key-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the node's key and certificate belong together (checked with openssl here).
    fn pair_matches(&self, node: &str) -> bool {
        let d = self.dir.path().join("nodes").join(node);
        let public = |args: &[&str], file: &Path| {
            let out = Command::new("openssl")
                .args(args)
                .arg(file)
                .output()
                .expect("run openssl");
            assert!(out.status.success(), "openssl {args:?} {}", file.display());
            out.stdout
        };
        let from_key = public(&["pkey", "-pubout", "-in"], &d.join("key.pem"));
        let from_cert = public(&["x509", "-noout", "-pubkey", "-in"], &d.join("cert.pem"));
        from_key == from_cert
    }

    /// After a finished apply (`what`): every node's key and certificate belong together,
    /// no pending key is left, and `verify` passes.
    fn assert_settled(&self, what: &str) {
        for node in ["app", "db"] {
            assert!(
                self.pair_matches(node),
                "{what}: {node}: key and certificate differ"
            );
            let pending = self.pending(node);
            assert!(pending.is_empty(), "{what}: {node}: {pending:?}");
        }
        let out = self.run(&["verify"], &[]);
        assert_eq!(out.code, 0, "verify after the {what}: {out}");
    }
}

#[test]
fn a_crash_between_keygen_and_write_resumes_to_matching_pairs() {
    let fleet = Fleet::new();
    let crash = [(
        "CERTROLL_TEST_CRASH_AFTER_KEYGEN",
        std::ffi::OsStr::new("1"),
    )];
    fleet.run(&["apply", "--yes"], &crash).expect_code(137);
    let left: usize = ["app", "db"].iter().map(|n| fleet.pending(n).len()).sum();
    assert!(left >= 1, "the crash left no pending key to clean");

    fleet.run(&["apply", "--yes"], &[]).expect_code(0);
    fleet.assert_settled("resumed bootstrap");

    // A rotation (every key made again on the node) ends the same way.
    fleet
        .run(&["apply", "--rotate", "--yes"], &crash)
        .expect_code(137);
    fleet.run(&["apply", "--yes"], &[]).expect_code(0);
    fleet.assert_settled("resumed rotation");
}

#[test]
fn a_node_without_openssl_is_named_with_what_it_needs() {
    let fleet = Fleet::new();
    let bin = fleet.bin_without_openssl();
    let out = fleet.run(&["apply", "--yes"], &[("PATH", bin.as_os_str())]);
    assert_ne!(out.code, 0, "{out}");
    let text = out.output();
    let store = fleet.store("app").display().to_string();
    let expected = format!(
        "failed to make an ecdsa-p256 key for CA internal in {store} on node app: openssl is not installed there, and key_source = \"node\" needs it on the node to make and check its keys (install openssl, or set key_source = \"control\")"
    );
    assert!(text.contains(&expected), "expected\n{expected}\nin\n{text}");
}

/// With keys made on the control host, the trust-prune of a cross-signed rotation makes a
/// node's keystore again on the node (the control host no longer holds the key then), with
/// openssl: a node without it is refused before anything changes, not half-way through
/// the rotation. A plain rotation writes the keystore from the control host and runs.
#[test]
fn a_cross_signed_rotation_of_a_keystore_node_without_openssl_is_refused_before_anything_changes() {
    let fleet = Fleet::with(
        "",
        "keystore = \"nodes/app/app.p12\"\nstore_password_file = \"nodes/app/store.pass\"\n",
    );
    let pass = fleet.dir.path().join("nodes/app/store.pass");
    std::fs::create_dir_all(pass.parent().unwrap()).unwrap();
    std::fs::write(&pass, "app-secret\n").unwrap();
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    fleet.run(&["apply", "--yes"], &[]).expect_code(0);
    let cert = fleet.dir.path().join("nodes/app/cert.pem");
    let before = std::fs::read(&cert).unwrap();

    let bin = fleet.bin_without_openssl();
    let path = [("PATH", bin.as_os_str())];
    let args = ["apply", "--rotate", "--chain", "cross-signed", "--yes"];
    let out = fleet.run(&args, &path);
    out.expect_code(78)
        .expect_output("openssl is not installed on node app")
        .expect_output("nodes/app/app.p12");
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        before,
        "nothing changed\n{out}"
    );

    fleet
        .run(&["apply", "--rotate", "--yes"], &path)
        .expect_code(0);
}
