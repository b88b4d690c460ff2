//! `certroll verify` end to end through the library: a TOML inventory of local nodes in
//! a temporary directory, a real CA store, real files and modes on disk, the real
//! connector and local transport, real handshakes and real probe commands.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use certroll::commands::connector;
use certroll::commands::verify::{check, run_to, VerifyArgs};
use certroll::exit;
use certroll::inventory::{self, Inventory};
use certroll::materials::bundle_pem;
use certroll::output::{Format, Style};
use certroll::pki::{issue_leaf, CaCert, CaStore};
use certroll::transport::HostKeyPolicy;
use certroll::verify::{LinkResult, Phase, Report};
use support::pki::self_signed_pem;

const INVENTORY: &str = r#"
[certroll]
state_dir = ".certroll"

[ca.internal]
subject = "CN=Verify Test CA"
key_algorithm = "ecdsa-p256"
validity = "10y"
leaf_validity = "90d"
renew_before = "30d"

[defaults]
transport = "local"
trust_bundle = "nodes/{node}/ca.pem"
cert = "nodes/{node}/cert.pem"
key = "nodes/{node}/key.pem"

[nodes.lb1]
probe = "echo probing {server} {name}"

[nodes.app1]
dns_names = ["app1.internal"]

[nodes.db1]
dns_names = ["db1.internal"]

[[links]]
client = "lb1"
server = "app1"

[[links]]
client = "app1"
server = "db1"
mutual = true
"#;

/// A fleet of three local nodes in a temporary directory.
struct Fleet {
    dir: tempfile::TempDir,
    inv: Inventory,
    store: CaStore,
}

impl Fleet {
    /// Writes the inventory and creates generation 1 of the CA, without node files.
    fn new() -> Fleet {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let path = dir.path().join("certroll.toml");
        fs::write(&path, INVENTORY).unwrap();
        let inv = inventory::load(&path).unwrap();
        let store = CaStore::new(&inv.state_dir);
        store.init(&inv.cas[0], OffsetDateTime::now_utc()).unwrap();
        Fleet { dir, inv, store }
    }

    /// A fleet where every node holds bundle {G1} and a G1 leaf.
    fn installed() -> Fleet {
        let f = Fleet::new();
        let g1 = f.current();
        for n in ["lb1", "app1", "db1"] {
            f.install(n, &[&g1], &g1);
        }
        f
    }

    fn current(&self) -> CaCert {
        self.store.current(&self.inv.cas[0]).unwrap().unwrap()
    }

    fn begin_rotation(&self) -> CaCert {
        let now = OffsetDateTime::now_utc();
        self.store.begin_rotation(&self.inv.cas[0], now).unwrap().0
    }

    fn path(&self, node: &str, file: &str) -> PathBuf {
        let p = PathBuf::from(format!("nodes/{node}/{file}"));
        self.dir.path().join(p)
    }

    /// Writes a node's bundle, leaf and key (0600) as `apply` would.
    fn install(&self, node: &str, bundle: &[&CaCert], leaf_ca: &CaCert) {
        let id = self.inv.node_id(node).unwrap();
        let n = &self.inv.nodes[id];
        let spec = &self.inv.cas[0];
        let leaf = issue_leaf(spec, leaf_ca, node, &n.sans(), OffsetDateTime::now_utc()).unwrap();
        fs::create_dir_all(self.path(node, "")).unwrap();
        fs::write(self.path(node, "ca.pem"), bundle_pem(bundle)).unwrap();
        fs::write(self.path(node, "cert.pem"), leaf.cert_pem).unwrap();
        write_mode(&self.path(node, "key.pem"), leaf.key_pem.as_bytes(), 0o600);
    }

    fn args(&self) -> VerifyArgs {
        VerifyArgs {
            inventory: self.dir.path().join("certroll.toml"),
            format: Format::Json,
            ..VerifyArgs::default()
        }
    }

    fn report(&self, args: &VerifyArgs) -> Report {
        let conn = connector(&self.inv, HostKeyPolicy::default());
        check(&self.inv, args, conn).unwrap()
    }

    fn phase(r: &Report, node: &str) -> Phase {
        r.cas[0]
            .nodes
            .iter()
            .find(|n| n.name == node)
            .unwrap()
            .phase
    }
}

/// Runs the command as the binary would, returning the exit code and the output.
fn run(args: &VerifyArgs) -> (i32, String) {
    let mut out = Vec::new();
    let code = run_to(args, &mut out, Style::plain()).unwrap();
    (code, String::from_utf8(out).unwrap())
}

