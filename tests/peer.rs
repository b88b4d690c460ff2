//! End-to-end tests of `certroll-peer`: real processes, real TCP and TLS, certificates made
//! with rcgen. They pin down what the zero-downtime tests of certroll rely on: the peer counts
//! every handshake truthfully, reloads only when told to, refuses bad files while serving the
//! old ones, and a rollover done in the wrong order really shows up as failed handshakes.

mod support;

use support::peer_cli::*;

#[test]
fn one_ca_server_and_client_count_only_successes() {
    let t = Tmp::new();
    let ca = Ca::new("Test CA g1");
    let srv = t.files("srv", &[&ca], &ca.leaf("srv", &["localhost"]));
    let cli = t.files("cli", &[&ca], &ca.leaf("cli", &[]));
    let server = Peer::start(&t, "srv", &srv, &["--listen", "127.0.0.1:0"]);
    let client = Peer::start(&t, "cli", &cli, &["--target", &server.target("srv")]);

    let s = client.wait_for("20 handshakes", |s| {
        s["targets"]["srv"]["ok"].as_u64() >= Some(20)
    });
    assert_eq!(s["targets"]["srv"]["failed"], 0, "{s:#}");
    assert_eq!(s["targets"]["srv"]["unreachable"], 0, "{s:#}");
    // A bare TCP probe is not a handshake: the server must not count it as failed.
    drop(std::net::TcpStream::connect(server.addr()).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(100));
    let s = server.stats();
    assert!(s["server"]["ok"].as_u64() >= Some(20), "{s:#}");
    assert_eq!(s["server"]["failed"], 0, "{s:#}");

    let dir = client.state_dir.clone();
    client.stop();
    let last = read_stats_file(&dir);
    assert_eq!(last["running"], false, "{last:#}");
    assert!(
        last["targets"]["srv"]["ok"].as_u64() >= Some(20),
        "{last:#}"
    );
    assert!(
        !dir.join("control.sock").exists(),
        "the control socket must be removed on stop"
    );
}

#[test]
fn mutual_tls_accepts_known_clients_and_refuses_the_others() {
    let t = Tmp::new();
    let ca = Ca::new("Test CA g1");
    let stranger_ca = Ca::new("Stranger CA");
    let srv = t.files("srv", &[&ca], &ca.leaf("srv", &["localhost"]));
    let good = t.files("good", &[&ca], &ca.leaf("good", &[]));
    let bad = t.files("bad", &[&ca], &stranger_ca.leaf("bad", &[]));
    let server = Peer::start(
        &t,
        "srv",
        &srv,
        &["--listen", "127.0.0.1:0", "--require-client-cert"],
    );

    // A client that presents no certificate at all is refused and counted by the server.
    let refused = raw_handshake(&server.addr(), &ca.pem, None);
    assert!(
        refused.is_err(),
        "a client without a certificate must be refused"
    );
    let s = server.wait_for("the refusal", |s| s["server"]["failed"].as_u64() >= Some(1));
    let reason = s["server"]["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("no certificates"),
        "unexpected reason: {reason}"
    );

    let good = Peer::start(&t, "good", &good, &["--target", &server.target("srv")]);
    let s = good.wait_for("10 mutual handshakes", |s| {
        s["targets"]["srv"]["ok"].as_u64() >= Some(10)
    });
    assert_eq!(s["targets"]["srv"]["failed"], 0, "{s:#}");

    // A client whose certificate the server does not trust sees the server's refusal.
    let bad = Peer::start(&t, "bad", &bad, &["--target", &server.target("srv")]);
    let s = bad.wait_for("refused handshakes", |s| {
        s["targets"]["srv"]["failed"].as_u64() >= Some(3)
    });
    assert_eq!(s["targets"]["srv"]["ok"], 0, "{s:#}");
    let reason = s["targets"]["srv"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("UnknownCA"), "unexpected reason: {reason}");
    let s = server.stats();
    let reason = s["server"]["last_error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("UnknownIssuer"),
        "unexpected server reason: {reason}"
    );
}

