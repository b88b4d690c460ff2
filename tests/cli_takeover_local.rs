//! Taking over a fleet through the real binary on local-transport nodes (docs/takeover.md):
//! the bootstrap guard, `ca import` refusals, the public-only refusals, a takeover rotation
//! with a node missing its files and a partner CA in the bundles, and the run lock on import.

mod support;

use std::path::Path;
use std::process::Command;

use certroll::inventory::KeyAlgorithm;
use certroll::pki::{issue_leaf, parse_pem_certs};
use support::local::LocalFleet;
use support::pki::{ca, self_signed_pem, spec};
use support::run::Run;
use time::OffsetDateTime;

/// lb → app one-way, app ⇄ db mutual, every node's directory made; `db_reload` is db's
/// reload command.
fn fleet(db_reload: &str) -> LocalFleet {
    LocalFleet::new("CN=Takeover Test CA")
        .default_key("confirm_timeout", "2s")
        .node_key("db", "reload", db_reload)
        .write()
        .with_node_dirs()
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
    let f = fleet("touch nodes/db/reloaded");
    let (op, partner) = (ca("CN=Operator CA"), ca("CN=Partner CA"));
    f.held_by(&op, &partner, &["lb"]);
    let before = std::fs::read(f.path("nodes/app/cert.pem")).unwrap();
    let out = f.certroll(&["apply", "--yes"]);
    out.expect_code(77);
    let msg = out.output();
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

    let forced = f.certroll(&["apply", "--yes", "--force-bootstrap"]);
    forced.expect_code(0);
}

#[test]
fn import_of_a_missing_unreadable_or_oversized_file_exits_78_and_writes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let f = fleet("touch nodes/db/reloaded");
    let op = ca("CN=Operator CA");
    let cert = f.write_file("op.pem", &op.cert_pem);
    let missing = f.path("missing.pem");
    let huge = f.write_file("huge.pem", "A".repeat(2 << 20));
    std::fs::create_dir_all(f.path("a-directory")).unwrap();
    // Unreadable for anyone but root; root reads it and finds no certificate in it.
    let closed = f.write_file("closed.pem", "not a certificate\n");
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
        let out = f.certroll(&all);
        out.expect_code(78);
        out.expect_output(&needle);
        assert!(
            !f.path(".certroll").exists(),
            "{all:?} wrote the state directory"
        );
    }
    // A file nobody but root may read: refused as unreadable before the state directory
    // is made; root reads it and refuses it as no certificate, the store untouched.
    let out = f.certroll(&["ca", "import", "internal", "--cert", closed]);
    out.expect_code(78);
    if !runs_as_root() {
        let needle = format!("failed to read CA certificate {closed}: Permission denied");
        out.expect_output(&needle);
        assert!(!f.path(".certroll").exists(), "{out}");
    }
    assert!(!f.path(".certroll/ca").exists(), "{out}");
}

/// Whether the tests run as root (who may read any file), from `id -u`.
fn runs_as_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn plan_refuses_a_bootstrap_over_another_cas_files_like_apply() {
    let f = fleet("touch nodes/db/reloaded");
    let (op, partner) = (ca("CN=Operator CA"), ca("CN=Partner CA"));
    f.held_by(&op, &partner, &["lb"]);
    let plan = f.certroll(&["plan"]);
    let apply = f.certroll(&["apply", "--yes"]);
    assert_eq!(plan.code, apply.code, "{plan}\n{apply}");
    assert_ne!(plan.code, 0, "{plan}");
    assert!(
        plan.stdout.is_empty(),
        "no bootstrap plan is printed: {}",
        plan.output()
    );
    assert_eq!(
        plan.stderr, apply.stderr,
        "the same refusal in the same words"
    );
    plan.expect_output("node(s) app, db already hold");

    // `--force-bootstrap` shows what the forced bootstrap would do, and still changes nothing.
    let forced = f.certroll(&["plan", "--force-bootstrap"]);
    forced.expect_code(0);
    forced.expect_output("Bootstrap CA internal");
    assert!(!f.path(".certroll/ca").exists(), "plan created a CA");
}

#[test]
fn import_refusals_exit_78_and_write_nothing() {
    let f = fleet("touch nodes/db/reloaded");
    let (op, other) = (ca("CN=Operator CA"), ca("CN=Other CA"));
    let leaf = issue_leaf(
        &spec(KeyAlgorithm::EcdsaP256, "CN=x"),
        &op,
        "app",
        &["app.test".into()],
        OffsetDateTime::now_utc(),
    )
    .unwrap();
    let leaf_file = f.write_file("leaf.pem", &leaf.cert_pem);
    let op_file = f.write_file("op.pem", &op.cert_pem);
    let wrong_key = f.write_file("other.key", other.key_pem().unwrap());
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
                f.write_file("o.pem", &other.cert_pem).to_str().unwrap(),
            ],
            "did not sign",
        ),
    ] {
        let mut all = vec!["ca", "import", "internal"];
        all.extend(args);
        let out = f.certroll(&all);
        out.expect_code(78);
        out.expect_output(needle);
        assert!(!out.output().contains("PRIVATE KEY"), "{out}");
        assert!(!f.path(".certroll/ca").exists(), "{all:?} wrote the store");
    }
}

