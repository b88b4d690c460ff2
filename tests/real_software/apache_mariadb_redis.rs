//! The recipes for Apache httpd, MariaDB and Redis, as docs/recipes.md writes them, on
//! private instances with mutual TLS: taken over from an operator's openssl-made CA and
//! rotated twice under continuous traffic from worker1 (curl, the `mariadb` client and
//! `redis-cli --tls`, a new process and connection per request, each the recipe's command).
//!
//! The nodes are local (`transport = "local"`), their files under the test's directory
//! (the recipes' `/etc/`, `/run/` and `/var/` moved there), the ports free ones, and the
//! clients resolve the recipes' host names to 127.0.0.1 through a private /etc/hosts (a
//! mount namespace of their own). Every server is confirmed by the built-in TLS confirm
//! (`tls_address`), as the recipes say. MariaDB and Redis ask for client certificates
//! without naming any CA: `verify --live` proves their trust with throwaway client
//! certificates (exit 0), and so does every trust step of the rotations.
//!
//! Beside it, the Redis reload's pitfall: `redis-cli` exits 0 on an error reply.
//!
//! Needs root (the clients' mount namespace, the servers' accounts), apache2-bin,
//! mariadb-server, redis-server, curl and openssl (`scripts/test.sh` installs them); a
//! missing tool fails the test, it is never skipped. About 30 s.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::private_servers::{
    self, Apache, OpensslCa, Site, APACHE_PORT, MARIADB_PORT, REDIS_PORT,
};
use super::recipes::{toml_value, without_keys};
use super::starttls::preflight;
use super::traffic::{self, Loop};
use crate::support::cli::Control;
use crate::support::hostile_tls::node_proofs;

/// `(node, recipe, owner of its key)`.
const NODES: [(&str, &str, &str); 4] = [
    ("web2", "apache", "root"),
    ("db2", "mariadb", "mysql"),
    ("cache1", "redis", "redis"),
    ("worker1", "worker", "root"),
];
const ROTATIONS: u32 = 2;
/// How long traffic may take to show progress.
const TRAFFIC_WAIT: Duration = Duration::from_secs(90);

fn tools() {
    preflight(&[
        ("/usr/sbin/apache2", "apache2-bin"),
        ("/usr/lib/apache2/modules/mod_ssl.so", "apache2-bin"),
        ("/usr/sbin/mariadbd", "mariadb-server"),
        ("/usr/bin/mariadb-install-db", "mariadb-server"),
        ("/usr/bin/mariadb", "mariadb-client"),
        ("/usr/bin/redis-server", "redis-server"),
        ("/usr/bin/redis-cli", "redis-tools"),
        ("/usr/bin/curl", "curl"),
        ("/usr/bin/openssl", "openssl"),
        ("/usr/bin/unshare", "util-linux"),
        ("/usr/bin/timeout", "coreutils"),
    ]);
}

/// The inventory from the recipes, as written.
fn inventory(site: &Site) -> String {
    let mut text = String::from(
        "[certroll]\nstate_dir = \".certroll\"\n\n[ca.internal]\nsubject = \"CN=Recipes Test CA\"\n\n\
         [defaults]\ntransport = \"local\"\nconfirm_timeout = \"60s\"\n\n",
    );
    for (_, recipe, _) in NODES {
        text += &without_keys(&site.adapted(recipe), &["ssh"]);
        text.push('\n');
    }
    text += &site.adapted("worker links");
    text
}

/// The recipe's client command, run as written (adapted) by `sh` in a mount namespace
/// whose /etc/hosts names the servers 127.0.0.1, under a time limit.
fn client(site: &Site, hosts: &Path, recipe: &str, expect: &str) -> Loop {
    let command = site.adapted(recipe).trim().to_string();
    let args = vec![
        "20".to_string(),
        "unshare".into(),
        "-m".into(),
        "sh".into(),
        "-c".into(),
        "mount --bind \"$1\" /etc/hosts && exec sh -c \"$2\"".into(),
        "sh".into(),
        hosts.display().to_string(),
        command,
    ];
    let name = recipe.trim_start_matches("worker ");
    traffic::command_loop(name, "timeout", args, expect)
}

