//! A pool of three restart-only TLS backends behind HAProxy, as docs/recipes.md writes it
//! (`# recipe: restart pool …`): private nginx instances whose `reload` is a full restart
//! (stop the master, wait for it to exit, start again — the backend serves nothing
//! meanwhile), each with mutual TLS, behind a private HAProxy whose health checks take a
//! restarting backend out and whose retries send a refused connection to another backend.
//!
//! Everything runs on the control host under the test's directory (the recipes' `/etc/`,
//! `/run/` and `/var/` moved there), on free ports of 127.0.0.1; the nodes are local
//! (`transport = "local"`). The files start from an operator's openssl-made CA. Every
//! reload run through [`Pool::counted_reload`] appends a line to a per-node file, so a test
//! counts restarts from outside certroll. Every server started here is stopped when the
//! pool is dropped (by the process ids in its pid files), also when a test fails, and every
//! wait is bounded.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::private_servers::{OpensslCa, Site};
use super::recipes::{toml_value, without_keys};
use super::starttls::{preflight, run, wait_for};
use super::traffic::{self, Loop};

/// The backends, in the order of their ports as the recipes write them.
pub const BACKENDS: [&str; 3] = ["web1", "web2", "web3"];
/// The ports the recipes are written with: web1, web2, web3, then HAProxy's frontend.
const WRITTEN_PORTS: [&str; 4] = ["8443", "8444", "8445", "9443"];
/// How long a start, stop or restart may take before a test fails.
const SERVER_LIMIT: Duration = Duration::from_secs(30);

/// The tools the pool needs; a missing one fails the test, naming its package.
pub fn tools() {
    preflight(&[
        ("/usr/sbin/nginx", "nginx-light (or nginx)"),
        ("/usr/sbin/haproxy", "haproxy"),
        ("/usr/bin/curl", "curl"),
        ("/usr/bin/openssl", "openssl"),
        ("/usr/bin/timeout", "coreutils"),
    ]);
}

/// The running pool: three nginx backends, HAProxy, and the client node's files.
pub struct Pool {
    pub site: Site,
    pub ca: OpensslCa,
}

impl Pool {
    /// Issues every node's files from a new openssl CA, writes the recipes' configurations
    /// and starts the three backends and HAProxy.
    pub fn start() -> Pool {
        tools();
        let site = Site::new(&WRITTEN_PORTS);
        let ca = OpensslCa::new(site.dir.path());
        let pool = Pool { site, ca };
        for node in BACKENDS {
            pool.ca.issue_for(node, &pool.backend(node), "root");
        }
        pool.ca
            .issue_for("lb1", &pool.site.adapted("haproxy"), "root");
        pool.ca
            .issue_for("curl1", &pool.site.adapted("curl"), "root");
        std::fs::create_dir_all(pool.restart_log_dir()).expect("mkdir the restart logs");
        let root = pool.site.dir.path();
        std::fs::create_dir_all(root.join("run")).expect("mkdir run");
        std::fs::create_dir_all(root.join("var/log/nginx")).expect("mkdir var/log/nginx");
        for node in BACKENDS {
            pool.site.put(
                &root.join(format!("etc/nginx/{node}.conf")),
                &pool.for_backend(node, "restart pool nginx.conf"),
            );
            pool.start_backend(node);
        }
        pool.site.put(
            &root.join("etc/haproxy/haproxy.cfg"),
            &pool.site.adapted("restart pool haproxy.cfg"),
        );
        run(
            Command::new("timeout")
                .args(["30", "haproxy", "-W", "-D", "-f"])
                .arg(root.join("etc/haproxy/haproxy.cfg"))
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "haproxy -W -D",
        );
        wait_for(pool.site.port("9443"), &root.join("run/haproxy.pid"));
        pool
    }

    /// A recipe written for web1, for `node`: its name and port in place of web1's.
    fn for_backend(&self, node: &str, recipe: &str) -> String {
        let written = WRITTEN_PORTS[backend_index(node)];
        let text = self
            .site
            .recipes
            .raw(recipe)
            .replace("web1", node)
            .replace("8443", written);
        super::recipes::adapt_ports(&text, &self.site.root(), &self.site.ports)
    }

    /// The backend's node table (without the `[pools.web]` table), adapted.
    pub fn backend(&self, node: &str) -> String {
        let text = self.for_backend(node, "restart pool");
        let at = text
            .find("[nodes.")
            .expect("the restart pool recipe has a [nodes.web1] table");
        text[at..].to_string()
    }

    /// The recipe's `[pools.web]` table, as written.
    pub fn pool_table(&self) -> String {
        let text = self.site.recipes.raw("restart pool");
        let at = text.find("[nodes.").unwrap_or(text.len());
        text[..at].to_string()
    }

    /// The backend's port on 127.0.0.1.
    pub fn port(&self, node: &str) -> u16 {
        self.site.port(WRITTEN_PORTS[backend_index(node)])
    }

    pub fn ports(&self) -> Vec<u16> {
        BACKENDS.iter().map(|n| self.port(n)).collect()
    }

    fn restart_log_dir(&self) -> PathBuf {
        self.site.dir.path().join("restarts")
    }

    /// The recipe's restart, preceded by a line appended to the node's restart log.
    pub fn counted_reload(&self, node: &str) -> String {
        let log = self.restart_log_dir().join(format!("{node}.log"));
        let reload = toml_value(&self.backend(node), "reload");
        format!("date +%s.%N >> {} && {reload}", log.display())
    }

