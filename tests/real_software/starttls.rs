//! MariaDB 10.11 and Postfix 3.7 as certroll's built-in TLS confirm meets them through
//! `starttls = "mysql"` and `starttls = "smtp"`.
//!
//! Each server runs as a private instance on a free port of 127.0.0.1, started directly
//! in the test's temporary directory (no systemd, nothing of a system instance). Postfix
//! is docs/recipes.md's node `mx1` with the recipe's main.cf lines, asking for client
//! certificates from mx1's bundle (`smtpd_tls_ask_ccert`): `verify --live` must pass, and
//! so must a rotation with the recipe's reload (`postfix reload`), each step confirmed by
//! the built-in confirm alone (trust-add and trust-prune observed in its CA names). MariaDB
//! serves the files certroll wrote for a local node `db`; it asks for a client certificate
//! without naming any CA: `verify --live` must complete its look through the SSL request,
//! see db's chain and key, and prove its trust with a throwaway client certificate of G1
//! (exit 0), and a rotation whose reload is `FLUSH SSL` must see a throwaway of G2 accepted
//! after trust-add and one of G1 refused after trust-prune.
//!
//! Needs root, mariadb-server and postfix (`scripts/test.sh` installs them); a missing
//! tool fails the test, it is never skipped.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::private_servers::Site;
use super::recipes::without_keys;
use crate::support::hostile_tls::{certroll, node_proofs};

/// The port the Postfix recipe is written with.
const SMTP_PORT: &str = "25";

/// The longest a server may take to accept connections.
const START: Duration = Duration::from_secs(60);

/// Fails loudly, naming the package, when a tool the test needs is missing.
pub fn preflight(tools: &[(&str, &str)]) {
    for (path, package) in tools {
        assert!(
            Path::new(path).exists(),
            "{path} not found: install it with `apt-get install -y {package}` (scripts/test.sh does)"
        );
    }
}

/// A temporary directory that the servers' unprivileged users may traverse.
pub fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod the temp dir");
    dir
}

/// Local nodes `app` (client) and `db` (server, `db.test`), files under `nodes/<node>/`;
/// `db_tls` adds db's `tls_address`, `starttls` and `reload`.
fn write_inventory(dir: &Path, db_tls: Option<(u16, &str, &str)>) {
    let tls = db_tls
        .map(|(port, starttls, reload)| {
            format!(
                "tls_address = \"127.0.0.1:{port}\"\nstarttls = \"{starttls}\"\nreload = {}\n",
                toml::Value::String(reload.to_string())
            )
        })
        .unwrap_or_default();
    let text = format!(
        "[ca.internal]\nsubject = \"CN=STARTTLS Real Software CA\"\n\n\
         [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\n\
         cert = \"nodes/{{node}}/cert.pem\"\nkey = \"nodes/{{node}}/key.pem\"\n\
         confirm_timeout = \"60s\"\n\n\
         [nodes.app]\ndns_names = [\"app.test\"]\n\n[nodes.db]\ndns_names = [\"db.test\"]\n{tls}\n\
         [[links]]\nclient = \"app\"\nserver = \"db\"\nmutual = true\n"
    );
    std::fs::write(dir.join("certroll.toml"), text).expect("write the inventory");
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    listener.local_addr().expect("port").port()
}

