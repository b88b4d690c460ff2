//! Wall-clock benchmark of `certroll apply` and `certroll verify` on a fleet of real sshd
//! nodes on 127.0.0.1 (the integration tests' fleet harness, `tests/support`).
//!
//! ```sh
//! cargo bench --bench fleet -- apply 20     # bootstrap, then a phased rotation
//! cargo bench --bench fleet -- verify 50    # bootstrap, then verify every link, in
//!                                           # text and as Prometheus metrics, alternately
//! cargo bench --bench fleet -- ops 20       # latency of single transport operations
//! cargo bench --bench fleet -- count 20     # per rotation step: processes, commands, CPU
//! cargo bench --bench fleet -- floor 20     # a rotation's floor: connections and bare
//!                                           # remote commands, with and without wrappers
//! ```
//!
//! `CERTROLL_BENCH_BIN` runs another build of certroll with the same harness (to compare
//! two versions back to back).
//!
//! Needs root and openssh-server, like the SSH integration tests. The fleet has three
//! tiers: load balancers (one-way TLS to two apps each), apps (mutual TLS to three
//! databases each) and databases; about three links per node. Reload and confirm are
//! cheap shell commands, so the figures measure certroll and SSH, not the nodes.
//! Each certroll run is timed as a whole process (start-up and connections included).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "fleet/count.rs"]
mod count;
#[path = "fleet/floor.rs"]
mod floor;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{Fleet, REMOTE_ROOT};

const CERTROLL: &str = env!("CARGO_BIN_EXE_certroll");

/// The certroll binary measured: `CERTROLL_BENCH_BIN`, else this build's.
fn certroll_bin() -> String {
    std::env::var("CERTROLL_BENCH_BIN").unwrap_or_else(|_| CERTROLL.to_owned())
}

fn main() {
    // `cargo bench` appends `--bench`; only the words after `--` matter.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (what, n) = match args.as_slice() {
        [what, n] => (what.as_str(), n.parse::<usize>().unwrap_or(0)),
        [] => {
            eprintln!("fleet: run `cargo bench --bench fleet -- apply|verify NODES`");
            return;
        }
        _ => (args[0].as_str(), 0),
    };
    if what == "ops" {
        return ops(n.max(1));
    }
    if what == "count" {
        return count::count(n.max(3));
    }
    if what == "floor" {
        return floor::floor(n.max(1));
    }
    assert!(
        matches!(what, "apply" | "verify") && n >= 3,
        "usage: cargo bench --bench fleet -- apply|verify NODES (NODES >= 3)"
    );
    let runs: usize = std::env::var("CERTROLL_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let tiers = Tiers::new(n);
    let started = Instant::now();
    let fleet = Fleet::start(&tiers.names().iter().map(String::as_str).collect::<Vec<_>>());
    let shell = quiet_shells(&fleet, &tiers.names());
    println!(
        "{n} sshd nodes ({} lb, {} app, {} db), {} links ({} mutual); fleet up in {:.1} s; {shell}; best of {runs}",
        tiers.lb,
        tiers.app,
        tiers.db,
        tiers.links().len(),
        tiers.links().iter().filter(|l| l.2).count(),
        started.elapsed().as_secs_f64()
    );
    let mut best = [Duration::MAX; 4];
    for run in 0..runs {
        let inv = write_inventory(&fleet, &tiers, run);
        let boot = timed(&inv, &["apply", "--yes"]);
        best[0] = best[0].min(boot);
        if what == "apply" {
            best[1] = best[1].min(timed(&inv, &["apply", "--rotate", "--yes"]));
        }
        // Alternated, so that both formats see the same load on a shared machine.
        for _ in 0..3 {
            best[2] = best[2].min(timed(&inv, &["verify"]));
            if what == "verify" {
                let prom = timed(&inv, &["verify", "--format", "prometheus"]);
                best[3] = best[3].min(prom);
            }
        }
    }
    println!(
        "apply --yes (bootstrap)     {:>7.3} s",
        best[0].as_secs_f64()
    );
    if what == "apply" {
        println!(
            "apply --rotate --yes        {:>7.3} s",
            best[1].as_secs_f64()
        );
    }
    println!(
        "verify                      {:>7.3} s",
        best[2].as_secs_f64()
    );
    if what == "verify" {
        println!(
            "verify --format prometheus  {:>7.3} s ({:+.1} %)",
            best[3].as_secs_f64(),
            (best[3].as_secs_f64() / best[2].as_secs_f64() - 1.0) * 100.0
        );
    }
}