    /// How many times the backend's counted reload ran.
    pub fn restarts(&self, node: &str) -> usize {
        let log = self.restart_log_dir().join(format!("{node}.log"));
        std::fs::read_to_string(log)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// Restarts the backend with the recipe's reload (counted), as certroll would.
    pub fn restart(&self, node: &str) {
        sh(&self.counted_reload(node), &format!("restart {node}"));
    }

    fn conf(&self, node: &str) -> PathBuf {
        self.site.dir.path().join(format!("etc/nginx/{node}.conf"))
    }

    fn pid_file(&self, node: &str) -> PathBuf {
        self.site.dir.path().join(format!("run/nginx-{node}.pid"))
    }

    /// Starts the backend's nginx and waits (bounded) until it listens.
    pub fn start_backend(&self, node: &str) {
        let conf = self.conf(node);
        sh(
            &format!("nginx -c {} </dev/null >/dev/null 2>&1", conf.display()),
            &format!("start {node}"),
        );
        let log = self
            .site
            .dir
            .path()
            .join(format!("var/log/nginx/{node}.error.log"));
        wait_for(self.port(node), &log);
    }

    /// Stops the backend's nginx and waits (bounded) until its master is gone.
    pub fn stop_backend(&self, node: &str) {
        let pid = std::fs::read_to_string(self.pid_file(node)).unwrap_or_default();
        let pid = pid.trim();
        assert!(!pid.is_empty(), "{node}: no nginx pid file to stop");
        sh(
            &format!("nginx -c {} -s quit", self.conf(node).display()),
            &format!("stop {node}"),
        );
        let end = Instant::now() + SERVER_LIMIT;
        while PathBuf::from(format!("/proc/{pid}")).exists() {
            assert!(Instant::now() < end, "{node}: nginx {pid} still runs");
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// curl's words for a request through HAProxy, the recipe's `curl command` with a
    /// resolve of lb1.internal to 127.0.0.1 and a time limit.
    fn curl_args(&self, host: &str, port: u16) -> Vec<String> {
        let client = self.site.adapted("curl");
        let mut args: Vec<String> = vec![
            "-sS".into(),
            "--max-time".into(),
            "10".into(),
            "--resolve".into(),
            format!("{host}:{port}:127.0.0.1"),
        ];
        for (flag, key) in [
            ("--cacert", "trust_bundle"),
            ("--cert", "cert"),
            ("--key", "key"),
        ] {
            args.push(flag.into());
            args.push(toml_value(&client, key));
        }
        args.push(format!("https://{host}:{port}/"));
        args
    }

    /// curl1 → HAProxy → a backend: a new curl process and connection per request.
    pub fn through_haproxy(&self) -> Loop {
        let command = self.site.adapted("curl command");
        assert!(
            command.contains("https://lb1.internal:"),
            "the curl recipe goes to lb1: {command}"
        );
        traffic::curl_loop(self.curl_args("lb1.internal", self.site.port("9443")))
    }

    /// curl1 → `node` directly with mutual TLS: it fails while its backend restarts.
    pub fn direct(&self, node: &str) -> Loop {
        let args = self.curl_args(&format!("{node}.internal"), self.port(node));
        traffic::command_loop("curl", "curl", args, "ok")
    }

    /// The node tables of lb1 and curl1 and the links, adapted, without `ssh` lines.
    pub fn other_nodes_and_links(&self) -> String {
        let mut text = String::new();
        for recipe in ["haproxy", "curl"] {
            text += &without_keys(&self.site.adapted(recipe), &["ssh"]);
            text.push('\n');
        }
        text += &self.site.adapted("restart pool links");
        text
    }

    /// The servers' logs, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in BACKENDS {
            let rel = format!("var/log/nginx/{node}.error.log");
            let text = std::fs::read_to_string(self.site.dir.path().join(&rel)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!("--- {rel} (last lines) ---\n");
            out += &lines[lines.len().saturating_sub(10)..].join("\n");
            out.push('\n');
        }
        out
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let root = self.site.dir.path().to_path_buf();
        let mut pids = vec![root.join("run/haproxy.pid")];
        pids.extend(BACKENDS.iter().map(|n| self.pid_file(n)));
        for file in pids {
            let pid = std::fs::read_to_string(&file).unwrap_or_default();
            let pid = pid.trim();
            if pid.is_empty() {
                continue;
            }
            let _ = Command::new("kill").args(["-TERM", pid]).status();
            let end = Instant::now() + Duration::from_secs(5);
            while PathBuf::from(format!("/proc/{pid}")).exists() && Instant::now() < end {
                thread::sleep(Duration::from_millis(50));
            }
            if PathBuf::from(format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
    }
}

fn backend_index(node: &str) -> usize {
    BACKENDS
        .iter()
        .position(|b| *b == node)
        .unwrap_or_else(|| panic!("{node} is no backend of the pool"))
}

/// Runs `command` with `sh -c` under a time limit; panics with its output unless it exits 0.
fn sh(command: &str, what: &str) {
    run(
        Command::new("timeout")
            .arg(SERVER_LIMIT.as_secs().to_string())
            .args(["sh", "-c", command]),
        what,
    );
}
