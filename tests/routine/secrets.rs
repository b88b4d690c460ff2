//! `verify` reports private keys where they do not belong: appended to a
//! public certificate, or in a readable copy of the key beside it. Routine `apply` repairs
//! the first (a fresh key, the old one's backups closed) and names the second.

use crate::{converges, finding_kinds, show, stdout, verify_json, Fleet};

#[test]
fn verify_reports_a_private_key_appended_to_a_public_certificate() {
    let fleet = Fleet::bootstrapped();
    let mut cert = fleet.read("app", "cert.pem");
    cert.extend(fleet.read("app", "key.pem"));
    fleet.write("app", "cert.pem", cert);
    fleet.chmod("app", "cert.pem", 0o644);
    let (code, report) = verify_json(&fleet);
    assert_eq!(code, 2, "{report:#}");
    assert!(
        finding_kinds(&report, "app").contains(&"key-in-public-file".to_string()),
        "{report:#}"
    );
    let text = report.to_string();
    assert!(text.contains("holds a private key"), "{report:#}");
    assert!(
        !text.contains("PRIVATE KEY-----"),
        "no key material in the report"
    );

    converges(
        &fleet,
        "app",
        "key-in-public-file",
        "renew",
        "holds a private key",
    );
    // The backup of the certificate that held the key is closed too.
    for e in std::fs::read_dir(fleet.dir.path().join("nodes/app")).expect("list app") {
        let name = e.expect("entry").file_name().to_string_lossy().into_owned();
        if name.ends_with(".bak") {
            let data = fleet.read("app", &name);
            if String::from_utf8_lossy(&data).contains("PRIVATE KEY") {
                assert_eq!(fleet.mode("app", &name), 0o600, "backup {name}");
            }
        }
    }
}

#[test]
fn verify_reports_a_readable_copy_of_the_live_key_beside_it() {
    let fleet = Fleet::bootstrapped();
    fleet.write("db", "key.pem.bak", fleet.read("db", "key.pem"));
    fleet.chmod("db", "key.pem.bak", 0o644);
    // A closed copy and a readable file without a key are fine.
    fleet.write("db", "cert.pem.orig", fleet.read("db", "cert.pem"));
    fleet.chmod("db", "cert.pem.orig", 0o644);
    fleet.write("lb", "key.pem~", fleet.read("lb", "key.pem"));
    fleet.chmod("lb", "key.pem~", 0o600);

    let (code, report) = verify_json(&fleet);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(
        finding_kinds(&report, "db"),
        ["loose-key-copy"],
        "{report:#}"
    );
    assert!(finding_kinds(&report, "lb").is_empty(), "{report:#}");
    let text = report.to_string();
    assert!(
        text.contains("key.pem.bak on node db holds a private key and has mode 0644"),
        "{report:#}"
    );

    // A routine run does not delete the operator's file: it names it and fails.
    let out = fleet.run(&["apply", "--yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // The problems left alone are part of the run's outcome: stdout.
    assert!(stdout(&out).contains("key.pem.bak"), "{}", show(&out));
    assert!(fleet.path("db", "key.pem.bak").exists());
}