fn write_mode(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn healthy_local_fleet_exits_ok() {
    let f = Fleet::installed();
    let (code, out) = run(&f.args());
    assert_eq!(code, exit::VERIFY_OK);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON output parses");
    assert_eq!(v["version"], 1);
    assert_eq!(v["summary"], "verify: 3 nodes, 2 links — OK");
    let text = run(&VerifyArgs {
        format: Format::Text,
        ..f.args()
    })
    .1;
    assert!(text.ends_with("verify: 3 nodes, 2 links — OK\n"), "{text}");
    let r = f.report(&f.args());
    assert!(r.cas[0].nodes.iter().all(|n| n.phase == Phase::Current));
}

#[test]
fn broken_files_on_disk_are_critical() {
    let f = Fleet::installed();
    let key = f.path("app1", "key.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_file(f.path("db1", "ca.pem")).unwrap();
    let r = f.report(&f.args());
    let app1 = &r.cas[0].nodes[f.inv.node_id("app1").unwrap()];
    assert_eq!(app1.key_mode, Some(0o644));
    assert!(
        r.summary().contains("1 key file too open"),
        "{}",
        r.summary()
    );
    assert!(r.summary().contains("1 file missing"), "{}", r.summary());
    let mutual = r.cas[0].links.iter().find(|l| l.mutual).unwrap();
    assert!(matches!(mutual.result, LinkResult::Failed { .. }));
    assert_eq!(run(&f.args()).0, exit::VERIFY_CRITICAL);
}

#[test]
fn rotation_in_progress_is_safe_until_a_leaf_swaps_early() {
    let f = Fleet::installed();
    let g1 = f.current();
    let g2 = f.begin_rotation();
    for n in ["app1", "db1"] {
        f.install(n, &[&g1, &g2], &g1);
    }
    let r = f.report(&f.args());
    assert_eq!(Fleet::phase(&r, "lb1"), Phase::Old);
    assert_eq!(Fleet::phase(&r, "db1"), Phase::TrustingBoth);
    assert_eq!(r.cas[0].safe(), Some(true));
    assert_eq!(r.exit_code(), exit::VERIFY_OK);

    // db1's only verifier (app1) trusts G2: db1 may switch. app1's verifier lb1 does not.
    f.install("db1", &[&g1, &g2], &g2);
    assert_eq!(run(&f.args()).0, exit::VERIFY_OK);
    f.install("app1", &[&g1, &g2], &g2);
    let r = f.report(&f.args());
    let early = r.cas[0].links.iter().find(|l| !l.mutual).unwrap();
    assert!(matches!(early.result, LinkResult::Failed { .. }));
    assert!(early.order_violations[0].contains("leaf swap too early"));
    assert_eq!(r.cas[0].safe(), Some(false));
    assert_eq!(run(&f.args()).0, exit::VERIFY_CRITICAL);
}

#[test]
fn live_probes_run_the_clients_command() {
    let f = Fleet::installed();
    let args = VerifyArgs {
        live: true,
        ..f.args()
    };
    let r = f.report(&args);
    let l = r.cas[0]
        .links
        .iter()
        .find(|l| l.client_name == "lb1")
        .unwrap();
    let live = l.live.as_ref().expect("lb1 has a probe");
    assert_eq!(live.status, Some(0));
    assert_eq!(live.first_line, "probing app1 app1.internal");
    assert_eq!(r.exit_code(), exit::VERIFY_OK);
}

#[test]
fn missing_ca_store_is_unknown() {
    let f = Fleet::installed();
    fs::remove_dir_all(f.inv.state_dir.join("ca")).unwrap();
    let r = f.report(&f.args());
    assert_eq!(r.cas[0].current, None);
    assert!(r.cas[0].links.iter().all(|l| l.result == LinkResult::Ok));
    assert_eq!(r.exit_code(), exit::VERIFY_UNKNOWN);
}

#[test]
fn cross_signed_chain_bridges_an_early_leaf_swap() {
    let f = Fleet::installed();
    let g1 = f.current();
    let g2 = f.begin_rotation();
    let cross = f
        .store
        .cross(&f.inv.cas[0])
        .unwrap()
        .expect("cross certificate");
    f.install("app1", &[&g1, &g2], &g2);
    let mut chain = fs::read_to_string(f.path("app1", "cert.pem")).unwrap();
    chain.push_str(&cross);
    fs::write(f.path("app1", "cert.pem"), chain).unwrap();
    // lb1 trusts only G1 but can build leaf → cross → G1; db1 trusts only G1 too.
    let r = f.report(&f.args());
    assert_eq!(Fleet::phase(&r, "app1"), Phase::Switched);
    let app1 = r.cas[0].nodes.iter().find(|n| n.name == "app1").unwrap();
    assert_eq!(app1.chain_extra, 1);
    for l in &r.cas[0].links {
        assert_eq!(
            l.result,
            LinkResult::Ok,
            "{} → {}",
            l.client_name,
            l.server_name
        );
        assert!(l.order_violations.is_empty(), "{:?}", l.order_violations);
    }
    assert_eq!(r.exit_code(), exit::VERIFY_OK, "{}", r.summary());
}

/// Issue 20, item 5: a fleet that completed a cross-signed rotation while the prune still
/// left `[leaf, cross(G2←G1)]` in every chain verified OK. A chain that carries a cross
/// certificate signed by an archived generation is a warning that names node and file.
#[test]
fn verify_reports_a_chain_that_still_carries_a_retired_cross_certificate() {
    let f = Fleet::installed();
    let g2 = f.begin_rotation();
    let cross = f
        .store
        .cross(&f.inv.cas[0])
        .unwrap()
        .expect("cross certificate");
    for n in ["lb1", "app1", "db1"] {
        f.install(n, &[&g2], &g2);
    }
    let cert = f.path("app1", "cert.pem");
    let mut chain = fs::read_to_string(&cert).unwrap();
    chain.push_str(&cross);
    fs::write(&cert, chain).unwrap();
    // While the rotation runs, the cross certificate is in use: nothing to report.
    assert_eq!(run(&f.args()).0, exit::VERIFY_OK);

    f.store.finish_rotation(&f.inv.cas[0]).unwrap();
    let (code, out) = run(&f.args());
    assert_eq!(code, exit::VERIFY_WARNING, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON output parses");
    let nodes = v["cas"][0]["nodes"].as_array().unwrap();
    let app1 = nodes.iter().find(|n| n["node"] == "app1").unwrap();
    let finding = app1["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "retired-cross-certificate")
        .unwrap_or_else(|| panic!("no retired-cross-certificate finding on app1: {out}"));
    assert_eq!(finding["severity"], "warning", "{finding}");
    assert_eq!(
        finding["path"],
        cert.to_string_lossy().as_ref(),
        "{finding}"
    );
    assert_eq!(finding["generation"], 1, "{finding}");
    let others = nodes.iter().filter(|n| n["node"] != "app1");
    for n in others {
        assert_eq!(n["findings"], serde_json::json!([]), "{out}");
    }

    let (code, text) = run(&VerifyArgs {
        format: Format::Text,
        ..f.args()
    });
    assert_eq!(code, exit::VERIFY_WARNING, "{text}");
    assert!(
        text.contains(&format!(
            "certificate chain {} on node app1",
            cert.display()
        )) && text.contains("archived generation G1"),
        "{text}"
    );
    assert!(text.contains("1 retired cross certificate"), "{text}");
}

#[test]
fn cron_wrapper_logs_mails_and_keeps_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    let fake = |name: &str, body: &str| {
        write_mode(
            &bin.join(name),
            format!("#!/bin/sh\n{body}\n").as_bytes(),
            0o755,
        )
    };
    let mailbox = dir.path().join("mailbox");
    fake(
        "certroll",
        "echo \"verify: 3 nodes, 2 links — CRITICAL: $*\"; exit 2",
    );
    fake(
        "mail",
        &format!("echo \"$*\" >{0}; cat >>{0}", mailbox.display()),
    );
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cron/certroll-verify-cron.sh");
    let log = dir.path().join("log/verify.log");
    let status = std::process::Command::new("sh")
        .arg(&script)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("CERTROLL_VERIFY_LOG", &log)
        .env("CERTROLL_VERIFY_ARGS", "--live")
        .env("CERTROLL_VERIFY_MAILTO", "ops@example.com")
        .status()
        .expect("run sh (install a POSIX shell)");
    assert_eq!(status.code(), Some(2));
    let logged = fs::read_to_string(&log).unwrap();
    assert!(logged.contains("certroll verify exit 2"), "{logged}");
    assert!(logged.contains("CRITICAL: verify --live"), "{logged}");
    let mail = fs::read_to_string(&mailbox).unwrap();
    assert!(mail.starts_with("-s certroll verify on "), "{mail}");
    assert!(mail.contains(": CRITICAL ops@example.com"), "{mail}");
    assert!(mail.contains("CRITICAL: verify --live"), "{mail}");
}

#[test]
fn a_foreign_anchor_subject_with_control_characters_is_shown_escaped_in_text() {
    let f = Fleet::installed();
    // A partner anchor appended by hand whose subject erases the line and forges a verdict.
    let hostile = "Partner\u{1b}[2K\rverify: OK\u{9b}0m\u{7}";
    let bundle = f.path("app1", "ca.pem");
    let mut text = fs::read_to_string(&bundle).unwrap();
    text.push_str(&self_signed_pem(hostile, true));
    fs::write(&bundle, text).unwrap();

    let (_, json) = run(&f.args());
    let v: serde_json::Value = serde_json::from_str(&json).expect("JSON output parses");
    let app1 = v["cas"][0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "app1")
        .unwrap();
    let subjects: Vec<&str> = app1["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["subject"].as_str())
        .collect();
    assert!(
        subjects.iter().any(|s| s.contains(hostile)),
        "JSON must keep the exact subject: {subjects:?}"
    );

    let (_, text) = run(&VerifyArgs {
        format: Format::Text,
        ..f.args()
    });
    let raw: Vec<char> = text
        .chars()
        .filter(|&c| c != '\n' && c.is_control())
        .collect();
    assert!(raw.is_empty(), "raw control characters {raw:?} in:\n{text}");
    assert!(
        text.contains("Partner\\x1b[2K\\rverify: OK\\u{9b}0m\\x07"),
        "the subject is not shown escaped:\n{text}"
    );
}
