//! Private Apache httpd, MariaDB and Redis instances for the recipe test
//! (`apache_mariadb_redis`), configured from docs/recipes.md, and the files an operator's
//! own openssl CA gave them before certroll takes over.
//!
//! Nothing here touches a system instance: each server runs from its own configuration
//! under the test's directory (the recipes' `/etc/`, `/run/` and `/var/` moved there), on a
//! free port of 127.0.0.1, as its unprivileged account (`www-data` for Apache's children,
//! `mysql`, `redis`). Each is stopped when its guard is dropped, also when the test fails,
//! and every wait is bounded.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::recipes::{adapt_ports, toml_value, Recipes};
use super::starttls::{free_port, open_dir, run, wait_for};

/// Longest a start or stop command may run.
const COMMAND_LIMIT: &str = "60";

/// The ports the recipes are written with.
pub const APACHE_PORT: &str = "443";
pub const MARIADB_PORT: &str = "3306";
pub const REDIS_PORT: &str = "6379";

/// The test's directory standing in for the nodes' roots, and its free ports.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub ports: Vec<(&'static str, u16)>,
    pub recipes: Recipes,
}

impl Site {
    /// A new directory and a free port for each port `written` in the recipes.
    pub fn new(written: &[&'static str]) -> Site {
        Site {
            dir: open_dir(),
            ports: written.iter().map(|p| (*p, free_port())).collect(),
            recipes: Recipes::load(),
        }
    }

    pub fn root(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// A recipe with the test's root and ports.
    pub fn adapted(&self, name: &str) -> String {
        adapt_ports(self.recipes.raw(name), &self.root(), &self.ports)
    }

    /// The test's port standing in for `written`.
    pub fn port(&self, written: &str) -> u16 {
        self.ports
            .iter()
            .find(|(w, _)| *w == written)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no test port for {written}"))
    }

    /// Writes `text` at `path`, creating its directory.
    pub fn put(&self, path: &Path, text: &str) {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// A directory under the root, created and given to `owner`.
    pub fn owned_dir(&self, rel: &str, owner: &str) -> PathBuf {
        let dir = self.dir.path().join(rel);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        run(
            Command::new("chown").arg(owner).arg(&dir),
            "chown a server's dir",
        );
        dir
    }
}

/// The operator's CA, made with openssl before certroll arrives.
pub struct OpensslCa {
    pub cert: PathBuf,
    key: PathBuf,
}

impl OpensslCa {
    pub fn new(dir: &Path) -> OpensslCa {
        let (cert, key) = (dir.join("operator-ca.pem"), dir.join("operator-ca.key"));
        run(
            Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "30"])
                .args(["-subj", "/CN=Operator Test CA"])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
            "openssl: make the operator's CA",
        );
        OpensslCa { cert, key }
    }

    /// Writes the node recipe's three files: the CA as its bundle, a leaf `CN=<node>` for
    /// its `dns_names` (if any) and its key; the key goes to `key_owner`, mode 0600.
    pub fn issue_for(&self, node: &str, recipe: &str, key_owner: &str) {
        let (bundle, cert, key) = (
            PathBuf::from(toml_value(recipe, "trust_bundle")),
            PathBuf::from(toml_value(recipe, "cert")),
            PathBuf::from(toml_value(recipe, "key")),
        );
        for path in [&bundle, &cert, &key] {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).expect("mkdir for a node's files");
            }
        }
        std::fs::copy(&self.cert, &bundle).expect("write the bundle");
        let dns = recipe
            .lines()
            .find_map(|l| l.strip_prefix("dns_names = [\""))
            .and_then(|l| l.split('"').next())
            .map(|d| format!("subjectAltName=DNS:{d}\n"))
            .unwrap_or_default();
        let ext = cert.with_extension("ext");
        std::fs::write(
            &ext,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=serverAuth,clientAuth\n{dns}"
            ),
        )
        .expect("write the extensions");
        let csr = cert.with_extension("csr");
        run(
            Command::new("openssl")
                .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes"])
                .args(["-subj", &format!("/CN={node}")])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
            "openssl: a node's key and request",
        );
        run(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "30", "-set_serial"])
                .arg(format!("0x{:x}", rand_serial()))
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&self.cert)
                .arg("-CAkey")
                .arg(&self.key)
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&cert),
            "openssl: sign a node's leaf",
        );
        let _ = std::fs::remove_file(&csr);
        let _ = std::fs::remove_file(&ext);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        run(
            Command::new("chown").arg(key_owner).arg(&key),
            "chown a node's key",
        );
    }
}

fn rand_serial() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    nanos | 1
}