/// Waits until `port` accepts connections; panics with `log` after [`START`].
pub fn wait_for(port: u16, log: &Path) {
    let end = Instant::now() + START;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < end,
            "nothing listens on 127.0.0.1:{port} after {START:?}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

pub fn run(command: &mut Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server started by the test on the files of node db, with its directory. The server
/// is dropped (stopped) before the directory is removed.
struct Served<S> {
    server: S,
    port: u16,
    dir: tempfile::TempDir,
}

/// Bootstraps app and db, starts the server with `start` (which returns the server,
/// stopped when dropped, and its reload command), and writes db's `tls_address`,
/// `starttls` and `reload`.
fn serve<S>(starttls: &str, start: impl FnOnce(&Path, u16) -> (S, String)) -> Served<S> {
    let dir = open_dir();
    write_inventory(dir.path(), None);
    certroll(dir.path(), &["apply", "--yes"]).expect_code(0);
    let port = free_port();
    let (server, reload) = start(dir.path(), port);
    write_inventory(dir.path(), Some((port, starttls, &reload)));
    Served { server, port, dir }
}

/// A mariadbd started by the test, killed (by its process id) when dropped.
struct Mariadb(Child);

impl Drop for Mariadb {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn mariadb_is_looked_at_by_verify_live_through_starttls_mysql() {
    preflight(&[
        ("/usr/sbin/mariadbd", "mariadb-server"),
        ("/usr/bin/mariadb-install-db", "mariadb-server"),
        ("/usr/bin/mariadb", "mariadb-client"),
    ]);
    let served = serve("mysql", |dir, port| {
        let base = dir.join("mariadb");
        let data = base.join("data");
        std::fs::create_dir_all(&base).expect("mkdir mariadb");
        run(
            Command::new("mariadb-install-db")
                .arg("--no-defaults")
                .arg(format!("--datadir={}", data.display()))
                .args([
                    "--user=root",
                    "--skip-test-db",
                    "--auth-root-authentication-method=normal",
                ]),
            "mariadb-install-db",
        );
        let node = dir.join("nodes").join("db");
        let socket = base.join("mysqld.sock");
        let log = base.join("error.log");
        let path = |p: PathBuf| p.display().to_string();
        let child = Command::new("/usr/sbin/mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", path(data)))
            .arg(format!("--socket={}", path(socket.clone())))
            .arg(format!("--pid-file={}", path(base.join("mysqld.pid"))))
            .arg(format!("--log-error={}", path(log.clone())))
            .arg(format!("--port={port}"))
            .args(["--user=root", "--bind-address=127.0.0.1", "--skip-log-bin"])
            .arg(format!("--ssl-cert={}", path(node.join("cert.pem"))))
            .arg(format!("--ssl-key={}", path(node.join("key.pem"))))
            .arg(format!("--ssl-ca={}", path(node.join("ca.pem"))))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        let server = Mariadb(child);
        wait_for(port, &log);
        let reload = format!(
            "mariadb --no-defaults --socket={} -u root -e 'FLUSH SSL'",
            socket.display()
        );
        (server, reload)
    });
    // MariaDB asks for a client certificate without naming any CA, so the names cannot show
    // that it loaded the bundle: certroll shows it a throwaway client certificate of G1,
    // which it accepts. verify --live says which proof it used, as information, after a
    // complete look through the SSL request whose served chain and key were db's.
    let run = certroll(served.dir.path(), &["verify", "--live"]);
    let tested = "it names no CA in its CertificateRequest, so trust was tested with \
                  throwaway client certificates: ";
    run.expect_code(0).expect_stdout(&format!(
        "node db at 127.0.0.1:{} (as reached from the node): {tested}G1's accepted",
        served.port
    ));
    assert_eq!(run.stdout.matches('✗').count(), 0, "{run}");
    // A rotation whose reload is FLUSH SSL: after trust-add MariaDB accepts a throwaway of
    // G2, and after trust-prune it refuses one of G1 (MariaDB says nothing after the
    // handshake of a certificate it accepts, and sends an alert for one it refuses).
    certroll(served.dir.path(), &["apply", "--rotate", "--yes"]).expect_code(0);
    let proofs = node_proofs(served.dir.path(), "db");
    assert!(
        proofs
            .iter()
            .any(|p| p.ends_with(&format!("{tested}G1's accepted, G2's accepted"))),
        "{proofs:?}"
    );
    assert!(
        proofs
            .iter()
            .any(|p| p.contains(&format!("{tested}G2's accepted, G1's refused (it "))),
        "{proofs:?}"
    );
    certroll(served.dir.path(), &["verify", "--live"]).expect_code(0);
    drop(served.server);
}

/// A Postfix instance started by the test from its own configuration directory, stopped
/// with `postfix -c <dir> stop` (bounded) when dropped.
struct Postfix(PathBuf);

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("timeout")
            .args(["60", "postfix", "-c"])
            .arg(&self.0)
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The inventory of the Postfix test: a local client `app` (files under `nodes/app/`) and
/// the recipe's `mx1`, linked mutually; `bootstrap` leaves out mx1's reload and look (the
/// server is not running yet).
fn postfix_inventory(site: &Site, bootstrap: bool) -> String {
    let mut mx1 = without_keys(&site.adapted("postfix"), &["ssh"]);
    if bootstrap {
        mx1 = without_keys(&mx1, &["reload", "tls_address", "starttls"]);
    }
    format!(
        "[ca.internal]\nsubject = \"CN=STARTTLS Real Software CA\"\n\n\
         [defaults]\ntransport = \"local\"\nconfirm_timeout = \"60s\"\n\n\
         [nodes.app]\ntrust_bundle = \"nodes/app/ca.pem\"\ncert = \"nodes/app/cert.pem\"\n\
         key = \"nodes/app/key.pem\"\n\n{mx1}\n\
         [[links]]\nclient = \"app\"\nserver = \"mx1\"\nmutual = true\n"
    )
}

#[test]
fn postfix_passes_verify_live_and_a_rotation_through_starttls_smtp() {
    preflight(&[
        ("/usr/sbin/postfix", "postfix"),
        ("/usr/lib/postfix/sbin/smtpd", "postfix"),
    ]);
    let site = Site::new(&[SMTP_PORT]);
    let (dir, port) = (site.dir.path(), site.port(SMTP_PORT));
    let write = |bootstrap| {
        std::fs::write(
            dir.join("certroll.toml"),
            postfix_inventory(&site, bootstrap),
        )
        .expect("write the inventory")
    };
    std::fs::create_dir_all(dir.join("etc/postfix/tls")).expect("mkdir etc/postfix/tls");
    write(true);
    certroll(dir, &["apply", "--yes"]).expect_code(0);

    // The recipe's main.cf lines, after what a private instance needs: its own queue and
    // data directories and log, only 127.0.0.1, no local delivery.
    let conf = dir.join("etc/postfix");
    let (queue, data) = (dir.join("var/spool/postfix"), dir.join("var/lib/postfix"));
    for d in [&queue, &data, &dir.join("var/log")] {
        std::fs::create_dir_all(d).expect("mkdir postfix");
    }
    run(
        Command::new("chown").arg("postfix").arg(&data),
        "chown postfix data",
    );
    let log = dir.join("var/log/maillog");
    let main_cf = format!(
        "compatibility_level = 3.6\nqueue_directory = {queue}\ndata_directory = {data}\n\
         mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\nmyhostname = mx1.internal\nmydestination =\n\
         maillog_file = {log}\nmaillog_file_prefixes = {root}\n\n# certroll recipe\n{recipe}",
        queue = queue.display(),
        data = data.display(),
        log = log.display(),
        root = dir.display(),
        recipe = site.adapted("postfix main.cf"),
    );
    // Only what smtpd needs for EHLO and STARTTLS; no chroot.
    let master_cf = format!(
        "127.0.0.1:{port} inet n - n - - smtpd\n\
         tlsmgr unix - - n 1000? 1 tlsmgr\n\
         postlog unix-dgram n - n - 1 postlogd\n\
         proxymap unix - - n - - proxymap\n\
         anvil unix - - n - 1 anvil\n"
    );
    std::fs::write(conf.join("main.cf"), main_cf).expect("write main.cf");
    std::fs::write(conf.join("master.cf"), master_cf).expect("write master.cf");
    // Its daemons must not hold a pipe of ours: no captured output.
    let said = dir.join("postfix-start.out");
    let out = std::fs::File::create(&said).expect("create postfix-start.out");
    let started = Command::new("timeout")
        .args(["60", "postfix", "-c"])
        .arg(&conf)
        .arg("start")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone a file handle"))
        .stderr(out)
        .status()
        .expect("run postfix start");
    let server = Postfix(conf.clone());
    assert!(
        started.success(),
        "postfix start failed ({started:?})\n{}\n{}",
        std::fs::read_to_string(&said).unwrap_or_default(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    wait_for(port, &log);

    write(false);
    certroll(dir, &["verify", "--live"]).expect_code(0);
    certroll(dir, &["apply", "--rotate", "--yes"])
        .expect_code(0)
        .expect_output("chain, key and handshake proven");
    let proofs = node_proofs(dir, "mx1");
    assert!(proofs.len() >= 2, "{proofs:?}");
    assert!(
        proofs.iter().all(|p| p.starts_with(&format!(
            "TLS at 127.0.0.1:{port}: chain, key and handshake proven"
        ))),
        "{proofs:?}"
    );
    certroll(dir, &["verify", "--live"]).expect_code(0);
    drop(server);
}