#[test]
fn reload_picks_up_new_files_and_confirm_follows_it() {
    let t = Tmp::new();
    let ca = Ca::new("Test CA g1");
    let first = ca.leaf("srv", &["localhost"]);
    let srv = t.files("srv", &[&ca], &first);
    let server = Peer::start(&t, "srv", &srv, &["--listen", "127.0.0.1:0"]);
    assert_eq!(
        server.cli(&["confirm"]).code,
        0,
        "fresh peer serves the files on disk"
    );
    assert_eq!(
        raw_handshake(&server.addr(), &ca.pem, None).as_deref(),
        Ok(first.der())
    );

    let second = ca.leaf("srv", &["localhost"]);
    srv.write_leaf(&second);
    let out = server.cli(&["confirm"]);
    assert_eq!(
        out.code, 1,
        "files changed on disk but not reloaded: {out:?}"
    );
    assert!(
        out.stderr.contains(&srv.cert.display().to_string()),
        "{out:?}"
    );
    assert_eq!(
        raw_handshake(&server.addr(), &ca.pem, None).as_deref(),
        Ok(first.der()),
        "the peer must not pick up files before a reload"
    );

    // Commands find the peer only through the directory they are given, whatever path
    // leads there (as from another mount namespace).
    let alias = t.dir.path().join("alias");
    std::os::unix::fs::symlink(&server.state_dir, &alias).unwrap();
    let alias = alias.to_str().unwrap();
    let out = run_cli(&["reload", "--state-dir", alias]);
    assert_eq!(out.code, 0, "{out:?}");
    let new_hash = sha256_hex(second.cert_pem.as_bytes());
    assert!(out.stdout.contains(&new_hash), "{out:?}");
    assert_eq!(run_cli(&["confirm", "--state-dir", alias]).code, 0);
    assert_eq!(
        raw_handshake(&server.addr(), &ca.pem, None).as_deref(),
        Ok(second.der())
    );
    let s = server.stats();
    assert_eq!(
        s["loaded"]["cert_sha256"],
        sha256_hex(second.cert_pem.as_bytes())
    );
    assert_eq!(
        s["loaded"]["key_sha256"],
        sha256_hex(second.key_pem.as_bytes())
    );
    assert_eq!(s["loaded"]["bundle_sha256"], sha256_hex(ca.pem.as_bytes()));
    assert_eq!(s["reloads"]["ok"], 2, "initial load plus one reload: {s:#}");
}

#[test]
fn bad_files_on_reload_are_refused_and_the_old_ones_keep_serving() {
    let t = Tmp::new();
    let ca = Ca::new("Test CA g1");
    let leaf = ca.leaf("srv", &["localhost"]);
    let srv = t.files("srv", &[&ca], &leaf);
    let cli = t.files("cli", &[&ca], &ca.leaf("cli", &[]));
    let server = Peer::start(&t, "srv", &srv, &["--listen", "127.0.0.1:0"]);
    let client = Peer::start(&t, "cli", &cli, &["--target", &server.target("srv")]);
    client.wait_for("first handshakes", |s| {
        s["targets"]["srv"]["ok"].as_u64() >= Some(5)
    });

    // A key that is not PEM, then a valid key that does not match the certificate.
    let secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRET!!garbage\n-----END PRIVATE KEY-----\n";
    let other_key = ca.leaf("other", &["localhost"]).key_pem;
    for (bad_key, what) in [
        (secret.to_string(), "malformed"),
        (other_key, "does not match"),
    ] {
        std::fs::write(&srv.key, &bad_key).unwrap();
        let out = server.cli(&["reload"]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains(what), "{out:?}");
        assert!(
            !out.stderr.contains("TOPSECRET"),
            "key material leaked: {out:?}"
        );
        assert!(out.stderr.contains("node srv"), "{out:?}");
        assert_eq!(server.cli(&["confirm"]).code, 1);
        let before = client.stats()["targets"]["srv"]["ok"].as_u64().unwrap_or(0);
        let s = client.wait_for("handshakes on the old files", |s| {
            s["targets"]["srv"]["ok"].as_u64() >= Some(before + 10)
        });
        assert_eq!(s["targets"]["srv"]["failed"], 0, "{s:#}");
        assert_eq!(
            raw_handshake(&server.addr(), &ca.pem, None).as_deref(),
            Ok(leaf.der())
        );
    }
    let s = server.stats();
    assert_eq!(s["reloads"]["failed"], 2, "{s:#}");
    assert!(
        s["load_error"]
            .as_str()
            .unwrap_or_default()
            .contains("key.pem"),
        "{s:#}"
    );
    assert!(
        !s.to_string().contains("TOPSECRET"),
        "key material leaked into stats"
    );

    srv.write_leaf(&leaf);
    assert_eq!(server.cli(&["reload"]).code, 0);
    assert_eq!(server.cli(&["confirm"]).code, 0);
    assert_eq!(server.stats()["load_error"], serde_json::Value::Null);
}

/// Negative control: the mistake certroll exists to prevent must be visible to the peers.
#[test]
fn server_swapped_before_its_client_trusts_the_new_ca_fails_handshakes() {
    let t = Tmp::new();
    let old = Ca::new("Test CA g1");
    let new = Ca::new("Test CA g2");
    let srv = t.files("srv", &[&old], &old.leaf("srv", &["localhost"]));
    let cli = t.files("cli", &[&old], &old.leaf("cli", &[]));
    let server = Peer::start(&t, "srv", &srv, &["--listen", "127.0.0.1:0"]);
    let client = Peer::start(&t, "cli", &cli, &["--target", &server.target("srv")]);
    client.wait_for("handshakes with the old CA", |s| {
        s["targets"]["srv"]["ok"].as_u64() >= Some(5)
    });

    srv.write_leaf(&new.leaf("srv", &["localhost"]));
    assert_eq!(server.cli(&["reload"]).code, 0);
    let s = client.wait_for("failed handshakes", |s| {
        s["targets"]["srv"]["failed"].as_u64() >= Some(3)
    });
    let reason = s["targets"]["srv"]["last_error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.contains("UnknownIssuer"),
        "unexpected reason: {reason}"
    );
}

