//! The files on the nodes: key and certificate switched together behind one
//! link, plain files migrated, owner, group and mode kept or set, a chown the login user
//! may not do refused before anything changes, a step that cannot write leaves the node as
//! it was, and no backup (no old private key) left once a run completes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::cli::{mode, Control};
use crate::support::inventory::{FleetInventory, BUNDLE, CERT, KEY};
use crate::support::pairs::{belong_together, PairReader};
use crate::support::users::{self, chown, ensure_user, owner, OPERATOR, SERVICE};
use crate::support::Fleet;
use crate::{assert_verify_ok, node_files, on_node};

/// The node's hidden store beside its certificate.
fn store(fleet: &Fleet, node: &str) -> PathBuf {
    on_node(fleet, node, CERT).with_file_name(".certroll-internal")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every regular file under `dir` (symlinks not followed) whose bytes contain `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.extend(files_holding(&p, needle));
        } else if meta.is_file() {
            let data = fs::read(&p).unwrap_or_default();
            if data.windows(needle.len()).any(|w| w == needle) {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// A private key's base64 body (what would show up in any copy of it).
fn key_body(key: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(key);
    let line = text
        .lines()
        .find(|l| !l.starts_with("-----") && l.len() > 20)
        .expect("a PEM body line");
    line.as_bytes().to_vec()
}

/// Turns a node's files back into plain files (as an operator's own tooling left them):
/// no store, no links.
fn make_plain(fleet: &Fleet, node: &str) {
    for remote in [BUNDLE, CERT, KEY] {
        let p = on_node(fleet, node, remote);
        let data = fs::read(&p).unwrap();
        fs::remove_file(&p).unwrap();
        fs::write(&p, data).unwrap();
    }
    fs::remove_dir_all(store(fleet, node)).unwrap();
}

fn chown_file(path: &Path, who: &str, mode_bits: u32) {
    let ok = std::process::Command::new("chown")
        .arg(who)
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown {who} {}", path.display());
    fs::set_permissions(path, fs::Permissions::from_mode(mode_bits)).unwrap();
}

#[test]
fn plain_files_are_migrated_behind_one_link_keeping_a_service_owned_key() {
    let (svc_uid, svc_gid) = ensure_user(SERVICE);
    let fleet = Fleet::start(&["lb1", "app1"]);
    users::quiet_root_shells(&fleet);
    let inv = FleetInventory::new(&fleet).mutual_link("lb1", "app1");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);
    make_plain(&fleet, "app1");
    let (key, cert) = (on_node(&fleet, "app1", KEY), on_node(&fleet, "app1", CERT));
    chown_file(&key, &format!("{SERVICE}:{SERVICE}"), 0o600);
    chown_file(&cert, &format!("root:{SERVICE}"), 0o640);
    let old_key = fs::read(&key).unwrap();

    let run = ctl.apply_ok(&["--rotate"]);
    for remote in [BUNDLE, CERT, KEY] {
        let p = on_node(&fleet, "app1", remote);
        let link =
            fs::read_link(&p).unwrap_or_else(|e| panic!("{} is no link: {e}\n{run}", p.display()));
        assert!(
            link.starts_with(".certroll-internal/current/"),
            "{} -> {}",
            p.display(),
            link.display()
        );
    }
    assert_eq!(
        owner(&key),
        (svc_uid, svc_gid),
        "the key keeps its owner\n{run}"
    );
    assert_eq!(mode(&key), 0o600, "and its mode");
    assert_eq!(
        owner(&cert),
        (0, svc_gid),
        "the certificate keeps owner and group"
    );
    assert_eq!(mode(&cert), 0o640, "and its mode");
    assert!(belong_together(
        &fs::read(&cert).unwrap(),
        &fs::read(&key).unwrap()
    ));
    let tls = key.parent().unwrap();
    assert_eq!(
        entries(tls),
        [".certroll-internal", "ca.pem", "cert.pem", "key.pem"],
        "nothing beside the files a directory-loading server would pick up\n{run}"
    );
    assert_eq!(
        entries(&store(&fleet, "app1"))
            .iter()
            .filter(|n| !certroll::layout::BOOKKEEPING.contains(&n.as_str()))
            .count(),
        2,
        "current and its version only"
    );
    let left = files_holding(&fleet.node("app1").dir, &key_body(&old_key));
    assert!(
        left.is_empty(),
        "the replaced private key is gone from the node: {left:?}"
    );
    assert_verify_ok(&ctl);
}

#[test]
fn explicit_owner_group_and_key_mode_are_set_on_the_files() {
    let (svc_uid, svc_gid) = ensure_user(SERVICE);
    let fleet = Fleet::start(&["lb1", "app1"]);
    users::quiet_root_shells(&fleet);
    let inv = FleetInventory::new(&fleet)
        .link("lb1", "app1")
        .node_key("app1", "owner", SERVICE)
        .node_key("app1", "group", SERVICE)
        .node_key("app1", "key_mode", "0640");
    let ctl = Control::new(&fleet, &inv);
    let run = ctl.apply_ok(&[]);
    let key = on_node(&fleet, "app1", KEY);
    assert_eq!(owner(&key), (svc_uid, svc_gid), "{run}");
    assert_eq!(mode(&key), 0o640);
    assert_eq!(owner(&on_node(&fleet, "app1", CERT)), (svc_uid, svc_gid));
    assert_eq!(mode(&on_node(&fleet, "app1", CERT)), 0o644);
    assert_eq!(
        owner(&on_node(&fleet, "lb1", KEY)),
        (0, 0),
        "other nodes: the login user"
    );
    assert_eq!(mode(&on_node(&fleet, "lb1", KEY)), 0o600);
    ctl.apply_ok(&["--rotate"]);
    assert_eq!(owner(&key), (svc_uid, svc_gid), "kept through a rotation");
    assert_eq!(mode(&key), 0o640);
}

#[test]
fn a_chown_the_login_user_may_not_do_fails_before_anything_is_replaced() {
    ensure_user(SERVICE);
    ensure_user(OPERATOR);
    let fleet = Fleet::start(&["lb1", "app1"]);
    users::quiet_root_shells(&fleet);
    users::allow_login(&fleet);
    // The operator owns app1's directory: writing is allowed, giving files away is not.
    chown(&fleet.node("app1").dir, OPERATOR);
    let inv = FleetInventory::new(&fleet)
        .link("lb1", "app1")
        .login_user("app1", OPERATOR);
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);
    let before = node_files(&fleet, "app1");

    ctl.rewrite(&inv.node_key("app1", "owner", SERVICE));
    let run = ctl.certroll(&["apply", "--yes", "--rotate"]);
    run.expect_code(75)
        .expect_output("cannot give the files owner certroll-svc")
        .expect_output("node app1");
    assert_eq!(
        node_files(&fleet, "app1"),
        before,
        "nothing replaced on app1\n{run}"
    );
}

#[test]
fn a_step_on_a_node_whose_cert_directory_is_not_writable_changes_nothing() {
    ensure_user(OPERATOR);
    let fleet = Fleet::start(&["lb1", "app1"]);
    users::quiet_root_shells(&fleet);
    users::allow_login(&fleet);
    let inv = FleetInventory::new(&fleet).mutual_link("lb1", "app1");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);
    let before = node_files(&fleet, "app1");

    // Logged in as a user who may not write the certificate's directory.
    let as_operator = FleetInventory::new(&fleet)
        .mutual_link("lb1", "app1")
        .login_user("app1", OPERATOR);
    ctl.rewrite(&as_operator);
    let run = ctl.certroll(&["apply", "--yes", "--rotate"]);
    run.expect_code(75)
        .expect_output("failed to write the files of CA internal")
        .expect_output("belongs to uid 0, not to uid");
    assert_eq!(
        node_files(&fleet, "app1"),
        before,
        "app1 is as it was\n{run}"
    );
    let [_, cert, key] = node_files(&fleet, "app1");
    assert!(belong_together(&cert, &key));

    // The way back and forward: the same run resumes and completes with the right login.
    ctl.rewrite(&inv);
    ctl.apply_ok(&[]).expect_output("resuming run");
    assert_verify_ok(&ctl);
}

#[test]
fn curl_and_psql_failed_while_key_and_cert_were_swapped_as_two_separate_renames() {
    let fleet = Fleet::start(&["lb1", "app1", "db1"]);
    users::quiet_root_shells(&fleet);
    let inv = FleetInventory::new(&fleet)
        .link("lb1", "app1")
        .mutual_link("app1", "db1");
    let ctl = Control::new(&fleet, &inv);
    ctl.apply_ok(&[]);
    let pairs: Vec<(PathBuf, PathBuf)> = fleet
        .names()
        .iter()
        .map(|n| (on_node(&fleet, n, CERT), on_node(&fleet, n, KEY)))
        .collect();
    let reader = PairReader::start(pairs.clone(), Duration::from_secs(600));
    for _ in 0..3 {
        ctl.apply_ok(&["--rotate"]);
    }
    let stats = reader.stop();
    assert_eq!(
        stats.mismatches, 0,
        "a reader saw a key and certificate on disk that do not belong together: {stats:?}"
    );
    assert!(stats.loads > 1000, "the reader kept loading: {stats:?}");
    assert!(
        stats.distinct_certs >= 3 * 4,
        "the reader saw every node's leaves change: {stats:?}"
    );

    // Negative control: the same reader sees the defect when key and certificate are
    // replaced by two renames, as before.
    let (cert, key) = (&pairs[1].0, &pairs[1].1);
    let (c1, k1) = (fs::read(cert).unwrap(), fs::read(key).unwrap());
    let (c2, k2) = (
        fs::read(&pairs[0].0).unwrap(),
        fs::read(&pairs[0].1).unwrap(),
    );
    let plain = |c: &[u8], k: &[u8]| {
        for (path, data) in [(key, k), (cert, c)] {
            let tmp = path.with_extension("tmp");
            fs::write(&tmp, data).unwrap();
            fs::rename(&tmp, path).unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
    };
    let reader = PairReader::start(vec![(cert.clone(), key.clone())], Duration::from_secs(60));
    for _ in 0..10 {
        plain(&c2, &k2);
        plain(&c1, &k1);
    }
    let control = reader.stop();
    assert!(
        control.mismatches > 0,
        "the reader must see the two-rename defect: {control:?}"
    );
}

/// A node of the fleet as the layout sees it: files under `tls/`, a proof-key certificate.
fn layout_node(fleet: &Fleet, name: &str) -> certroll::inventory::Node {
    use certroll::inventory::{Node, TransportKind};
    Node {
        name: name.into(),
        transport: TransportKind::Ssh(fleet.settings(name)),
        via: None,
        trust_bundle: BUNDLE.into(),
        cert: CERT.into(),
        key: KEY.into(),
        proof_cert: Some(crate::support::inventory::PROOF.into()),
        reload: None,
        confirm: None,
        confirm_timeout: Duration::from_secs(20),
        probe: None,
        dns_names: vec![],
        tls: None,
        become_with: Default::default(),
        files: Default::default(),
        stores: Default::default(),
    }
}

#[test]
fn migration_stopped_at_every_phase_leaves_a_matching_pair_and_a_rerun_finishes() {
    use certroll::layout::{self, ApplyOptions, Change, Role};
    use certroll::transport::ssh::SshTransport;
    let fleet = Fleet::start(&["app1"]);
    users::quiet_root_shells(&fleet);
    let n = layout_node(&fleet, "app1");
    let t = SshTransport::connect("app1", &fleet.settings("app1"), Default::default())
        .expect("connect to app1");
    let host = |remote: &str| on_node(&fleet, "app1", remote);
    let tls = host(CERT).parent().unwrap().to_path_buf();
    let pair = || {
        let c = fs::read_to_string(host(CERT)).unwrap_or_default();
        let k = fs::read_to_string(host(KEY)).unwrap_or_default();
        match (c.strip_prefix("CERT-"), k.strip_prefix("KEY-")) {
            (Some(c), Some(k)) if c == k => Some(c.to_string()),
            _ => None,
        }
    };
    let swap = |c: &'static str, k: &'static str| {
        vec![
            (Role::Cert, Change::Write(c.as_bytes())),
            (Role::Key, Change::Write(k.as_bytes())),
        ]
    };
    for stop in 1..=8u8 {
        let _ = fs::remove_dir_all(&tls);
        fs::create_dir_all(&tls).unwrap();
        for (f, text) in [
            ("cert.pem", "CERT-A"),
            ("key.pem", "KEY-A"),
            ("ca.pem", "BUNDLE"),
        ] {
            fs::write(tls.join(f), text).unwrap();
        }
        fs::set_permissions(tls.join("key.pem"), fs::Permissions::from_mode(0o600)).unwrap();
        let opts = ApplyOptions {
            stop_at: stop,
            ..ApplyOptions::default()
        };
        let stopped = layout::apply(&t, &n, "internal", "R1", &swap("CERT-B", "KEY-B"), &opts);
        assert!(stopped.is_err(), "phase {stop}: the script was to stop");
        let seen = pair();
        assert!(
            matches!(seen.as_deref(), Some("A" | "B")),
            "stopped at phase {stop}, the pair on disk is {seen:?}"
        );
        layout::apply(
            &t,
            &n,
            "internal",
            "R1",
            &swap("CERT-C", "KEY-C"),
            &ApplyOptions::default(),
        )
        .unwrap_or_else(|e| panic!("phase {stop}: rerun: {e}"));
        assert_eq!(pair().as_deref(), Some("C"), "phase {stop}");
        assert_eq!(
            mode(&host(KEY)),
            0o600,
            "phase {stop}: the key keeps its mode"
        );
        layout::cleanup(&t, &n, "internal").unwrap();
        for old in ["KEY-A", "KEY-B"] {
            let left = files_holding(&fleet.node("app1").dir, old.as_bytes());
            assert!(left.is_empty(), "phase {stop}: {old} is left in {left:?}");
        }
        assert_eq!(
            entries(&tls),
            [".certroll-internal", "ca.pem", "cert.pem", "key.pem"]
        );
    }
}
