//! nginx, HAProxy and PostgreSQL 15 on the nodes of an sshd fleet, configured from
//! docs/recipes.md and started *inside* each node's namespaces over SSH.
//!
//! They run where their reload commands run: a reload signals a PID read from a pid file,
//! and each sshd node has its own PID namespace, so a server started on the control host
//! could not be reloaded by certroll through the node. The network is shared (127.0.0.1),
//! so curl and psql reach them from the control host. Everything started here lives in
//! the node's PID namespace and dies with the node's sshd when the fleet is dropped.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use certroll::transport::ssh::SshTransport;
use certroll::transport::{HostKeyPolicy, Transport};

use super::recipes::{toml_value, Ports, Recipes};
use crate::support::{Fleet, REMOTE_ROOT};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const EXEC_TIMEOUT: Duration = Duration::from_secs(120);

/// Fails loudly, naming the package, when a tool the test needs is missing.
pub fn preflight() {
    let tools = [
        ("/usr/sbin/nginx", "nginx-light (or nginx)"),
        ("/usr/sbin/haproxy", "haproxy"),
        ("/usr/lib/postgresql/15/bin/postgres", "postgresql-15"),
        ("/usr/lib/postgresql/15/bin/initdb", "postgresql-15"),
        ("/usr/lib/postgresql/15/bin/pg_ctl", "postgresql-15"),
        ("/usr/bin/psql", "postgresql-client-15"),
        ("/usr/bin/curl", "curl"),
        ("/usr/sbin/runuser", "util-linux"),
        ("/usr/bin/setsid", "util-linux"),
    ];
    for (path, package) in tools {
        assert!(
            Path::new(path).exists(),
            "{path} not found: install it with `apt-get install -y {package}` (scripts/test.sh does)"
        );
    }
    let id = Command::new("id")
        .args(["-u", "postgres"])
        .output()
        .expect("run id");
    assert!(
        id.status.success(),
        "no `postgres` user: install postgresql-15 (scripts/test.sh does)"
    );
}

/// Runs `command` on `node` over SSH; panics with its output unless it exits 0.
pub fn run_on(fleet: &Fleet, node: &str, command: &str) -> String {
    let t = SshTransport::connect(node, &fleet.settings(node), HostKeyPolicy::default())
        .unwrap_or_else(|e| panic!("connect to {node}: {e}"));
    let out = t
        .exec(command, EXEC_TIMEOUT)
        .unwrap_or_else(|e| panic!("run on {node}: {command}: {e}"));
    assert!(
        out.success(),
        "on node {node}: `{command}` failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// Writes `text` at `remote` (a path as the node sees it) through the host directory.
fn put(fleet: &Fleet, node: &str, remote: &str, text: &str) {
    let host = fleet.host_path(node, remote);
    if let Some(dir) = host.parent() {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    }
    std::fs::write(&host, text).unwrap_or_else(|e| panic!("write {}: {e}", host.display()));
}

/// The recipes' server configurations and data directories, before any certificate
/// exists: nginx.conf, haproxy.cfg, an initdb'd PostgreSQL cluster with the recipe's
/// postgresql.conf lines and pg_hba.conf line.
pub fn prepare(fleet: &Fleet, recipes: &Recipes, ports: &Ports) {
    let root = REMOTE_ROOT;
    put(
        fleet,
        "web1",
        &format!("{root}/etc/nginx/nginx.conf"),
        &recipes.adapted("nginx.conf", root, ports),
    );
    put(
        fleet,
        "lb1",
        &format!("{root}/etc/haproxy/haproxy.cfg"),
        &recipes.adapted("haproxy.cfg", root, ports),
    );
    run_on(fleet, "web1", &format!("mkdir -p {root}/run"));
    run_on(fleet, "lb1", &format!("mkdir -p {root}/run"));
    let data = pg_data();
    run_on(
        fleet,
        "db1",
        &format!(
            "set -e; mkdir -p {root}/var/lib/postgresql/15 {root}/run/postgresql; \
             chown -R postgres:postgres {root}/var/lib/postgresql {root}/run/postgresql; \
             cd /tmp; runuser -u postgres -- {PG_BIN}/initdb -D {data} -A trust -U postgres >/dev/null"
        ),
    );
    let conf = format!("{data}/postgresql.conf");
    let mut text =
        std::fs::read_to_string(fleet.host_path("db1", &conf)).expect("read postgresql.conf");
    text += "\n# certroll recipe\n";
    text += &recipes.adapted("postgresql.conf", root, ports);
    put(fleet, "db1", &conf, &text);
    // The recipe's line, plus local trust for the test's own setup (creating the role).
    let hba = format!(
        "local all postgres trust\n{}",
        recipes.adapted("pg_hba.conf", root, ports)
    );
    put(fleet, "db1", &format!("{data}/pg_hba.conf"), &hba);
    run_on(fleet, "db1", &format!("chown -R postgres:postgres {data}"));
}

/// The cluster's data directory as the node sees it (from the recipe's reload command).
pub fn pg_data() -> String {
    format!("{REMOTE_ROOT}/var/lib/postgresql/15/data")
}

/// After the bootstrap wrote every node's files: PostgreSQL's key goes to `postgres`
/// (0600, as PostgreSQL demands), then nginx, HAProxy and PostgreSQL start.
pub fn start(fleet: &Fleet, recipes: &Recipes, ports: &Ports) {
    let root = REMOTE_ROOT;
    let pg = recipes.adapted("postgresql", root, ports);
    let key = toml_value(&pg, "key");
    run_on(
        fleet,
        "db1",
        &format!("chown postgres:postgres {key} && chmod 0600 {key}"),
    );
    // Daemons must not keep the session's output open, or the command never ends.
    let quiet = "</dev/null >/dev/null 2>&1";
    run_on(
        fleet,
        "web1",
        &format!("nginx -c {root}/etc/nginx/nginx.conf {quiet}"),
    );
    run_on(
        fleet,
        "lb1",
        &format!("haproxy -W -D -f {root}/etc/haproxy/haproxy.cfg {quiet}"),
    );
    let data = pg_data();
    run_on(
        fleet,
        "db1",
        &format!(
            "cd /tmp; runuser -u postgres -- {PG_BIN}/pg_ctl -D {data} -l {root}/var/lib/postgresql/15/postgresql.log -w -t 60 start {quiet} || {{ tail -n 30 {root}/var/lib/postgresql/15/postgresql.log >&2; exit 1; }}"
        ),
    );
    run_on(
        fleet,
        "db1",
        &format!(
            "cd /tmp; runuser -u postgres -- psql -h {root}/run/postgresql -p {} -U postgres -d postgres -qc 'create role psql1 login'",
            ports.db
        ),
    );
}

/// The servers' own logs, for a failure message.
pub fn logs(fleet: &Fleet) -> String {
    let pg = fleet.host_path(
        "db1",
        &format!("{REMOTE_ROOT}/var/lib/postgresql/15/postgresql.log"),
    );
    let mut out = String::new();
    for path in [std::path::PathBuf::from("/var/log/nginx/error.log"), pg] {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        out += &format!("--- {} (last lines) ---\n", path.display());
        for l in tail.into_iter().rev() {
            out += l;
            out.push('\n');
        }
    }
    out
}