/// The same change in the safe order: trust first, then swap, then prune. Zero failures.
#[test]
fn safe_order_rollover_counts_zero_failures_in_both_directions() {
    let t = Tmp::new();
    let old = Ca::new("Test CA g1");
    let new = Ca::new("Test CA g2");
    let srv = t.files("srv", &[&old], &old.leaf("srv", &["localhost"]));
    let cli = t.files("cli", &[&old], &old.leaf("cli", &[]));
    let mutual = ["--listen", "127.0.0.1:0", "--require-client-cert"];
    let server = Peer::start(&t, "srv", &srv, &mutual);
    let client = Peer::start(&t, "cli", &cli, &["--target", &server.target("srv")]);
    let progress = |what: &str| {
        let before = client.stats()["targets"]["srv"]["ok"].as_u64().unwrap_or(0);
        client.wait_for(what, |s| {
            s["targets"]["srv"]["ok"].as_u64() >= Some(before + 10)
        })
    };
    progress("handshakes with the old CA");

    // trust-add on both sides (each verifies the other in mutual TLS)
    for (files, peer) in [(&cli, &client), (&srv, &server)] {
        files.write_bundle(&[&old, &new]);
        assert_eq!(peer.cli(&["reload"]).code, 0);
        progress("handshakes after trust-add");
    }
    // leaf-swap on both sides
    let new_srv = new.leaf("srv", &["localhost"]);
    for (files, peer, leaf) in [
        (&srv, &server, new_srv.clone()),
        (&cli, &client, new.leaf("cli", &[])),
    ] {
        files.write_leaf(&leaf);
        assert_eq!(peer.cli(&["reload"]).code, 0);
        progress("handshakes after leaf-swap");
    }
    // trust-prune on both sides
    for (files, peer) in [(&cli, &client), (&srv, &server)] {
        files.write_bundle(&[&new]);
        assert_eq!(peer.cli(&["reload"]).code, 0);
        progress("handshakes after trust-prune");
    }
    let s = client.stats();
    assert_eq!(s["targets"]["srv"]["failed"], 0, "{s:#}");
    assert_eq!(s["targets"]["srv"]["unreachable"], 0, "{s:#}");
    assert_eq!(server.stats()["server"]["failed"], 0);
    assert_eq!(server.cli(&["confirm"]).code, 0);
    let served = raw_handshake(&server.addr(), &new.pem, Some(&new.leaf("probe", &[])));
    assert_eq!(served.as_deref(), Ok(new_srv.der()));
}

