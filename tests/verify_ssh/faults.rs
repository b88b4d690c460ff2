//! One fault at a time on a healthy fleet, made through a node's host directory (or by
//! stopping or re-keying its sshd): verify reports the fault's own finding on that node,
//! the links it breaks, and the exit code of its severity.

use certroll::exit;

use crate::support::verify_kit::{
    expired_leaf_pem, foreign_root, leaf_with_names, unrelated_key_pem, FleetSpec, TlsFile,
    VerifyFleet,
};
use crate::support::verify_report::VerifyReport;

fn healthy() -> VerifyFleet {
    FleetSpec::standard().bootstrap()
}

/// The finding's `message` (every finding has one).
fn message<'a>(r: &'a VerifyReport, node: &str, kind: &str) -> &'a str {
    r.finding(node, kind)["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{kind} finding without a message\n{}", r.run))
}

#[test]
fn bundle_of_another_ca_breaks_the_links_it_verifies() {
    let f = healthy();
    let foreign = foreign_root(&f.ca_spec(), "CN=Somebody Else CA");
    f.write("lb1", TlsFile::Bundle, &foreign.cert_pem);

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    r.expect_findings_only_on("lb1", &["foreign-anchor", "missing-current-anchor"]);
    assert_eq!(
        r.finding("lb1", "foreign-anchor")["subject"],
        "CN=Somebody Else CA G1",
        "{}",
        r.run
    );
    assert_eq!(r.node("lb1")["anchors"][0]["generation"], "unknown");
    r.expect_link_failed("lb1", "app1", "client", "unknown-issuer");
    r.expect_link_ok("app1", "db1");
    assert_eq!(r.safe(), Some(false), "{}", r.run);
}

#[test]
fn expired_leaf_is_critical_and_fails_both_its_links() {
    let f = healthy();
    let key = String::from_utf8(f.read("app1", TlsFile::Key)).unwrap();
    let pem = expired_leaf_pem(&f.current_ca(), "app1", &["app1.internal"], &key);
    f.write("app1", TlsFile::Cert, pem);

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    r.expect_findings_only_on("app1", &["expired"]);
    let not_after = r.finding("app1", "expired")["not_after"]
        .as_str()
        .expect("not_after is RFC 3339 text");
    let when =
        time::OffsetDateTime::parse(not_after, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("not_after {not_after:?}: {e}\n{}", r.run));
    assert!(when < time::OffsetDateTime::now_utc(), "{}", r.run);
    // lb1 refuses app1 as a server; db1 refuses app1 as a mutual-TLS client.
    r.expect_link_failed("lb1", "app1", "client", "expired");
    r.expect_link_failed("app1", "db1", "server", "expired");
}

#[test]
fn key_of_another_certificate_is_a_key_mismatch() {
    let f = healthy();
    f.write("db1", TlsFile::Key, unrelated_key_pem());

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    r.expect_findings_only_on("db1", &["key-mismatch"]);
    let finding = r.finding("db1", "key-mismatch");
    assert_eq!(finding["key"], f.remote_path(TlsFile::Key), "{}", r.run);
    assert_eq!(finding["cert"], f.remote_path(TlsFile::Cert), "{}", r.run);
    assert!(
        !r.run.stdout.contains("PRIVATE KEY"),
        "no key material in the report\n{}",
        r.run
    );
    assert_eq!(r.link("app1", "db1")["status"], "critical", "{}", r.run);
    r.expect_link_ok("lb1", "app1");
}

#[test]
fn corrupt_certificate_is_reported_with_its_file() {
    let f = healthy();
    f.write(
        "app1",
        TlsFile::Cert,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    );

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    r.expect_findings_only_on("app1", &["corrupt"]);
    let finding = r.finding("app1", "corrupt");
    assert_eq!(finding["file"], TlsFile::Cert.finding_label(), "{}", r.run);
    assert_eq!(finding["path"], f.remote_path(TlsFile::Cert), "{}", r.run);
    assert_eq!(r.link("lb1", "app1")["result"], "failed", "{}", r.run);
    assert_eq!(r.link("app1", "db1")["result"], "failed", "{}", r.run);
}

#[test]
fn missing_key_is_reported_with_its_file() {
    let f = healthy();
    f.remove("db1", TlsFile::Key);

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    r.expect_findings_only_on("db1", &["missing"]);
    let finding = r.finding("db1", "missing");
    assert_eq!(finding["file"], TlsFile::Key.finding_label(), "{}", r.run);
    assert_eq!(finding["path"], f.remote_path(TlsFile::Key), "{}", r.run);
    assert!(
        message(&r, "db1", "missing").contains("db1"),
        "the message names the node\n{}",
        r.run
    );
    assert_eq!(r.link("app1", "db1")["result"], "failed", "{}", r.run);
    r.expect_link_ok("lb1", "app1");
}

