//! Routine `apply` (the cron job) converges: every problem `verify` reports on a node's
//! files that certroll can repair becomes a step of the routine plan, shown by `plan`
//! with its reason, and the run leaves `verify` clean; what it cannot repair it names and
//! exits non-zero. Also the messages around it.
//!
//! The real binary on local-transport nodes under a temporary directory:
//! lb → app one-way, app ⇄ db mutual.

mod messages;
mod repairs;
mod secrets;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use certroll::inventory;
use certroll::pki::{issue_leaf, CaCert, CaStore, Leaf};
use time::OffsetDateTime;

pub struct Fleet {
    pub dir: tempfile::TempDir,
}

impl Fleet {
    /// A fleet that was bootstrapped (`apply --yes`) and verifies OK.
    pub fn bootstrapped() -> Fleet {
        let fleet = Fleet::fresh();
        ok(fleet.run(&["apply", "--yes"]));
        ok(fleet.run(&["verify"]));
        fleet
    }

    /// A fleet whose CA was never created.
    pub fn fresh() -> Fleet {
        let fleet = Fleet {
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        fleet.write_inventory(&["lb.test"], &["app.test"]);
        fleet
    }

    /// Writes the inventory with these names for lb and app.
    pub fn write_inventory(&self, lb_names: &[&str], app_names: &[&str]) {
        let list = |n: &[&str]| {
            n.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            "[ca.internal]\nsubject = \"CN=Routine CA\"\nleaf_validity = \"90d\"\nrenew_before = \"30d\"\n\n\
             [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\ncert = \"nodes/{{node}}/cert.pem\"\n\
             key = \"nodes/{{node}}/key.pem\"\nreload = \"touch nodes/{{node}}/reloaded\"\nconfirm = \"test -e nodes/{{node}}/reloaded\"\n\n\
             [nodes.lb]\ndns_names = [{}]\n[nodes.app]\ndns_names = [{}]\n[nodes.db]\ndns_names = [\"db.test\"]\n\n\
             [[links]]\nclient = \"lb\"\nserver = \"app\"\n\n[[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\n",
            list(lb_names),
            list(app_names)
        );
        std::fs::write(self.inventory(), text).expect("write the inventory");
    }

    pub fn inventory(&self) -> PathBuf {
        self.dir.path().join("certroll.toml")
    }

    /// Path of a node's file, e.g. `path("app", "key.pem")`.
    pub fn path(&self, node: &str, name: &str) -> PathBuf {
        self.dir.path().join("nodes").join(node).join(name)
    }

    pub fn write(&self, node: &str, name: &str, data: impl AsRef<[u8]>) {
        std::fs::write(self.path(node, name), data).expect("write a node file");
    }

    pub fn read(&self, node: &str, name: &str) -> Vec<u8> {
        std::fs::read(self.path(node, name)).unwrap_or_default()
    }

    pub fn mode(&self, node: &str, name: &str) -> u32 {
        std::fs::metadata(self.path(node, name))
            .expect("stat a node file")
            .permissions()
            .mode()
            & 0o7777
    }

    pub fn chmod(&self, node: &str, name: &str, mode: u32) {
        std::fs::set_permissions(self.path(node, name), std::fs::Permissions::from_mode(mode))
            .expect("chmod a node file");
    }

    /// Runs `certroll -i INVENTORY ARGS...` without a terminal and without colour.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_certroll"))
            .arg("-i")
            .arg(self.inventory())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("CERTROLL_INVENTORY")
            .stdin(Stdio::null())
            .output()
            .expect("run certroll")
    }

    /// The current CA generation of the store (with its key: tests forge leaves with it).
    pub fn current_ca(&self) -> CaCert {
        let inv = inventory::load(&self.inventory()).expect("the test inventory loads");
        CaStore::new(&inv.state_dir)
            .current(&inv.cas[0])
            .expect("read the CA store")
            .expect("the CA exists")
    }

    /// A leaf for `node` with `names`, issued by `ca` as if at `at`.
    pub fn leaf(&self, ca: &CaCert, node: &str, names: &[&str], at: OffsetDateTime) -> Leaf {
        let inv = inventory::load(&self.inventory()).expect("the test inventory loads");
        let sans: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        issue_leaf(&inv.cas[0], ca, node, &sans, at).expect("issue a test leaf")
    }

    /// Installs `leaf` as the node's certificate and key (key 0600).
    pub fn install(&self, node: &str, leaf: &Leaf) {
        self.write(node, "cert.pem", &leaf.cert_pem);
        self.write(node, "key.pem", &leaf.key_pem);
        self.chmod(node, "key.pem", 0o600);
    }
}

pub fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
pub fn ok(out: Output) -> Output {
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    out
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The routine plan as JSON (`plan --format json`).
pub fn plan_json(fleet: &Fleet) -> serde_json::Value {
    let out = ok(fleet.run(&["plan", "--format", "json"]));
    serde_json::from_slice(&out.stdout).expect("plan JSON")
}

/// The verify report as JSON and its exit code.
pub fn verify_json(fleet: &Fleet) -> (i32, serde_json::Value) {
    let out = fleet.run(&["verify", "--format", "json"]);
    let v = serde_json::from_slice(&out.stdout).expect("verify JSON");
    (out.status.code().unwrap_or(-1), v)
}

/// Finding kinds verify reports on `node`.
pub fn finding_kinds(report: &serde_json::Value, node: &str) -> Vec<String> {
    report["cas"][0]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["node"] == node)
        .flat_map(|n| n["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| f["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The whole regression of one finding kind: verify is critical with `kind` on `node`;
/// the routine plan holds a `action` step for `node` whose reason mentions `reason`;
/// `apply --yes` exits 0; verify is then OK and a second routine run has nothing to do.
#[track_caller]
pub fn converges(fleet: &Fleet, node: &str, kind: &str, action: &str, reason: &str) {
    converges_from(fleet, 2, node, kind, action, reason);
}

/// [`converges`] from a verify that exits `before` (2 critical, 1 warning).
#[track_caller]
pub fn converges_from(
    fleet: &Fleet,
    before: i32,
    node: &str,
    kind: &str,
    action: &str,
    reason: &str,
) {
    let (code, report) = verify_json(fleet);
    assert_eq!(
        code, before,
        "verify must exit {before} before the repair: {report:#}"
    );
    assert!(
        finding_kinds(&report, node).iter().any(|k| k == kind),
        "verify reports {kind} on {node}: {report:#}"
    );

    let plan = plan_json(fleet);
    assert_eq!(plan["mode"], "renew", "a routine plan: {plan:#}");
    let steps = plan["steps"].as_array().expect("plan steps");
    let step = steps
        .iter()
        .find(|s| s["node"] == node)
        .unwrap_or_else(|| panic!("the routine plan has no step for {node}: {plan:#}"));
    assert_eq!(step["actions"], serde_json::json!([action]), "{plan:#}");
    let reasons = step["reasons"].to_string();
    assert!(
        reasons.contains(reason),
        "the step says why ({reason:?}): {plan:#}"
    );
    let text = stdout(&ok(fleet.run(&["plan"])));
    assert!(
        text.contains("because"),
        "plan text shows the reason:\n{text}"
    );

    let out = ok(fleet.run(&["apply", "--yes"]));
    let (code, report) = verify_json(fleet);
    assert_eq!(
        code,
        0,
        "verify is OK after the routine apply:\n{}\n{report:#}",
        show(&out)
    );
    let again = ok(fleet.run(&["apply", "--yes"]));
    assert!(stdout(&again).contains("nothing to do"), "{}", show(&again));
}