#[test]
fn missing_files_at_start_serve_and_count_nothing_until_a_reload() {
    let t = Tmp::new();
    let ca = Ca::new("Test CA g1");
    let srv = t.missing_files("srv");
    let cli = t.missing_files("cli");
    let server = Peer::start(&t, "srv", &srv, &["--listen", "127.0.0.1:0"]);
    let client = Peer::start(&t, "cli", &cli, &["--target", &server.target("srv")]);
    let s = server.stats();
    assert_eq!(s["loaded"], serde_json::Value::Null, "{s:#}");
    let err = s["load_error"].as_str().unwrap_or_default();
    assert!(
        err.contains("failed to read trust bundle") && err.contains("node srv"),
        "{err}"
    );
    assert!(raw_handshake(&server.addr(), &ca.pem, None).is_err());
    assert_eq!(server.cli(&["confirm"]).code, 1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let s = client.stats();
    assert_eq!(s["targets"]["srv"]["ok"], 0, "{s:#}");
    assert_eq!(s["targets"]["srv"]["failed"], 0, "{s:#}");
    assert_eq!(server.stats()["server"]["failed"], 0);

    srv.write_bundle(&[&ca]);
    srv.write_leaf(&ca.leaf("srv", &["localhost"]));
    cli.write_bundle(&[&ca]);
    cli.write_leaf(&ca.leaf("cli", &[]));
    assert_eq!(server.cli(&["reload"]).code, 0);
    assert_eq!(client.cli(&["reload"]).code, 0);
    let s = client.wait_for("handshakes after the reload", |s| {
        s["targets"]["srv"]["ok"].as_u64() >= Some(5)
    });
    assert_eq!(s["targets"]["srv"]["failed"], 0, "{s:#}");
    assert_eq!(server.cli(&["confirm"]).code, 0);
}

#[test]
fn a_closed_port_counts_as_unreachable_not_as_a_failed_handshake() {
    let t = Tmp::new();
    let ca = Ca::new("Test CA g1");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cli = t.files("cli", &[&ca], &ca.leaf("cli", &[]));
    let target = format!("down=127.0.0.1:{port}@localhost");
    let client = Peer::start(&t, "cli", &cli, &["--target", &target]);
    let s = client.wait_for("unreachable attempts", |s| {
        s["targets"]["down"]["unreachable"].as_u64() >= Some(3)
    });
    assert_eq!(s["targets"]["down"]["failed"], 0, "{s:#}");
    assert_eq!(s["targets"]["down"]["ok"], 0, "{s:#}");
    let reason = s["targets"]["down"]["last_unreachable"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("refused"), "unexpected reason: {reason}");
}

#[test]
fn commands_without_a_running_peer_say_so_and_stats_fall_back_to_the_file() {
    let t = Tmp::new();
    let ca = Ca::new("Test CA g1");
    let srv = t.files("srv", &[&ca], &ca.leaf("srv", &["localhost"]));
    let server = Peer::start(&t, "srv", &srv, &["--listen", "127.0.0.1:0"]);
    let second = run_cli(&[
        "run",
        "--state-dir",
        server.state_dir.to_str().unwrap(),
        "--bundle",
        srv.bundle.to_str().unwrap(),
        "--cert",
        srv.cert.to_str().unwrap(),
        "--key",
        srv.key.to_str().unwrap(),
    ]);
    assert_eq!(
        second.code, 1,
        "a second peer on the same state directory must refuse: {second:?}"
    );
    assert!(second.stderr.contains("control.sock"), "{second:?}");

    let dir = server.state_dir.clone();
    server.stop();
    let dir_arg = dir.to_str().unwrap();
    for command in ["reload", "confirm", "stop"] {
        let out = run_cli(&[command, "--state-dir", dir_arg]);
        assert_eq!(out.code, 75, "{command} without a peer: {out:?}");
        assert!(out.stderr.contains("control.sock"), "{out:?}");
    }
    let out = run_cli(&["stats", "--state-dir", dir_arg]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("node srv") && out.stdout.contains("stopped"),
        "{out:?}"
    );
}

/// A client that loaded its files before its server (the bootstrap window of a fleet) must
/// count the server as unreachable, not as failed handshakes: the unloaded server used to
/// accept and drop connections, resetting them mid-handshake (`Connection reset by peer`),
/// which made `scripts/demo-live.sh` fail on a busy machine.
#[test]
fn an_unloaded_server_refuses_connections_so_clients_count_it_unreachable_not_failed() {
    let t = Tmp::new();
    let ca = Ca::new("Test CA g1");
    let srv = t.missing_files("srv");
    let cli = t.files("cli", &[&ca], &ca.leaf("cli", &[]));
    let server = Peer::start(&t, "srv", &srv, &["--listen", "127.0.0.1:0"]);
    let client = Peer::start(&t, "cli", &cli, &["--target", &server.target("srv")]);
    let s = client.wait_for("attempts against the unloaded server", |s| {
        s["targets"]["srv"]["unreachable"].as_u64() >= Some(10)
    });
    assert_eq!(s["targets"]["srv"]["failed"], 0, "{s:#}");
    let reason = s["targets"]["srv"]["last_unreachable"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("refused"), "unexpected reason: {reason}");

    // Once the server loads its files it listens on the same port, and handshakes succeed.
    srv.write_bundle(&[&ca]);
    srv.write_leaf(&ca.leaf("srv", &["localhost"]));
    assert_eq!(server.cli(&["reload"]).code, 0);
    let s = client.wait_for("handshakes after the server loaded", |s| {
        s["targets"]["srv"]["ok"].as_u64() >= Some(5)
    });
    assert_eq!(s["targets"]["srv"]["failed"], 0, "{s:#}");
    assert_eq!(server.stats()["server"]["failed"], 0);
}

/// A taken `--listen` port stops `run` (after a few seconds of retries) with the system's reason.
#[test]
fn a_taken_listen_port_fails_run_with_address_in_use() {
    let t = Tmp::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let srv = t.missing_files("srv");
    let dir = t.dir.path().join("srv-peer");
    let listen = format!("127.0.0.1:{port}");
    let out = run_cli(&[
        "run",
        "--state-dir",
        &dir.display().to_string(),
        "--bundle",
        &srv.bundle.display().to_string(),
        "--cert",
        &srv.cert.display().to_string(),
        "--key",
        &srv.key.display().to_string(),
        "--listen",
        &listen,
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("Address already in use") && out.stderr.contains(&listen),
        "{out:?}"
    );
}
