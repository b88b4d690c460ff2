//! Taking over a fleet through the real binary on local-transport nodes (docs/takeover.md):
//! the bootstrap guard, `ca import` refusals, the public-only refusals, a takeover rotation
//! with a node missing its files and a partner CA in the bundles, and the run lock on import.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use certroll::inventory::{CaSpec, KeyAlgorithm};
use certroll::pki::{issue_leaf, new_ca, parse_pem_certs, CaCert};
use time::OffsetDateTime;

struct Fleet {
    dir: tempfile::TempDir,
}

const NODES: [&str; 3] = ["lb", "app", "db"];

impl Fleet {
    /// lb → app one-way, app ⇄ db mutual; `db_reload` is db's reload command.
    fn new(db_reload: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[ca.internal]\nsubject = \"CN=Takeover Test CA\"\n\n\
             [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\ncert = \"nodes/{{node}}/cert.pem\"\n\
             key = \"nodes/{{node}}/key.pem\"\nreload = \"touch nodes/{{node}}/reloaded\"\nconfirm = \"test -e nodes/{{node}}/reloaded\"\n\
             confirm_timeout = \"2s\"\n\n\
             [nodes.lb]\ndns_names = [\"lb.test\"]\n[nodes.app]\ndns_names = [\"app.test\"]\n\
             [nodes.db]\ndns_names = [\"db.test\"]\nreload = {db_reload:?}\n\n\
             [[links]]\nclient = \"lb\"\nserver = \"app\"\n\n[[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\n"
        );
        std::fs::write(dir.path().join("certroll.toml"), text).unwrap();
        for n in NODES {
            std::fs::create_dir_all(dir.path().join("nodes").join(n)).unwrap();
        }
        Fleet { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, data: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, data).unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_certroll"))
            .arg("-i")
            .arg(self.path("certroll.toml"))
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The operator's fleet: every node (but `skip`) holds a leaf of `ca` and the bundle
    /// `[partner, ca]`.
    fn built_by(&self, ca: &CaCert, partner: &CaCert, skip: &[&str]) {
        let spec = spec("CN=Operator CA");
        let now = OffsetDateTime::now_utc();
        for n in NODES.iter().filter(|n| !skip.contains(n)) {
            let leaf = issue_leaf(&spec, ca, n, &[format!("{n}.test")], now).unwrap();
            self.write(&format!("nodes/{n}/cert.pem"), &leaf.cert_pem);
            self.write(&format!("nodes/{n}/key.pem"), &leaf.key_pem);
            self.write(
                &format!("nodes/{n}/ca.pem"),
                &(partner.cert_pem.clone() + &ca.cert_pem),
            );
        }
    }
}

fn spec(subject: &str) -> CaSpec {
    let mut spec = certroll::inventory::InventoryBuilder::new()
        .link("a", "b")
        .build()
        .cas
        .remove(0);
    spec.subject = subject.into();
    spec.key_algorithm = KeyAlgorithm::EcdsaP256;
    spec
}

fn ca(subject: &str) -> CaCert {
    new_ca(&spec(subject), 1, OffsetDateTime::now_utc()).unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ders(p: &Path) -> Vec<Vec<u8>> {
    parse_pem_certs(&std::fs::read(p).unwrap())
        .unwrap()
        .into_iter()
        .map(|c| c.der)
        .collect()
}

#[test]
fn bootstrap_over_another_cas_files_is_refused_and_changes_nothing() {
    let f = Fleet::new("touch nodes/db/reloaded");
    let (op, partner) = (ca("CN=Operator CA"), ca("CN=Partner CA"));
    f.built_by(&op, &partner, &["lb"]);
    let before = std::fs::read(f.path("nodes/app/cert.pem")).unwrap();
    let out = f.run(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(77), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("node(s) app, db already hold"), "{msg}");
    assert!(
        msg.contains("ca import") && msg.contains("--force-bootstrap"),
        "{msg}"
    );
    assert_eq!(std::fs::read(f.path("nodes/app/cert.pem")).unwrap(), before);
    assert!(
        !f.path(".certroll/ca").exists(),
        "a refused bootstrap created a CA"
    );

    let forced = f.run(&["apply", "--yes", "--force-bootstrap"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
}

#[test]
fn import_of_a_missing_unreadable_or_oversized_file_exits_78_and_writes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fleet::new("touch nodes/db/reloaded");
    let op = ca("CN=Operator CA");
    let cert = f.write("op.pem", &op.cert_pem);
    let missing = f.path("missing.pem");
    let huge = f.write("huge.pem", &"A".repeat(2 << 20));
    std::fs::create_dir_all(f.path("a-directory")).unwrap();
    // Unreadable for anyone but root; root reads it and finds no certificate in it.
    let closed = f.write("closed.pem", "not a certificate\n");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o000)).unwrap();
    let (cert, missing, huge, dir, closed) = (
        cert.to_str().unwrap(),
        missing.to_str().unwrap(),
        huge.to_str().unwrap(),
        f.path("a-directory"),
        closed.to_str().unwrap(),
    );
    let dir = dir.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["--cert", missing],
            format!("failed to read CA certificate {missing}"),
        ),
        (
            vec!["--cert", huge],
            format!("failed to read CA certificate {huge}: not a regular file of at most 1 MiB"),
        ),
        (
            vec!["--cert", dir],
            format!("failed to read CA certificate {dir}: not a regular file"),
        ),
        (
            vec!["--cert", cert, "--key", missing],
            format!("failed to read CA private key {missing}"),
        ),
        (
            vec!["--cert", cert, "--anchor", huge],
            format!("failed to read anchor certificate {huge}"),
        ),
    ] {
        let mut all = vec!["ca", "import", "internal"];
        all.extend(args);
        let out = f.run(&all);
        assert_eq!(out.status.code(), Some(78), "{all:?}: {}", text(&out));
        assert!(text(&out).contains(&needle), "{all:?}: {}", text(&out));
        assert!(
            !f.path(".certroll").exists(),
            "{all:?} wrote the state directory"
        );
    }
    // A file nobody but root may read: refused as unreadable before the state directory
    // is made; root reads it and refuses it as no certificate, the store untouched.
    let out = f.run(&["ca", "import", "internal", "--cert", closed]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    if !runs_as_root() {
        let needle = format!("failed to read CA certificate {closed}: Permission denied");
        assert!(text(&out).contains(&needle), "{}", text(&out));
        assert!(!f.path(".certroll").exists(), "{}", text(&out));
    }
    assert!(!f.path(".certroll/ca").exists(), "{}", text(&out));
}