/// sshd runs every command through the login shell, and bash started by sshd reads
/// `~/.bashrc` even when not interactive. A heavy one (on the machine these figures were
/// taken on, root's runs `pyenv init`, about 90 ms) would be measured on every remote
/// command. Unless `CERTROLL_BENCH_KEEP_BASHRC` is set, an empty file is bind-mounted
/// over it inside each node's own mount namespace (the host's file is untouched).
fn quiet_shells(fleet: &Fleet, names: &[String]) -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".to_owned());
    let bashrc = Path::new(&home).join(".bashrc");
    if std::env::var_os("CERTROLL_BENCH_KEEP_BASHRC").is_some() || !bashrc.exists() {
        return format!("login shell reads {} as is", bashrc.display());
    }
    let empty = fleet.dir().join("empty-bashrc");
    fs::write(&empty, "").expect("write an empty bashrc");
    for name in names {
        let port = fleet.node(name).port;
        let pid = sshd_pid(port);
        let status = Command::new("nsenter")
            .args(["-t", &pid, "-m", "mount", "--bind"])
            .arg(&empty)
            .arg(&bashrc)
            .status()
            .expect("run nsenter (util-linux)");
        assert!(
            status.success(),
            "failed to hide {} on node {name}",
            bashrc.display()
        );
    }
    format!("{} emptied on the nodes", bashrc.display())
}