/// Apache httpd started with `apache2 -f CONF -k start`; stopped with `-k stop` and, should
/// that fail, by killing the PID in its pid file.
pub struct Apache {
    conf: PathBuf,
    pid_file: PathBuf,
}

impl Apache {
    /// Writes the recipe's apache2.conf and a page `ok.txt`, and starts Apache.
    pub fn start(site: &Site) -> Apache {
        let root = site.dir.path();
        let conf = root.join("etc/apache2/apache2.conf");
        site.put(&conf, &site.adapted("apache2.conf"));
        site.put(&root.join("var/www/web2/ok.txt"), "ok\n");
        std::fs::create_dir_all(root.join("run/apache2")).expect("mkdir run/apache2");
        std::fs::create_dir_all(root.join("var/log/apache2")).expect("mkdir log/apache2");
        let apache = Apache {
            pid_file: root.join("run/apache2/apache2.pid"),
            conf,
        };
        let log = root.join("var/log/apache2/error.log");
        run(
            Command::new("timeout")
                .args([COMMAND_LIMIT, "apache2", "-f"])
                .arg(&apache.conf)
                .args(["-k", "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "apache2 -k start",
        );
        wait_for(site.port(APACHE_PORT), &log);
        apache
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(&self.pid_file).unwrap_or_default();
        let _ = Command::new("timeout")
            .args([COMMAND_LIMIT, "apache2", "-f"])
            .arg(&self.conf)
            .args(["-k", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let pid = pid.trim();
        if !pid.is_empty() && Path::new(&format!("/proc/{pid}")).exists() {
            std::thread::sleep(Duration::from_secs(1));
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
}

/// A server process the test started itself, killed (by its process id) when dropped.
pub struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private mariadbd on the recipe's mariadb.cnf, with a data directory of its own and
/// the recipe's SQL applied.
pub fn mariadb(site: &Site) -> Daemon {
    let root = site.dir.path();
    let cnf = root.join("etc/mysql/mariadb.cnf");
    site.put(&cnf, &site.adapted("mariadb.cnf"));
    let base = site.owned_dir("var/lib/mysql", "mysql");
    site.owned_dir("run/mysqld", "mysql");
    let data = base.join("data");
    run(
        Command::new("timeout")
            .args([COMMAND_LIMIT, "mariadb-install-db", "--no-defaults"])
            .arg(format!("--datadir={}", data.display()))
            .args(["--user=mysql", "--skip-test-db"]),
        "mariadb-install-db",
    );
    let log = base.join("error.log");
    let child = Command::new("/usr/sbin/mariadbd")
        .arg(format!("--defaults-file={}", cnf.display()))
        .arg(format!("--datadir={}", data.display()))
        .arg(format!(
            "--pid-file={}",
            base.join("mariadbd.pid").display()
        ))
        .arg(format!("--log-error={}", log.display()))
        .args(["--user=mysql", "--skip-log-bin"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mariadbd");
    let server = Daemon(child);
    wait_for(site.port(MARIADB_PORT), &log);
    let socket = toml_value(&site.adapted("mariadb"), "reload");
    let socket = socket
        .split_whitespace()
        .find_map(|w| w.strip_prefix("--socket="))
        .expect("the mariadb recipe's reload names its socket")
        .to_string();
    run(
        Command::new("timeout")
            .args([COMMAND_LIMIT, "mariadb", "--no-defaults"])
            .arg(format!("--socket={socket}"))
            .arg("-e")
            .arg(site.adapted("mariadb.sql")),
        "mariadb: the recipe's SQL",
    );
    server
}

/// A private redis-server, run as `redis`, on the recipe's redis.conf plus what a private
/// instance needs (its own directory and log, no persistence).
pub fn redis(site: &Site) -> Daemon {
    let root = site.dir.path();
    let base = site.owned_dir("var/lib/redis", "redis");
    site.owned_dir("run/redis", "redis");
    let log = base.join("redis.log");
    let conf = root.join("etc/redis/redis.conf");
    let text = format!(
        "{}\n# the private instance\ndaemonize no\ndir {}\nlogfile {}\nsave \"\"\nappendonly no\n",
        site.adapted("redis.conf"),
        base.display(),
        log.display()
    );
    site.put(&conf, &text);
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "redis"])
            .output()
            .expect("run id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no `redis` user: install redis-server"))
    };
    let child = Command::new("/usr/bin/redis-server")
        .arg(&conf)
        .uid(id("-u"))
        .gid(id("-g"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let server = Daemon(child);
    wait_for(site.port(REDIS_PORT), &log);
    server
}