/// Waits (bounded) until every loop has `n` more successes than in `since`.
fn wait_for_traffic(loops: &[&Loop], since: &[u64], n: u64, what: &str, site: &Site) {
    let deadline = Instant::now() + TRAFFIC_WAIT;
    while loops.iter().zip(since).any(|(l, s)| l.tally().ok < s + n) {
        let tallies: Vec<_> = loops.iter().map(|l| l.tally()).collect();
        assert!(
            Instant::now() < deadline,
            "{what}: traffic did not flow within {TRAFFIC_WAIT:?}: {tallies:#?}\n{}",
            logs(site)
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// The servers' logs, for a failure message.
fn logs(site: &Site) -> String {
    let mut out = String::new();
    for rel in [
        "var/log/apache2/error.log",
        "var/lib/mysql/error.log",
        "var/lib/redis/redis.log",
    ] {
        let text = std::fs::read_to_string(site.dir.path().join(rel)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out += &format!("--- {rel} (last lines) ---\n");
        out += &lines[lines.len().saturating_sub(20)..].join("\n");
        out.push('\n');
    }
    out
}

#[test]
fn apache_mariadb_redis_taken_over_from_an_openssl_ca_rotate_twice_under_traffic() {
    tools();
    let started = Instant::now();
    let site = Site::new(&[APACHE_PORT, MARIADB_PORT, REDIS_PORT]);
    let dir = site.dir.path();
    let ca = OpensslCa::new(dir);
    for (node, recipe, owner) in NODES {
        ca.issue_for(node, &site.adapted(recipe), owner);
    }
    let hosts = dir.join("hosts");
    site.put(
        &hosts,
        "127.0.0.1 localhost web2.internal db2.internal cache1.internal\n",
    );
    let _apache = Apache::start(&site);
    let _mariadb = private_servers::mariadb(&site);
    let _redis = private_servers::redis(&site);
    eprintln!("servers up after {:?}", started.elapsed());

    let control = Control {
        dir: dir.to_path_buf(),
        inventory: dir.join("certroll.toml"),
    };
    std::fs::write(&control.inventory, inventory(&site)).expect("write the inventory");
    let ca_file = ca.cert.display().to_string();
    control
        .certroll(&["ca", "import", "internal", "--cert", &ca_file])
        .expect_code(0);
    // The recipes as written: Apache names its CA; MariaDB and Redis name none in their
    // CertificateRequest, which is no longer read as a bundle not loaded: their trust is
    // looked at with throwaway client certificates (G1, imported without its key, cannot
    // issue one, and verify says so). Exit 1: the operator's leaves expire within 30 days.
    let live = control.certroll(&["verify", "--live"]);
    live.expect_code(1);
    assert!(
        !live.stdout.contains("no CA in particular but not"),
        "{live}"
    );
    assert_eq!(live.stdout.matches('✗').count(), 0, "{live}");
    for node in ["db2", "cache1"] {
        assert!(
            live.stdout.contains(&format!("node {node}")) && live.stdout.contains("throwaway"),
            "verify --live says how {node}'s trust was proven\n{live}"
        );
    }

    let curl = client(&site, &hosts, "worker curl", "ok");
    let mariadb = client(&site, &hosts, "worker mariadb", "1");
    let redis = client(&site, &hosts, "worker redis-cli", "PONG");
    let loops = [&curl, &mariadb, &redis];
    let counts = |loops: &[&Loop]| loops.iter().map(|l| l.tally().ok).collect::<Vec<_>>();
    wait_for_traffic(&loops, &[0, 0, 0], 3, "before the takeover", &site);
    for i in 1..=ROTATIONS {
        let run = control.certroll(&["apply", "--rotate", "--yes"]);
        if run.code != 0 {
            let tallies: Vec<_> = loops.iter().map(|l| l.tally()).collect();
            panic!("rotation {i} failed\n{run}\n{tallies:#?}\n{}", logs(&site));
        }
        let since = counts(&loops);
        wait_for_traffic(&loops, &since, 3, &format!("after rotation {i}"), &site);
    }
    let tallies: Vec<_> = [curl, mariadb, redis].into_iter().map(Loop::stop).collect();
    eprintln!("{tallies:#?}\nrecipes test: {:?} in all", started.elapsed());
    for (name, tally) in &tallies {
        assert_eq!(
            tally.failed, 0,
            "failed {name} requests: {:#?}",
            tally.failures
        );
        // A client that opens its certificate and then its key can load one of each across
        // a switch: curl and redis-cli say so in words of their own (traffic.rs), counted
        // apart; it stays rare (worker1's pair switches once per rotation).
        assert!(
            tally.straddled <= 2,
            "{name} straddled a switch {} times",
            tally.straddled
        );
        assert!(tally.ok >= 10, "too little {name} traffic: {tally:?}");
    }
    control.certroll(&["verify", "--live"]).expect_code(0);
    assert_eq!(control.current_generation(), 1 + ROTATIONS);
    // The last rotation's trust steps of the servers that name no CA were proven with
    // throwaway client certificates: the new generation's accepted, the old one's refused.
    for node in ["db2", "cache1"] {
        let proofs = node_proofs(dir, node).join("\n");
        assert!(
            proofs.contains("throwaway")
                && proofs.contains("accepted")
                && proofs.contains("refused"),
            "node {node}'s proofs:\n{proofs}"
        );
    }
    // The keys kept their owners through both rotations (mysql and redis read them).
    for (node, recipe, owner) in NODES {
        let key = toml_value(&site.adapted(recipe), "key");
        let out = Command::new("stat")
            .args(["-L", "-c", "%U %a", &key])
            .output()
            .expect("stat");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{owner} 600"),
            "node {node}'s key {key}"
        );
    }
}

/// `redis-cli` exits 0 when Redis answers `CONFIG SET` with an error: the recipe's reload
/// must not, or certroll would take a refused reload for a done one.
#[test]
fn redis_cli_exits_0_on_an_error_reply_so_the_redis_reload_recipe_checks_for_ok() {
    preflight(&[
        ("/usr/bin/redis-server", "redis-server"),
        ("/usr/bin/redis-cli", "redis-tools"),
        ("/usr/bin/openssl", "openssl"),
    ]);
    let site = Site::new(&[REDIS_PORT]);
    let recipe = site.adapted("redis");
    let ca = OpensslCa::new(site.dir.path());
    ca.issue_for("cache1", &recipe, "redis");
    let _redis = private_servers::redis(&site);
    let reload = toml_value(&recipe, "reload");
    let sh = |command: &str| {
        Command::new("timeout")
            .args(["30", "sh", "-c", command])
            .stdin(Stdio::null())
            .output()
            .expect("run sh")
    };
    let ok = sh(&reload);
    assert!(
        ok.status.success(),
        "the reload of good files failed: {ok:?}"
    );

    // A key that is not the certificate's: Redis refuses to load the pair.
    let key = toml_value(&recipe, "key");
    let other = sh("openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:prime256v1");
    assert!(other.status.success(), "openssl genpkey: {other:?}");
    std::fs::write(&key, &other.stdout).expect("replace the key");
    let config_set = reload
        .split("$(")
        .nth(1)
        .and_then(|s| s.split(" 2>&1)").next())
        .expect("the recipe's reload runs redis-cli in $( ... 2>&1)")
        .to_string();
    let pitfall = sh(&config_set);
    let said = String::from_utf8_lossy(&pitfall.stdout);
    assert!(
        pitfall.status.success() && said.contains("ERR"),
        "redis-cli no longer exits 0 on an error reply? {pitfall:?}"
    );
    let refused = sh(&reload);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("redis: ERR"),
        "the recipe's reload passed a refused CONFIG SET: {refused:?}"
    );
}