#[test]
fn leaf_without_the_servers_name_fails_its_clients() {
    let f = healthy();
    let leaf = leaf_with_names(&f.ca_spec(), &f.current_ca(), "app1", &["other.internal"]);
    f.write("app1", TlsFile::Cert, &leaf.cert_pem);
    f.write("app1", TlsFile::Key, &leaf.key_pem);

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    r.expect_findings_only_on("app1", &["name-not-covered"]);
    let finding = r.finding("app1", "name-not-covered");
    assert_eq!(finding["missing"], serde_json::json!(["app1.internal"]));
    assert_eq!(finding["breaks_links"], true, "{}", r.run);
    assert_eq!(finding["severity"], "critical", "{}", r.run);
    r.expect_link_failed("lb1", "app1", "client", "name-mismatch");
    // As a mutual-TLS client app1's name is not checked: that link still handshakes.
    r.expect_link_ok("app1", "db1");
}

#[test]
fn stopped_node_is_unreachable_and_its_links_skipped() {
    let f = healthy();
    f.fleet.stop("db1");

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_UNKNOWN, "{}", r.run);
    assert_eq!(r.status(), "unknown", "{}", r.run);
    r.expect_findings_only_on("db1", &["unreachable"]);
    assert_eq!(r.phase("db1"), "unknown", "{}", r.run);
    let link = r.link("app1", "db1");
    assert_eq!(link["result"], "skipped", "{}", r.run);
    assert_eq!(link["status"], "unknown", "{}", r.run);
    r.expect_link_ok("lb1", "app1");
    assert_eq!(r.safe(), None, "a link could not be tried\n{}", r.run);
}

#[test]
fn changed_host_key_is_unreachable_and_says_so() {
    let f = healthy();
    f.fleet.change_host_key("app1");

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_UNKNOWN, "{}", r.run);
    r.expect_findings_only_on("app1", &["unreachable"]);
    let text = message(&r, "app1", "unreachable").to_lowercase();
    assert!(
        text.contains("host key") && text.contains("changed"),
        "the message says the host key changed\n{}",
        r.run
    );
    assert_eq!(r.link("lb1", "app1")["result"], "skipped", "{}", r.run);
    assert_eq!(r.link("app1", "db1")["result"], "skipped", "{}", r.run);
}

#[test]
fn world_readable_key_is_critical() {
    let f = healthy();
    f.chmod("lb1", TlsFile::Key, 0o644);

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    r.expect_findings_only_on("lb1", &["key-mode"]);
    let finding = r.finding("lb1", "key-mode");
    assert_eq!(finding["mode"], "0644", "{}", r.run);
    assert_eq!(finding["severity"], "critical", "{}", r.run);
    assert_eq!(r.node("lb1")["key_mode"], "0644", "{}", r.run);
    // The files themselves are fine: every link still handshakes.
    r.expect_link_ok("lb1", "app1");
    r.expect_link_ok("app1", "db1");

    // Group-readable only is a warning.
    f.chmod("lb1", TlsFile::Key, 0o640);
    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_WARNING, "{}", r.run);
    assert_eq!(r.finding("lb1", "key-mode")["severity"], "warning");
}

/// Issue 9, item 6, over SSH: a readable copy of the key beside it (listed through SFTP)
/// and a private key appended to the public certificate are both critical.
#[test]
fn private_keys_outside_the_key_file_are_critical() {
    let f = healthy();
    let key = f.read("app1", TlsFile::Key);
    let copy = f.path("app1", TlsFile::Key).with_extension("pem.bak");
    std::fs::write(&copy, &key).expect("write the copy");
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("open the copy");
    let mut cert = f.read("db1", TlsFile::Cert);
    cert.extend_from_slice(&f.read("db1", TlsFile::Key));
    f.write("db1", TlsFile::Cert, &cert);

    let r = f.verify_json(&[]);
    assert_eq!(r.code(), exit::VERIFY_CRITICAL, "{}", r.run);
    let text = message(&r, "app1", "loose-key-copy");
    assert!(
        text.contains("key.pem.bak") && text.contains("mode 0644"),
        "{text}\n{}",
        r.run
    );
    assert_eq!(
        r.finding("db1", "key-in-public-file")["severity"],
        "critical"
    );
    assert!(
        !r.run.to_string().contains("PRIVATE KEY-----"),
        "no key material in the report"
    );
}
