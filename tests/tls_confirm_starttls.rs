//! certroll's built-in TLS confirm and `verify --live` through the protocols spoken before
//! TLS (`starttls = "mysql"`, `"smtp"`, `"imap"`, `"ldap"`), through the real binary on
//! local nodes, against test servers that speak just enough of each protocol before they
//! hand the socket to their TLS server (`support::hostile_tls`, `support::starttls_server`).
//!
//! An honest server passes the confirm of every step and `verify --live`; a server that
//! does not offer TLS is refused in words that say so; a server that drips its preamble
//! is cut by the one deadline of the look; a huge length field or a line that never ends
//! is refused at once, without waiting for (or allocating) what it announces.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;
use support::hostile_tls::{
    bootstrapped, certroll, db_proofs, node_dir, write_inventory_starttls, Behaviour, Preamble,
    Tls, TlsServer,
};

/// Generous for a loaded machine, small next to the timeouts the tests set.
const MARGIN: Duration = Duration::from_secs(3);

/// A TLS 1.3 server for db's files that speaks `preamble` first.
fn server(dir: &Path, preamble: Preamble) -> TlsServer {
    TlsServer::with_preamble(&node_dir(dir, "db"), Tls::V13, Behaviour::Honest, preamble)
}

#[test]
fn mysql_smtp_imap_and_ldap_starttls_pass_the_confirm_and_verify_live() {
    for (starttls, preamble) in [
        ("mysql", Preamble::Mysql { ssl: true }),
        ("smtp", Preamble::Smtp { starttls: true }),
        ("imap", Preamble::Imap),
        ("ldap", Preamble::Ldap),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = server(dir.path(), preamble);
        write_inventory_starttls(dir.path(), Some(server.port), starttls, "20s");
        certroll(dir.path(), &["apply", "--yes"]).expect_code(0);
        certroll(dir.path(), &["apply", "--rotate", "--yes"])
            .expect_code(0)
            .expect_output("chain, key and handshake proven (TLS 1.3)");
        let proofs = db_proofs(dir.path());
        assert!(proofs.len() >= 2, "{starttls}: {proofs:?}");
        for proof in &proofs {
            assert_eq!(
                proof,
                &format!(
                    "TLS at 127.0.0.1:{}: chain, key and handshake proven (TLS 1.3)",
                    server.port
                ),
                "{starttls}"
            );
        }
        certroll(dir.path(), &["verify", "--live"]).expect_code(0);
    }
}

#[test]
fn a_mysql_server_without_the_tls_capability_is_refused_clearly() {
    let dir = bootstrapped();
    let server = server(dir.path(), Preamble::Mysql { ssl: false });
    write_inventory_starttls(dir.path(), Some(server.port), "mysql", "2s");
    certroll(dir.path(), &["verify", "--live"])
        .expect_code(2)
        .expect_output(&format!(
            "node db at 127.0.0.1:{} (as reached from the node): the MySQL server (version \
             \"5.5.5-10.11.0-MariaDB-test\") does not offer TLS",
            server.port
        ));
    let run = certroll(dir.path(), &["apply", "--rotate", "--yes"]);
    run.expect_code(75);
    let error = support::hostile_tls::db_failure(dir.path(), &run);
    assert!(error.contains("does not offer TLS"), "{error}");
}

#[test]
fn an_smtp_server_without_starttls_in_its_ehlo_reply_is_refused_clearly() {
    let dir = bootstrapped();
    let server = server(dir.path(), Preamble::Smtp { starttls: false });
    write_inventory_starttls(dir.path(), Some(server.port), "smtp", "2s");
    certroll(dir.path(), &["verify", "--live"])
        .expect_code(2)
        .expect_output(
            "the SMTP server does not offer STARTTLS: its answer to EHLO lists \
             \"PIPELINING 8BITMIME\"",
        );
}

#[test]
fn a_dripping_mysql_or_smtp_preamble_is_bounded_by_the_probe_timeout() {
    let mysql_greeting = [&[0x60u8, 0, 0, 0, 10][..], &[b'5'; 60]].concat();
    let smtp_greeting = b"220-mx.test ".repeat(5);
    for (starttls, bytes) in [("mysql", mysql_greeting), ("smtp", smtp_greeting)] {
        let dir = bootstrapped();
        let drip = Preamble::Drip(bytes, Duration::from_millis(500));
        let server = server(dir.path(), drip);
        write_inventory_starttls(dir.path(), Some(server.port), starttls, "3s");
        let start = Instant::now();
        let run = certroll(dir.path(), &["verify", "--live", "--probe-timeout", "3s"]);
        let took = start.elapsed();
        run.expect_code(2)
            .expect_output("no complete TLS handshake within 3s");
        assert!(
            took < Duration::from_secs(3) + MARGIN,
            "{starttls}: took {took:?}\n{run}"
        );
        assert_eq!(server.connections(), 1, "{starttls}\n{run}");
    }
}

#[test]
fn a_huge_length_field_or_an_endless_line_is_refused_at_once() {
    let endless_line = vec![b'2'; 64 * 1024];
    let endless_reply = b"220-more\r\n".repeat(1000);
    for (starttls, bytes, says) in [
        (
            "mysql",
            vec![0xff, 0xff, 0xff, 0x00, 10],
            "the server's first packet announces 16777215 bytes, not a MySQL handshake packet",
        ),
        (
            "ldap",
            vec![0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02],
            "the LDAP server's answer to StartTLS announces 2147483647 bytes",
        ),
        ("smtp", endless_line, "a line longer than 2048 bytes"),
        ("smtp", endless_reply, "did not end within 100 lines"),
    ] {
        let dir = bootstrapped();
        let server = server(dir.path(), Preamble::Raw(bytes));
        write_inventory_starttls(dir.path(), Some(server.port), starttls, "20s");
        let start = Instant::now();
        let run = certroll(dir.path(), &["verify", "--live", "--probe-timeout", "20s"]);
        let took = start.elapsed();
        run.expect_code(2).expect_output(says);
        assert!(took < MARGIN * 2, "{starttls}: took {took:?}\n{run}");
    }
}
