//! `os_trust` over SSH (docs/layout.md#the-operating-systems-trust-store): the CA's anchors
//! installed as one file each in the node's anchors directory (here a directory of the test
//! through `os_trust_dir`) and the update command (here a script that records each run)
//! run after the switch and before the reload; the old anchor's file removed at the
//! trust-prune; `verify` finds a directory that differs; a node without the update command
//! refused with exit 78 before anything changes.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::on_node;
use crate::stores::recipe;
use crate::support::cli::{pem_certs, Control};
use crate::support::inventory::{FleetInventory, BUNDLE, CERT};
use crate::support::Fleet;

const ANCHORS: &str = "/srv/certroll-node/os-anchors";
const UPDATE: &str = "/srv/certroll-node/bin/update-trust";
const LOG: &str = "/srv/certroll-node/order.log";

fn inventory<'a>(fleet: &'a Fleet, update: &str) -> FleetInventory<'a> {
    FleetInventory::new(fleet)
        .node_key("lb1", "os_trust", "debian")
        .node_key("lb1", "os_trust_dir", ANCHORS)
        .node_key("lb1", "os_trust_update", update)
        .node_key("lb1", "reload", &format!("echo reload >> {LOG}"))
        .mutual_link("lb1", "app1")
}

/// The recording update command: one line `update N` (N anchor files seen) per run.
fn install_update(fleet: &Fleet) {
    let p = on_node(fleet, "lb1", UPDATE);
    fs::create_dir_all(p.parent().expect("a directory")).expect("bin directory");
    fs::write(
        &p,
        format!("#!/bin/sh\nset -- {ANCHORS}/certroll-internal-anchor-*.crt\necho \"update $#\" >> {LOG}\n"),
    )
    .expect("write the update script");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The anchor files of the directory, sorted, with the DER each holds.
fn anchor_files(fleet: &Fleet) -> Vec<(String, Vec<u8>)> {
    let dir = on_node(fleet, "lb1", ANCHORS);
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .expect("the anchors directory")
        .map(|e| e.expect("entry"))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(e.path()).expect("stat");
            assert!(meta.is_file(), "{name} is a regular file");
            assert_eq!(meta.permissions().mode() & 0o777, 0o644, "{name} is 0644");
            let certs = pem_certs(&e.path());
            assert_eq!(certs.len(), 1, "{name} holds one certificate");
            (name, certs[0].der.clone())
        })
        .collect();
    out.sort();
    out
}

fn log(fleet: &Fleet) -> Vec<String> {
    fs::read_to_string(on_node(fleet, "lb1", LOG))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn os_trust_anchors_follow_the_bundle_and_the_update_runs_before_each_reload() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    install_update(&fleet);
    let ctl = Control::new(&fleet, &inventory(&fleet, UPDATE));
    ctl.apply_ok(&[]).expect_output("complete");
    let files = anchor_files(&fleet);
    let bundle = pem_certs(&on_node(&fleet, "lb1", BUNDLE));
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        files[0].1, bundle[0].der,
        "the file holds the bundle's anchor"
    );
    assert!(files[0].0.starts_with("certroll-internal-anchor-") && files[0].0.ends_with(".crt"));
    assert_eq!(
        log(&fleet),
        ["update 1", "reload"],
        "the update ran once, before the reload"
    );
    ctl.certroll(&["verify"]).expect_code(0);

    fs::remove_file(on_node(&fleet, "lb1", LOG)).expect("clear the log");
    let run = ctl.apply_ok(&["--rotate"]);
    run.expect_output("rotation of CA internal complete");
    let after = anchor_files(&fleet);
    let bundle = pem_certs(&on_node(&fleet, "lb1", BUNDLE));
    assert_eq!(
        after.len(),
        1,
        "the old anchor's file went at the prune: {after:?}"
    );
    assert_eq!(after[0].1, bundle[0].der, "the new anchor");
    assert_ne!(after[0].0, files[0].0);
    // trust-add (2 anchors) then, after the leaf's switch (no update: nothing changed),
    // the prune (1 anchor): each update right before that step's reload.
    let l = log(&fleet);
    let updates: Vec<&String> = l.iter().filter(|x| x.starts_with("update")).collect();
    assert_eq!(updates, ["update 2", "update 1"], "{l:?}");
    for (i, line) in l.iter().enumerate() {
        if line.starts_with("update") {
            assert_eq!(l.get(i + 1).map(String::as_str), Some("reload"), "{l:?}");
        }
    }
    assert!(!pem_certs(&on_node(&fleet, "lb1", CERT)).is_empty());
    ctl.certroll(&["verify"]).expect_code(0);

    // A stale certroll file, and a missing one: verify names the directory, in JSON too.
    let stale = on_node(&fleet, "lb1", &format!("{ANCHORS}/{}", files[0].0));
    fs::write(&stale, pem_of(&files[0].1)).expect("plant the old anchor again");
    fs::remove_file(on_node(&fleet, "lb1", &format!("{ANCHORS}/{}", after[0].0)))
        .expect("remove the current one");
    let v = ctl.certroll(&["verify", "--format", "json"]);
    assert_ne!(v.code, 0, "{v}");
    assert!(
        v.stdout.contains("os-trust-differs") && v.stdout.contains(ANCHORS),
        "{v}"
    );
    assert!(
        v.stdout.contains(&files[0].0) && v.stdout.contains(&after[0].0),
        "{v}"
    );
    let v = ctl.certroll(&["verify"]);
    assert_ne!(v.code, 0, "{v}");
    v.expect_output(&format!("OS trust directory {ANCHORS} on node lb1"));
}

