//! Keys made on the node (`key_source = "node"`) through the real binary on local-transport
//! nodes: a crash between the node's keygen and the write, resumed, ends with a matching
//! pair on every node and no pending key left; a node without openssl fails with a message
//! that says what is missing where.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Fleet {
    dir: tempfile::TempDir,
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let text = "[ca.internal]\nsubject = \"CN=Node keys CA\"\n\n\
             [defaults]\ntransport = \"local\"\nkey_source = \"node\"\ntrust_bundle = \"nodes/{node}/ca.pem\"\n\
             cert = \"nodes/{node}/cert.pem\"\nkey = \"nodes/{node}/key.pem\"\n\n\
             [nodes.app]\ndns_names = [\"app.test\"]\n[nodes.db]\ndns_names = [\"db.test\"]\n\n\
             [[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\n";
        std::fs::write(dir.path().join("certroll.toml"), text).unwrap();
        Fleet { dir }
    }

    fn run(&self, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_certroll"));
        c.arg("-i")
            .arg(self.dir.path().join("certroll.toml"))
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run certroll")
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
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_crash_between_keygen_and_write_resumes_to_matching_pairs() {
    let fleet = Fleet::new();
    let crash = [(
        "CERTROLL_TEST_CRASH_AFTER_KEYGEN",
        std::ffi::OsStr::new("1"),
    )];
    let out = fleet.run(&["apply", "--yes"], &crash);
    assert_eq!(out.status.code(), Some(137), "{}", show(&out));
    let left: usize = ["app", "db"].iter().map(|n| fleet.pending(n).len()).sum();
    assert!(left >= 1, "the crash left no pending key to clean");

    let out = fleet.run(&["apply", "--yes"], &[]);
    assert!(out.status.success(), "resume: {}", show(&out));
    for node in ["app", "db"] {
        assert!(
            fleet.pair_matches(node),
            "{node}: key and certificate differ"
        );
        assert!(
            fleet.pending(node).is_empty(),
            "{node}: {:?}",
            fleet.pending(node)
        );
    }
    let out = fleet.run(&["verify"], &[]);
    assert!(out.status.success(), "verify: {}", show(&out));

    // A rotation (every key made again on the node) ends the same way.
    let out = fleet.run(&["apply", "--rotate", "--yes"], &crash);
    assert_eq!(out.status.code(), Some(137), "{}", show(&out));
    let out = fleet.run(&["apply", "--yes"], &[]);
    assert!(
        out.status.success(),
        "resume of the rotation: {}",
        show(&out)
    );
    for node in ["app", "db"] {
        assert!(
            fleet.pair_matches(node),
            "{node}: key and certificate differ"
        );
        assert!(
            fleet.pending(node).is_empty(),
            "{node}: {:?}",
            fleet.pending(node)
        );
    }
    let out = fleet.run(&["verify"], &[]);
    assert!(
        out.status.success(),
        "verify after the rotation: {}",
        show(&out)
    );
}

#[test]
fn a_node_without_openssl_is_named_with_what_it_needs() {
    let fleet = Fleet::new();
    // A PATH with every tool of the system but openssl.
    let bin = fleet.dir.path().join("bin");
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
    let out = fleet.run(&["apply", "--yes"], &[("PATH", bin.as_os_str())]);
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    let text = show(&out);
    let store = fleet.store("app").display().to_string();
    let expected = format!(
        "failed to make an ecdsa-p256 key for CA internal in {store} on node app: openssl is not installed there, and key_source = \"node\" needs it on the node to make and check its keys (install openssl, or set key_source = \"control\")"
    );
    assert!(text.contains(&expected), "expected\n{expected}\nin\n{text}");
}