/// PID of the sshd listening on 127.0.0.1:`port` (from `ss -ltnp`).
fn sshd_pid(port: u16) -> String {
    let out = Command::new("ss")
        .args(["-Hltnp", &format!("sport = :{port}")])
        .output()
        .expect("run ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("pid=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no process listens on port {port}: {text}"))
}

/// Node counts per tier.
struct Tiers {
    lb: usize,
    app: usize,
    db: usize,
}

impl Tiers {
    fn new(n: usize) -> Tiers {
        let lb = (n / 10).max(1);
        let db = (n * 3 / 10).max(1);
        Tiers {
            lb,
            app: n - lb - db,
            db,
        }
    }

    fn names(&self) -> Vec<String> {
        fn tier(t: &'static str, k: usize) -> impl Iterator<Item = String> {
            (0..k).map(move |i| format!("{t}{i:02}"))
        }
        tier("lb", self.lb)
            .chain(tier("app", self.app))
            .chain(tier("db", self.db))
            .collect()
    }

    /// `(client, server, mutual)`: each app behind two load balancers, each app a mutual
    /// client of three databases (fewer when the tier is smaller).
    fn links(&self) -> Vec<(String, String, bool)> {
        let mut links = Vec::new();
        for a in 0..self.app {
            for k in 0..self.lb.min(2) {
                links.push((
                    format!("lb{:02}", (a + k) % self.lb),
                    format!("app{a:02}"),
                    false,
                ));
            }
            for k in 0..self.db.min(3) {
                links.push((
                    format!("app{a:02}"),
                    format!("db{:02}", (a + k) % self.db),
                    true,
                ));
            }
        }
        links
    }
}

/// `key_source` and `key_algorithm` of every node, from `CERTROLL_BENCH_KEY_SOURCE` and
/// `CERTROLL_BENCH_KEY_ALGORITHM` (unset: the defaults, control-side ECDSA P-256 keys).
fn key_settings() -> String {
    let mut t = String::new();
    for (var, key) in [
        ("CERTROLL_BENCH_KEY_SOURCE", "key_source"),
        ("CERTROLL_BENCH_KEY_ALGORITHM", "key_algorithm"),
    ] {
        if let Ok(v) = std::env::var(var) {
            let _ = writeln!(t, "{key} = \"{v}\"");
        }
    }
    t
}

/// A fresh inventory (own state directory) for run `run`; node files are cleared.
fn write_inventory(fleet: &Fleet, tiers: &Tiers, run: usize) -> PathBuf {
    let dir = fleet.dir().join(format!("run{run}"));
    fs::create_dir_all(&dir).expect("create the run directory");
    for name in tiers.names() {
        let tls = fleet.node(&name).dir.join("tls");
        let _ = fs::remove_dir_all(&tls);
        fs::create_dir_all(&tls).expect("create a node's tls directory");
    }
    let mut t = String::from(
        "[certroll]\nstate_dir = \".certroll\"\n\n[ca.internal]\nsubject = \"CN=Bench CA\"\n\n",
    );
    let _ = write!(
        t,
        "[defaults]\n{}\ntrust_bundle = \"{REMOTE_ROOT}/tls/ca.pem\"\ncert = \"{REMOTE_ROOT}/tls/cert.pem\"\n\
         key = \"{REMOTE_ROOT}/tls/key.pem\"\nreload = \"touch {REMOTE_ROOT}/tls/reloaded\"\n\
         confirm = \"test -e {REMOTE_ROOT}/tls/reloaded\"\nconfirm_timeout = \"30s\"\n{}\n",
        fleet.defaults_ssh_line(),
        key_settings()
    );
    for name in tiers.names() {
        let _ = write!(
            t,
            "[nodes.{name}]\n{}\ndns_names = [\"{name}.bench.internal\"]\n\n",
            fleet.node_ssh_line(&name)
        );
    }
    for (c, s, mutual) in tiers.links() {
        let _ = write!(
            t,
            "[[links]]\nclient = \"{c}\"\nserver = \"{s}\"\nmutual = {mutual}\n\n"
        );
    }
    let path = dir.join("certroll.toml");
    fs::write(&path, t).expect("write the inventory");
    path
}

/// Runs `certroll -i INV ARGS...`, panics with its output unless it exits 0; returns its wall time.
fn timed(inv: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out: Output = Command::new(certroll_bin())
        .arg("-i")
        .arg(inv)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run certroll");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "certroll {} exited with {}\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if std::env::var_os("CERTROLL_BENCH_SHOW").is_some() {
        println!(
            "--- certroll {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    took
}

/// Sequential latency of single transport operations on one node, `n` of each.
fn ops(n: usize) {
    use certroll::transport::ssh::SshTransport;
    use certroll::transport::{HostKeyPolicy, Transport, WriteOptions};
    let fleet = Fleet::start(&["n0"]);
    println!("{}", quiet_shells(&fleet, &["n0".to_owned()]));
    let t = SshTransport::connect("n0", &fleet.settings("n0"), HostKeyPolicy::default())
        .expect("connect to the fleet node");
    let path = format!("{REMOTE_ROOT}/tls/ops.pem");
    let data = vec![b'x'; 2048];
    let opts = WriteOptions {
        mode: 0o644,
        backup_tag: Some("bench"),
        what: "file",
    };
    let time = |label: &str, f: &dyn Fn()| {
        f();
        let start = Instant::now();
        for _ in 0..n {
            f();
        }
        let each = start.elapsed() / n as u32;
        println!("{label:<32} {:>8.2} ms", each.as_secs_f64() * 1e3);
    };
    time("exec `true`", &|| {
        assert!(t.exec("true", Duration::from_secs(30)).unwrap().success())
    });
    // The same `true` in the direct wrapper of certroll's own scripts, and on a bare
    // channel (no wrapper at all: what SSH and the login shell cost alone).
    time("  direct wrapper", &|| {
        let out = t.exec_input("true", b"", Duration::from_secs(30));
        assert!(out.unwrap().success())
    });
    time("  bare channel", &|| {
        assert_eq!(t.exec_bare("true").unwrap(), Some(0))
    });
    time("read_file (2 KiB)", &|| {
        let _ = t.read_file(&path).unwrap();
    });
    time("write_file (2 KiB, backup)", &|| {
        t.write_file(&path, &data, opts).unwrap()
    });
}
