//! Keystores and truststores made the way an operator makes them without certroll: a CA,
//! keys and leaves from the `openssl` command line, PKCS#12 keystores from
//! `openssl pkcs12 -export`, PKCS#12 and JKS truststores from `keytool -importcert`
//! (which marks each certificate as trusted for Java). They stand for the fleet certroll
//! takes over, and for certroll's own stores in the test that proves Tomcat and the Java
//! client before certroll is involved.
//!
//! Every store is written beside its path and renamed over it (one switch, as certroll
//! does), with the group and mode the service user needs. Also here: the search for key
//! stores left on a node besides the current ones.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The extensions of the operator's CA and leaves (`SAN` is the leaf's DNS name).
const EXT_CNF: &str = "[req]\ndistinguished_name = dn\n[dn]\n\
[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
subjectKeyIdentifier = hash\n\
[leaf]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature\n\
extendedKeyUsage = serverAuth,clientAuth\nsubjectKeyIdentifier = hash\n\
authorityKeyIdentifier = keyid:always\nsubjectAltName = DNS:${ENV::SAN}\n";

/// Runs a command; panics with its output unless it exits 0.
pub fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A CA made with `openssl req -x509` in the operator's directory (never on a node).
pub struct OperatorCa {
    dir: PathBuf,
    pub name: String,
    pub cert: PathBuf,
    key: PathBuf,
}

/// A leaf's key and certificate (PEM) in the operator's directory.
pub struct Leaf {
    pub key: PathBuf,
    pub cert: PathBuf,
}

impl OperatorCa {
    /// A new EC P-256 CA `CN=<cn>`, files `<dir>/<name>.pem` and `<dir>/<name>.key`.
    pub fn new(dir: &Path, name: &str, cn: &str) -> OperatorCa {
        std::fs::write(dir.join("ext.cnf"), EXT_CNF).expect("write ext.cnf");
        let ca = OperatorCa {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        run(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "3650"])
                .arg("-keyout")
                .arg(&ca.key)
                .arg("-out")
                .arg(&ca.cert)
                .args(["-subj", &format!("/CN={cn}"), "-extensions", "ca"])
                .arg("-config")
                .arg(dir.join("ext.cnf"))
                .env("SAN", "unused"),
            "openssl req -x509 (CA)",
        );
        ca
    }

    /// A new key and leaf `CN=<node>` with the DNS names `<node>` and `<node>.internal`
    /// (certroll expects a node without `dns_names` to be covered by its own name).
    pub fn leaf(&self, node: &str) -> Leaf {
        let stem = self.dir.join(format!("{}-{node}", self.name));
        let leaf = Leaf {
            key: stem.with_extension("key"),
            cert: stem.with_extension("pem"),
        };
        let csr = stem.with_extension("csr");
        let san = format!("{node},DNS:{node}.internal");
        run(
            Command::new("openssl")
                .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:P-256", "-nodes", "-keyout"])
                .arg(&leaf.key)
                .arg("-out")
                .arg(&csr)
                .args(["-subj", &format!("/CN={node}"), "-config"])
                .arg(self.dir.join("ext.cnf"))
                .env("SAN", &san),
            "openssl req -new (leaf)",
        );
        run(
            Command::new("openssl")
                .args(["x509", "-req", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&self.cert)
                .arg("-CAkey")
                .arg(&self.key)
                .args(["-CAcreateserial", "-days", "365", "-extensions", "leaf"])
                .arg("-extfile")
                .arg(self.dir.join("ext.cnf"))
                .arg("-out")
                .arg(&leaf.cert)
                .env("SAN", &san),
            "openssl x509 -req (leaf)",
        );
        leaf
    }
}

/// Group and mode every store and password file of a node gets.
#[derive(Clone, Copy)]
pub struct Access<'a> {
    pub group: &'a str,
    pub mode: u32,
}

/// `path.new`, a sibling of `path` not yet present.
fn beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().expect("file name").to_os_string();
    name.push(".new");
    let new = path.with_file_name(name);
    let _ = std::fs::remove_file(&new);
    new
}