#[test]
fn public_only_takeover_keeps_the_partner_ca_and_completes_a_node_missing_its_files() {
    let f = fleet("touch nodes/db/reloaded");
    let (op, partner) = (ca("CN=Operator CA"), ca("CN=Partner CA"));
    f.held_by(&op, &partner, &["lb"]);
    let cert = f.write_file("op.pem", &op.cert_pem);
    let out = f.certroll(&["ca", "import", "internal", "--cert", cert.to_str().unwrap()]);
    out.expect_code(0);

    let routine = f.certroll(&["apply", "--yes"]);
    routine.expect_code(77);
    routine.expect_output("public-only");
    let crossed = f.certroll(&["plan", "--rotate", "--chain", "cross-signed"]);
    crossed.expect_code(64);

    let plan = f.certroll(&["plan", "--rotate", "--check"]);
    plan.expect_code(0);
    let shown = plan.output();
    assert!(
        shown.contains("node lb has no trust bundle, no certificate, no private key"),
        "{shown}"
    );
    assert!(
        shown.contains("2 certificate(s) in the bundles belong to no generation"),
        "{shown}"
    );

    let rotated = f.certroll(&["apply", "--rotate", "--yes"]);
    rotated.expect_code(0);
    let partner_der = ders(&f.write_file("partner.pem", &partner.cert_pem))[0].clone();
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
    let verify = f.certroll(&["verify"]);
    verify.expect_code(0);
    verify.expect_output("foreign anchor");
}

#[test]
fn import_is_refused_while_a_run_of_the_ca_is_unfinished() {
    let f = fleet("false");
    let (op, partner) = (ca("CN=Operator CA"), ca("CN=Partner CA"));
    f.held_by(&op, &partner, &[]);
    let cert = f.write_file("op.pem", &op.cert_pem);
    let key = f.write_file("op.key", op.key_pem().unwrap());
    let import = [
        "ca",
        "import",
        "internal",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    let out = f.certroll(&import);
    out.expect_code(0);
    let stuck = f.certroll(&["apply", "--rotate", "--yes"]);
    // db's reload fails.
    stuck.expect_code(75);
    let next = ca("CN=Operator CA 2");
    let next_cert = f.write_file("next.pem", &next.cert_pem);
    let next_key = f.write_file("next.key", next.key_pem().unwrap());
    let again = f.certroll(&[
        "ca",
        "import",
        "internal",
        "--next",
        "--cert",
        next_cert.to_str().unwrap(),
        "--key",
        next_key.to_str().unwrap(),
    ]);
    again.expect_code(78);
    again.expect_output("unfinished");
}

/// Regression: a routine run that installs on a node missing its files is a bootstrap-mode
/// plan too, but the CA exists: the bootstrap guard must not refuse it.
#[test]
fn routine_install_after_bootstrap_is_not_refused_as_a_bootstrap() {
    let f = fleet("touch nodes/db/reloaded");
    let out = f.certroll(&["apply", "--yes"]);
    out.expect_code(0);
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::remove_file(f.path(&format!("nodes/db/{file}"))).unwrap();
    }
    let again = f.certroll(&["apply", "--yes"]);
    again.expect_code(0);
    assert!(f.path("nodes/db/cert.pem").exists());
}

#[test]
fn a_certificate_subject_with_terminal_escapes_is_shown_escaped_by_import() {
    let f = fleet("touch nodes/db/reloaded");
    let hostile = "Op\u{1b}[2K\rimported: OK\u{9b}0m";
    let shown = "Op\\x1b[2K\\rimported: OK\\u{9b}0m";
    let no_raw = |out: &Run| {
        let all = out.output();
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
    let leaf = f.write_file("leaf.pem", self_signed_pem(hostile, false));
    let out = f.certroll(&["ca", "import", "internal", "--cert", leaf.to_str().unwrap()]);
    out.expect_code(78);
    no_raw(&out);
    // Imported: the confirmation names the subject, escaped.
    let ca = f.write_file("ca.pem", self_signed_pem(hostile, true));
    let out = f.certroll(&["ca", "import", "internal", "--cert", ca.to_str().unwrap()]);
    out.expect_code(0);
    no_raw(&out);
}