fn pem_of(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

#[test]
fn os_trust_without_its_update_command_stops_apply_with_exit_78_before_anything_changes() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let missing = "/srv/certroll-node/bin/no-such-update-ca-certificates";
    let ctl = Control::new(&fleet, &inventory(&fleet, missing));
    let run = ctl.certroll(&["apply", "--yes"]);
    run.expect_code(78)
        .expect_output("lb1")
        .expect_output("no-such-update-ca-certificates");
    assert!(
        !on_node(&fleet, "lb1", BUNDLE).exists(),
        "nothing was written\n{run}"
    );
    assert!(
        !on_node(&fleet, "app1", BUNDLE).exists(),
        "nothing was written\n{run}"
    );
    assert!(
        !on_node(&fleet, "lb1", ANCHORS).exists(),
        "no anchors directory\n{run}"
    );
}

/// The real Debian `update-ca-certificates`, pointed at a private tree of the node's
/// directory (never the machine's /etc/ssl): after bootstrap `openssl verify -CApath` of
/// the tree it builds trusts the CA; after a rotation, the new CA and not the old one; the
/// recipe's curl (docs/recipes.md, "An OS-trust client") trusts the CA with no --cacert.
#[test]
fn the_real_update_ca_certificates_trusts_the_new_ca_and_after_the_prune_not_the_old_one() {
    let update = "/usr/sbin/update-ca-certificates";
    assert!(
        std::path::Path::new(update).exists(),
        "{update} is installed (the ca-certificates package)"
    );
    let fleet = Fleet::start(&["lb1", "app1"]);
    let root = "/srv/certroll-node/osroot";
    for d in ["share", "etc", "hooks"] {
        fs::create_dir_all(on_node(&fleet, "lb1", &format!("{root}/{d}"))).expect("tree");
    }
    fs::write(
        on_node(&fleet, "lb1", &format!("{root}/ca-certificates.conf")),
        "",
    )
    .expect("empty certsconf");
    // The reload probes the hashed directory from the node: each leaf trusted or not.
    let probe = on_node(&fleet, "lb1", "/srv/certroll-node/bin/probe");
    fs::create_dir_all(probe.parent().expect("bin")).expect("bin directory");
    fs::write(
        &probe,
        format!(
            "#!/bin/sh\nfor f in /srv/certroll-node/old.pem {CERT}; do\n  [ -f \"$f\" ] || continue\n  if openssl verify -CApath {root}/etc \"$f\" >/dev/null 2>&1; then echo \"trusts ${{f##*/}}\"; else echo \"rejects ${{f##*/}}\"; fi\ndone >> {LOG}\n"
        ),
    )
    .expect("probe");
    fs::set_permissions(&probe, fs::Permissions::from_mode(0o755)).expect("chmod");
    let command = format!(
        "{update} --fresh --certsconf {root}/ca-certificates.conf --certsdir {root}/share --localcertsdir {ANCHORS} --etccertsdir {root}/etc --hooksdir {root}/hooks"
    );
    // The recipe's node table gives lb1 its os_trust (docs/recipes.md, "An OS-trust client").
    let table: toml::Table = toml::from_str(&recipe("os-trust")).expect("the recipe is TOML");
    let family = table["nodes"]["worker2"]["os_trust"]
        .as_str()
        .expect("os_trust in the recipe");
    let inv = inventory(&fleet, &command)
        .node_key("lb1", "os_trust", family)
        .node_key("lb1", "reload", "/srv/certroll-node/bin/probe");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]).expect_output("complete");
    assert_eq!(
        log(&fleet),
        ["trusts cert.pem"],
        "the bootstrap's anchor is trusted"
    );
    let system_bundle = on_node(&fleet, "lb1", &format!("{root}/etc/ca-certificates.crt"));
    assert_eq!(
        pem_certs(&system_bundle).len(),
        1,
        "the system bundle holds the anchor"
    );

    // The leaf of the first CA, kept to be checked after the prune.
    fs::copy(
        on_node(&fleet, "lb1", CERT),
        on_node(&fleet, "lb1", "/srv/certroll-node/old.pem"),
    )
    .expect("keep the old leaf");
    fs::remove_file(on_node(&fleet, "lb1", LOG)).expect("clear the log");
    ctl.apply_ok(&["--rotate"])
        .expect_output("rotation of CA internal complete");
    let l = log(&fleet);
    assert_eq!(
        l[l.len() - 2..],
        ["rejects old.pem", "trusts cert.pem"],
        "after the prune the old CA is no longer trusted, the new one is: {l:?}"
    );
    assert!(
        l.contains(&"trusts old.pem".to_string()),
        "before the prune it was: {l:?}"
    );
    let bundle = pem_certs(&on_node(&fleet, "lb1", BUNDLE));
    let system = pem_certs(&system_bundle);
    assert_eq!(system.len(), 1);
    assert_eq!(
        system[0].der, bundle[0].der,
        "the system bundle holds the new anchor alone"
    );
    ctl.certroll(&["verify"]).expect_code(0);
    recipe_curl_trusts_the_ca(&fleet, &system_bundle);
}