/// Gives `new` the access, then renames it over `path`.
fn switch(new: &Path, path: &Path, access: Access) {
    run(
        Command::new("chgrp").arg(access.group).arg(new),
        "chgrp a store",
    );
    std::fs::set_permissions(new, std::fs::Permissions::from_mode(access.mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", new.display()));
    std::fs::rename(new, path)
        .unwrap_or_else(|e| panic!("rename {} over {}: {e}", new.display(), path.display()));
}

/// Writes the password file (the store's password, no newline).
pub fn password_file(path: &Path, password: &str, access: Access) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    let new = beside(path);
    std::fs::write(&new, password).unwrap_or_else(|e| panic!("write {}: {e}", new.display()));
    switch(&new, path, access);
}

/// A PKCS#12 keystore at `path`: the leaf's key, the leaf and its CA, with
/// `openssl pkcs12 -export` (OpenSSL 3's defaults: AES-256-CBC, PBKDF2, HMAC-SHA256).
pub fn keystore(path: &Path, leaf: &Leaf, ca: &OperatorCa, password: &Path, access: Access) {
    let new = beside(path);
    run(
        Command::new("openssl")
            .args(["pkcs12", "-export", "-inkey"])
            .arg(&leaf.key)
            .arg("-in")
            .arg(&leaf.cert)
            .arg("-certfile")
            .arg(&ca.cert)
            .args(["-name", "leaf", "-passout"])
            .arg(format!("file:{}", password.display()))
            .arg("-out")
            .arg(&new),
        "openssl pkcs12 -export",
    );
    switch(&new, path, access);
}

/// A truststore at `path` holding `cas`, `format` "PKCS12" or "JKS", with
/// `keytool -importcert` (each entry a trusted certificate).
pub fn truststore(path: &Path, format: &str, cas: &[&OperatorCa], password: &Path, access: Access) {
    let new = beside(path);
    for ca in cas {
        run(
            Command::new("keytool")
                .args(["-importcert", "-noprompt", "-alias", &ca.name, "-file"])
                .arg(&ca.cert)
                .arg("-keystore")
                .arg(&new)
                .args(["-storetype", format])
                .arg("-storepass:file")
                .arg(password),
            "keytool -importcert",
        );
    }
    switch(&new, path, access);
}

/// `(uid, gid, mode)` of a file, through symbolic links.
pub fn access_of(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    (m.uid(), m.gid(), m.mode() & 0o7777)
}

/// Whether `user` can read `path` (a `head -c1` with only that user's rights).
pub fn readable_by(user: &str, path: &Path) -> bool {
    Command::new("setpriv")
        .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
        .args(["head", "-c1"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Regular files under `dir` (symbolic links not followed, `skip` subtrees left out) that
/// are PKCS#12 stores holding a private key — opened with one of `passwords` — and are
/// not byte for byte one of `current`.
pub fn other_key_stores(
    dir: &Path,
    current: &[Vec<u8>],
    passwords: &[PathBuf],
    skip: &[PathBuf],
) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), 0u32)];
    while let Some((d, depth)) = todo.pop() {
        if depth > 16 || skip.contains(&d) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(m) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if m.is_dir() {
                todo.push((path, depth + 1));
                continue;
            }
            // A PKCS#12 PFX is a DER SEQUENCE; its version, 3, follows the length.
            let data = if m.is_file() && m.len() < 256 * 1024 {
                std::fs::read(&path).unwrap_or_default()
            } else {
                continue;
            };
            let looks_like_pfx = data.first() == Some(&0x30)
                && data.windows(3).take(8).any(|w| w == [0x02, 0x01, 0x03]);
            if looks_like_pfx
                && !current.contains(&data)
                && passwords.iter().any(|pw| holds_a_key(&path, pw))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Whether `openssl pkcs12` opens `store` with the password in `password` and finds a
/// private key in it (with `-legacy` too, for a store of the 3DES/SHA-1 profile).
fn holds_a_key(store: &Path, password: &Path) -> bool {
    [&[][..], &["-legacy"][..]].iter().any(|extra| {
        let out = Command::new("openssl")
            .args(["pkcs12", "-nocerts", "-nodes"])
            .args(*extra)
            .arg("-in")
            .arg(store)
            .arg("-passin")
            .arg(format!("file:{}", password.display()))
            .stdin(Stdio::null())
            .output();
        matches!(out, Ok(o) if o.status.success()
            && String::from_utf8_lossy(&o.stdout).contains("PRIVATE KEY"))
    })
}

/// Asserts that both readers open `store` with the password in `password`: `keytool
/// -list` (for a truststore: only trusted-certificate entries, which is what Java loads
/// as anchors, `anchors` of them; for a keystore: one private-key entry) and, for
/// PKCS#12, `openssl pkcs12 -info` of OpenSSL 3 without `-legacy`.
pub fn assert_readers_open(store: &Path, format: &str, password: &Path, anchors: Option<usize>) {
    let listed = run(
        Command::new("keytool")
            .args(["-list", "-storetype", format, "-keystore"])
            .arg(store)
            .arg("-storepass:file")
            .arg(password),
        &format!("keytool -list {}", store.display()),
    );
    let trusted = listed.matches("trustedCertEntry").count();
    let keys = listed.matches("PrivateKeyEntry").count();
    match anchors {
        Some(n) => assert!(
            trusted == n && keys == 0,
            "{}: keytool lists {trusted} trusted certificates and {keys} keys, not {n} anchors:\n{listed}",
            store.display()
        ),
        None => assert!(
            keys == 1 && trusted == 0,
            "{}: keytool lists {keys} keys, not one:\n{listed}",
            store.display()
        ),
    }
    if format == "PKCS12" {
        run(
            Command::new("openssl")
                .args(["pkcs12", "-info", "-noout", "-in"])
                .arg(store)
                .arg("-passin")
                .arg(format!("file:{}", password.display())),
            &format!("openssl pkcs12 -info {} (no -legacy)", store.display()),
        );
    }
}

#[test]
fn other_key_stores_finds_an_old_keystore_but_not_the_current_one_nor_a_truststore() {
    let ops = tempfile::tempdir().expect("temp dir");
    let node = tempfile::tempdir().expect("temp dir");
    let ca = OperatorCa::new(ops.path(), "ca", "Scan Test CA");
    let access = Access {
        group: "root",
        mode: 0o600,
    };
    let password = node.path().join("store-password");
    password_file(&password, "scan-test-password", access);
    let store = node.path().join("keystore.p12");
    keystore(&store, &ca.leaf("a"), &ca, &password, access);
    let old = std::fs::read(&store).expect("read the keystore");
    let backup = node.path().join("backup").join("keystore.p12");
    std::fs::create_dir_all(backup.parent().expect("parent")).expect("mkdir");
    std::fs::write(&backup, &old).expect("write the old keystore");
    keystore(&store, &ca.leaf("a"), &ca, &password, access);
    truststore(
        &node.path().join("truststore.p12"),
        "PKCS12",
        &[&ca],
        &password,
        access,
    );
    let current = vec![std::fs::read(&store).expect("read the keystore")];
    let found = other_key_stores(node.path(), &current, std::slice::from_ref(&password), &[]);
    assert_eq!(found, [backup]);
    let skipped = other_key_stores(
        node.path(),
        &current,
        std::slice::from_ref(&password),
        &[node.path().join("backup")],
    );
    assert!(skipped.is_empty(), "{skipped:?}");
}