/// Whether the tests run as root (who may read any file), from `id -u`.
fn runs_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn plan_refuses_a_bootstrap_over_another_cas_files_like_apply() {
    let f = Fleet::new("touch nodes/db/reloaded");
    let (op, partner) = (ca("CN=Operator CA"), ca("CN=Partner CA"));
    f.built_by(&op, &partner, &["lb"]);
    let plan = f.run(&["plan"]);
    let apply = f.run(&["apply", "--yes"]);
    assert_eq!(plan.status.code(), apply.status.code(), "{}", text(&plan));
    assert_ne!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(
        String::from_utf8_lossy(&plan.stdout).is_empty(),
        "no bootstrap plan is printed: {}",
        text(&plan)
    );
    assert_eq!(
        String::from_utf8_lossy(&plan.stderr),
        String::from_utf8_lossy(&apply.stderr),
        "the same refusal in the same words"
    );
    assert!(
        text(&plan).contains("node(s) app, db already hold"),
        "{}",
        text(&plan)
    );

    // `--force-bootstrap` shows what the forced bootstrap would do, and still changes nothing.
    let forced = f.run(&["plan", "--force-bootstrap"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert!(
        text(&forced).contains("Bootstrap CA internal"),
        "{}",
        text(&forced)
    );
    assert!(!f.path(".certroll/ca").exists(), "plan created a CA");
}

#[test]
fn import_refusals_exit_78_and_write_nothing() {
    let f = Fleet::new("touch nodes/db/reloaded");
    let (op, other) = (ca("CN=Operator CA"), ca("CN=Other CA"));
    let leaf = issue_leaf(
        &spec("CN=x"),
        &op,
        "app",
        &["app.test".into()],
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let leaf_file = f.write("leaf.pem", &leaf.cert_pem);
    let op_file = f.write("op.pem", &op.cert_pem);
    let wrong_key = f.write("other.key", other.key_pem().unwrap());
    for (args, needle) in [
        (vec!["--cert", leaf_file.to_str().unwrap()], "not a CA"),
        (
            vec![
                "--cert",
                op_file.to_str().unwrap(),
                "--key",
                wrong_key.to_str().unwrap(),
            ],
            "does not belong",
        ),
        (
            vec![
                "--cert",
                op_file.to_str().unwrap(),
                "--anchor",
                f.write("o.pem", &other.cert_pem).to_str().unwrap(),
            ],
            "did not sign",
        ),
    ] {
        let mut all = vec!["ca", "import", "internal"];
        all.extend(args);
        let out = f.run(&all);
        assert_eq!(out.status.code(), Some(78), "{all:?}: {}", text(&out));
        assert!(text(&out).contains(needle), "{all:?}: {}", text(&out));
        assert!(!text(&out).contains("PRIVATE KEY"), "{}", text(&out));
        assert!(!f.path(".certroll/ca").exists(), "{all:?} wrote the store");
    }
}

#[test]
fn public_only_takeover_keeps_the_partner_ca_and_completes_a_node_missing_its_files() {
    let f = Fleet::new("touch nodes/db/reloaded");
    let (op, partner) = (ca("CN=Operator CA"), ca("CN=Partner CA"));
    f.built_by(&op, &partner, &["lb"]);
    let cert = f.write("op.pem", &op.cert_pem);
    let out = f.run(&["ca", "import", "internal", "--cert", cert.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let routine = f.run(&["apply", "--yes"]);
    assert_eq!(routine.status.code(), Some(77), "{}", text(&routine));
    assert!(text(&routine).contains("public-only"), "{}", text(&routine));
    let crossed = f.run(&["plan", "--rotate", "--chain", "cross-signed"]);
    assert_eq!(crossed.status.code(), Some(64), "{}", text(&crossed));

    let plan = f.run(&["plan", "--rotate", "--check"]);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    let shown = text(&plan);
    assert!(
        shown.contains("node lb has no trust bundle, no certificate, no private key"),
        "{shown}"
    );
    assert!(
        shown.contains("2 certificate(s) in the bundles belong to no generation"),
        "{shown}"
    );

    let rotated = f.run(&["apply", "--rotate", "--yes"]);
    assert_eq!(rotated.status.code(), Some(0), "{}", text(&rotated));
    let partner_der = ders(&f.write("partner.pem", &partner.cert_pem))[0].clone();
    for n in ["app", "db"] {
        let bundle = ders(&f.path(&format!("nodes/{n}/ca.pem")));
        assert_eq!(bundle.len(), 2, "{n}");
        assert_eq!(bundle[0], partner_der, "{n}: the partner CA stays first");
        assert_ne!(bundle[1], op.cert_der, "{n}: the imported CA is pruned");
    }
    assert_eq!(
        ders(&f.path("nodes/lb/ca.pem")).len(),
        1,
        "lb had no foreign anchor"
    );
    let verify = f.run(&["verify"]);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert!(
        text(&verify).contains("foreign anchor"),
        "{}",
        text(&verify)
    );
}

#[test]
fn import_is_refused_while_a_run_of_the_ca_is_unfinished() {
    let f = Fleet::new("false");
    let (op, partner) = (ca("CN=Operator CA"), ca("CN=Partner CA"));
    f.built_by(&op, &partner, &[]);
    let cert = f.write("op.pem", &op.cert_pem);
    let key = f.write("op.key", op.key_pem().unwrap());
    let import = [
        "ca",
        "import",
        "internal",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let out = f.run(&import);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stuck = f.run(&["apply", "--rotate", "--yes"]);
    assert_eq!(
        stuck.status.code(),
        Some(75),
        "db's reload fails: {}",
        text(&stuck)
    );
    let next = ca("CN=Operator CA 2");
    let next_cert = f.write("next.pem", &next.cert_pem);
    let next_key = f.write("next.key", next.key_pem().unwrap());
    let again = f.run(&[
        "ca",
        "import",
        "internal",
        "--next",
        "--cert",
        next_cert.to_str().unwrap(),
        "--key",
        next_key.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(78), "{}", text(&again));
    assert!(text(&again).contains("unfinished"), "{}", text(&again));
}

/// Regression: a routine run that installs on a node missing its files is a bootstrap-mode
/// plan too, but the CA exists: the bootstrap guard must not refuse it.
#[test]
fn routine_install_after_bootstrap_is_not_refused_as_a_bootstrap() {
    let f = Fleet::new("touch nodes/db/reloaded");
    let out = f.run(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::remove_file(f.path(&format!("nodes/db/{file}"))).unwrap();
    }
    let again = f.run(&["apply", "--yes"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(f.path("nodes/db/cert.pem").exists());
}

/// A self-signed certificate whose common name is `cn`, a CA or not.
fn self_signed_pem(cn: &str, ca: bool) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params.self_signed(&key).unwrap().pem()
}

#[test]
fn a_certificate_subject_with_terminal_escapes_is_shown_escaped_by_import() {
    let f = Fleet::new("touch nodes/db/reloaded");
    let hostile = "Op\u{1b}[2K\rimported: OK\u{9b}0m";
    let shown = "Op\\x1b[2K\\rimported: OK\\u{9b}0m";
    let no_raw = |out: &Output| {
        let all = text(out);
        let raw: Vec<char> = all
            .chars()
            .filter(|&c| c != '\n' && c.is_control())
            .collect();
        assert!(raw.is_empty(), "raw control characters {raw:?}:\n{all}");
        assert!(
            all.contains(shown),
            "the subject is not shown escaped:\n{all}"
        );
    };
    // Refused (not a CA): the error printed by the binary names the subject, escaped.
    let leaf = f.write("leaf.pem", &self_signed_pem(hostile, false));
    let out = f.run(&["ca", "import", "internal", "--cert", leaf.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    no_raw(&out);
    // Imported: the confirmation names the subject, escaped.
    let ca = f.write("ca.pem", &self_signed_pem(hostile, true));
    let out = f.run(&["ca", "import", "internal", "--cert", ca.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    no_raw(&out);
}