/// The recipe's curl, without --cacert, trusting the CA through the system bundle
/// update-ca-certificates built (`CURL_CA_BUNDLE` names it, as /etc/ssl/certs would be).
fn recipe_curl_trusts_the_ca(fleet: &Fleet, system_bundle: &std::path::Path) {
    let command = recipe("os-trust-client");
    let command = command.trim();
    assert!(!command.contains("--cacert"), "{command}");
    let cert = on_node(fleet, "lb1", CERT);
    let name = pem_certs(&cert)[0].sans[0].clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut server = std::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(on_node(fleet, "lb1", crate::support::inventory::KEY))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let url = format!("https://{name}:{port}/");
    let command = command.replace("https://nginx1.internal:8443/", &url);
    let mut ok = None;
    for _ in 0..50 {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{command} --resolve {name}:{port}:127.0.0.1"))
            .env("CURL_CA_BUNDLE", system_bundle)
            .env_remove("SSL_CERT_FILE")
            .output()
            .expect("curl");
        if out.status.success() {
            ok = Some(out);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Without that trust the same curl fails: the check proves something.
    let untrusted = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{command} --resolve {name}:{port}:127.0.0.1"))
        .env("CURL_CA_BUNDLE", "/dev/null")
        .output()
        .expect("curl");
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        ok.is_some(),
        "curl without --cacert trusts the CA through the system bundle"
    );
    assert!(!untrusted.status.success(), "{untrusted:?}");
}

/// certroll killed (kill -9) while the trust-add's update command runs, after the anchors
/// are in place: the resumed run sees the files in place and runs the update again (the
/// store's pending mark says it never exited 0), before the reload, and completes.
#[test]
fn a_run_killed_during_the_os_trust_update_runs_it_again_when_resumed() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let p = on_node(&fleet, "lb1", UPDATE);
    fs::create_dir_all(p.parent().expect("a directory")).expect("bin directory");
    let (hang, started) = ("/srv/certroll-node/hang", "/srv/certroll-node/started");
    fs::write(
        &p,
        format!(
            "#!/bin/sh\nif [ -e {hang} ]; then rm -f {hang}; : > {started}; sleep 20; exit 1; fi\nset -- {ANCHORS}/certroll-internal-anchor-*.crt\necho \"update $#\" >> {LOG}\n"
        ),
    )
    .expect("write the update script");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    let ctl = Control::new(&fleet, &inventory(&fleet, UPDATE));
    ctl.apply_ok(&[]).expect_output("complete");
    fs::write(on_node(&fleet, "lb1", hang), "").expect("hang the next update");
    fs::remove_file(on_node(&fleet, "lb1", LOG)).expect("clear the log");
    let bg = ctl.spawn(&["apply", "--yes", "--rotate"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !on_node(&fleet, "lb1", started).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the update did not start in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let killed = std::process::Command::new("kill")
        .args(["-9", &bg.pid().to_string()])
        .status()
        .expect("kill -9");
    assert!(killed.success());
    let first = bg.wait();
    assert!(!first.output().contains("complete"), "{first}");
    assert_eq!(
        anchor_files(&fleet).len(),
        2,
        "the trust-add's anchors are in place"
    );
    assert!(log(&fleet).is_empty(), "no update finished, no reload ran");
    let resumed = ctl.apply_ok(&[]);
    resumed.expect_output("complete");
    let l = log(&fleet);
    assert_eq!(
        l.first().map(String::as_str),
        Some("update 2"),
        "the resumed step ran the update again first: {l:?}\n{resumed}"
    );
    assert_eq!(l.get(1).map(String::as_str), Some("reload"), "{l:?}");
    assert_eq!(l.iter().filter(|x| *x == "update 1").count(), 1, "{l:?}");
    assert_eq!(anchor_files(&fleet).len(), 1, "the prune ran");
    ctl.certroll(&["verify"]).expect_code(0);
}

/// `become = "sudo"` for an unprivileged login: the anchor files are root's and the update
/// command runs as root, like the reload.
#[test]
fn with_become_sudo_the_anchors_are_root_s_and_the_update_runs_as_root() {
    use crate::support::users::{self, owner, OPERATOR};
    let fleet = users::sudo_fleet(&["lb1", "app1"]);
    let p = on_node(&fleet, "lb1", UPDATE);
    fs::create_dir_all(p.parent().expect("a directory")).expect("bin directory");
    fs::write(
        &p,
        format!("#!/bin/sh\necho \"update as $(id -u)\" >> {LOG}\n"),
    )
    .expect("write the update script");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    let inv = inventory(&fleet, UPDATE)
        .login_user("lb1", OPERATOR)
        .node_key("lb1", "become", "sudo");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]).expect_output("complete");
    assert_eq!(log(&fleet), ["update as 0", "reload"]);
    let files = anchor_files(&fleet);
    assert_eq!(files.len(), 1);
    let f = on_node(&fleet, "lb1", &format!("{ANCHORS}/{}", files[0].0));
    assert_eq!(owner(&f), (0, 0), "the anchor file is root's");
    ctl.certroll(&["verify"]).expect_code(0);
}

/// An update command that fails fails the step: the message names the node, the command
/// and what it said (escaped), and the node's reload does not run.
#[test]
fn a_failing_os_trust_update_fails_the_step_naming_node_command_and_output() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    let p = on_node(&fleet, "lb1", UPDATE);
    fs::create_dir_all(p.parent().expect("a directory")).expect("bin directory");
    fs::write(&p, "#!/bin/sh\necho 'cannot \"rehash\"' >&2\nexit 4\n").expect("update script");
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
    let ctl = Control::new(&fleet, &inventory(&fleet, UPDATE));
    let run = ctl.certroll(&["apply", "--yes"]);
    assert_ne!(run.code, 0, "{run}");
    run.expect_output("node lb1")
        .expect_output(&format!("OS trust update command `{UPDATE}`"))
        .expect_output("exited 4: cannot \\\"rehash\\\"");
    assert!(
        !log(&fleet).contains(&"reload".to_string()),
        "no reload ran\n{run}"
    );
}
