//! The PostgreSQL state backend through the real binary, on a private cluster and local
//! nodes: one run at a time across working directories (the other exits 75 naming the
//! holder), resume after kill -9 from another directory, a broken lease stopping its run
//! before its next record, a database restart mid-run, `state push`/`pull` byte for byte,
//! the refusals of bad configuration (exit 78/69, nothing written to the fleet), and
//! `ca extend` saving into the backend.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::postgres::Postgres;
use support::run::{certroll, finish, prepare, Run};

const PASS: &str = "fleet-passphrase";

/// A fleet of local nodes whose inventory names the PostgreSQL backend through
/// `CERTROLL_STATE_URL`; `slow` (a file beside the inventory) makes every reload take as
/// many seconds as it says.
struct Fleet {
    dir: tempfile::TempDir,
    url: String,
}

impl Fleet {
    fn new(pg: &Postgres, nodes: usize) -> Fleet {
        Fleet::with(
            pg,
            nodes,
            "state_env = \"CERTROLL_STATE_URL\"\nlease_seconds = 3\n",
            "encrypted",
        )
    }

    fn with(pg: &Postgres, nodes: usize, certroll_table: &str, key_store: &str) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!(
            "[certroll]\n{certroll_table}\n[ca.internal]\nsubject = \"CN=State CA\"\n\
             key_store = \"{key_store}\"\n{}\n\
             [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\n\
             cert = \"nodes/{{node}}/cert.pem\"\nkey = \"nodes/{{node}}/key.pem\"\n\
             reload = \"test ! -e slow || sleep $(cat slow); touch nodes/{{node}}/reloaded\"\n\
             confirm = \"test -e nodes/{{node}}/reloaded\"\n\n",
            if key_store == "encrypted" {
                "passphrase_env = \"CERTROLL_TEST_PASS\"\n"
            } else {
                ""
            }
        );
        for i in 0..nodes {
            text += &format!("[nodes.n{i}]\ndns_names = [\"n{i}.test\"]\n");
        }
        for i in 1..nodes {
            text += &format!("\n[[links]]\nclient = \"n0\"\nserver = \"n{i}\"\n");
        }
        std::fs::write(dir.path().join("certroll.toml"), text).unwrap();
        for d in ["a", "b", "c"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Fleet {
            dir,
            url: pg.url("fleet"),
        }
    }

    fn inventory(&self) -> PathBuf {
        self.dir.path().join("certroll.toml")
    }

    fn setup(&self, cwd: &str) -> impl FnOnce(&mut Command) + '_ {
        let cwd = self.dir.path().join(cwd);
        move |cmd: &mut Command| {
            cmd.current_dir(cwd)
                .env("CERTROLL_STATE_URL", &self.url)
                .env("CERTROLL_TEST_PASS", PASS)
                .env_remove("PGPASSWORD");
        }
    }

    /// Runs certroll from the working directory `cwd` (`a`, `b` or `c`).
    fn run(&self, cwd: &str, args: &[&str]) -> Run {
        certroll(&self.inventory(), args, self.setup(cwd))
    }

    fn spawn(&self, cwd: &str, args: &[&str]) -> (std::process::Child, Vec<String>) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_certroll"));
        cmd.arg("-i").arg(self.inventory()).args(args);
        (self.setup(cwd))(&mut cmd);
        let child = prepare(&mut cmd).spawn().unwrap();
        (child, args.iter().map(|a| a.to_string()).collect())
    }

    /// Every reload takes `seconds` (0: none).
    fn slow(&self, seconds: u32) {
        let f = self.dir.path().join("slow");
        if seconds > 0 {
            std::fs::write(f, seconds.to_string()).unwrap();
        } else {
            let _ = std::fs::remove_file(f);
        }
    }

    /// No state directory anywhere: the backend holds everything.
    fn assert_no_local_state(&self) {
        for d in ["", "a", "b", "c"] {
            let p = self.dir.path().join(d).join(".certroll");
            assert!(!p.exists(), "{} was created", p.display());
        }
    }

    fn node_files(&self) -> usize {
        walk(&self.dir.path().join("nodes"))
    }
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// The journal's lines in the database, in order (none before the first command created
/// the tables).
fn journal(pg: &Postgres) -> Vec<String> {
    pg.try_rows(
        "fleet",
        "SELECT convert_from(line, 'UTF8') FROM certroll_journal ORDER BY seq",
    )
    .unwrap_or_default()
}

/// Waits (bounded) until `cond` holds.
fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn step_starts(pg: &Postgres) -> usize {
    journal(pg)
        .iter()
        .filter(|l| l.contains("\"step-start\""))
        .count()
}

#[test]
fn one_apply_at_a_time_across_directories_and_resume_after_kill_from_another() {
    let pg = Postgres::start();
    let fleet = Fleet::new(&pg, 4);
    // Long enough that the first run is still working while the others are tried.
    fleet.slow(10);
    let (mut a, _) = fleet.spawn("a", &["apply", "--yes"]);
    wait_for(
        "the first run's first step",
        Duration::from_secs(60),
        || step_starts(&pg) >= 1,
    );
    let b = fleet.run("b", &["apply", "--yes"]);
    b.expect_code(75)
        .expect_output(&format!("pid {}", a.id()))
        .expect_output(&format!("on host {}", certroll::journal::hostname()));
    let run_id = journal(&pg)
        .iter()
        .find(|l| l.contains("\"run-start\""))
        .and_then(|l| l.split("\"run\":\"").nth(1))
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    // `certroll lock` names the holder and the run it executes.
    let lock = fleet.run("c", &["lock"]);
    lock.expect_code(75)
        .expect_output(&format!("pid {}", a.id()))
        .expect_output(&format!("run {run_id}"));
    a.kill().unwrap();
    a.wait().unwrap();
    let before = journal(&pg);
    // The killed run's lease expires by itself (lease_seconds = 3).
    wait_for("the lease to expire", Duration::from_secs(20), || {
        fleet.run("c", &["lock"]).code == 0
    });
    fleet.slow(0);
    let c = fleet.run("c", &["apply", "--yes"]);
    c.expect_code(0)
        .expect_output(&format!("resuming run {run_id}"));
    let after = journal(&pg);
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the journal was rewritten"
    );
    let starts: Vec<&String> = after
        .iter()
        .filter(|l| l.contains("\"run-start\""))
        .collect();
    assert_eq!(starts.len(), 2, "{after:#?}");
    assert!(starts.iter().all(|l| l.contains(&run_id)), "{starts:#?}");
    fleet
        .run("b", &["status"])
        .expect_code(0)
        .expect_output("complete");
    fleet.assert_no_local_state();
}

#[test]
fn lease_broken_while_a_run_writes_stops_it_without_another_record() {
    let pg = Postgres::start();
    // A long lease: its heartbeat (every 20 s) cannot notice the break before the run's
    // next write, so only the database's epoch check can stop that write.
    let fleet = Fleet::with(
        &pg,
        6,
        "state_env = \"CERTROLL_STATE_URL\"\nlease_seconds = 60\n",
        "encrypted",
    );
    fleet.slow(3);
    let (a, args) = fleet.spawn("a", &["apply", "--yes"]);
    wait_for("the run's first step", Duration::from_secs(60), || {
        step_starts(&pg) >= 1
    });
    let epoch = pg.rows("fleet", "SELECT epoch FROM certroll_lease")[0].clone();
    fleet
        .run("b", &["lock", "break", "--yes"])
        .expect_code(0)
        .expect_output("ended the lease");
    let at_break = pg.rows(
        "fleet",
        &format!("SELECT count(*) FROM certroll_journal WHERE epoch = {epoch}"),
    );
    let stopped = finish(args, a);
    stopped
        .expect_code(75)
        .expect_output("no longer holds the lock");
    let after = pg.rows(
        "fleet",
        &format!("SELECT count(*) FROM certroll_journal WHERE epoch = {epoch}"),
    );
    assert_eq!(
        at_break, after,
        "the broken run wrote after its lease ended"
    );
    fleet.slow(0);
    fleet
        .run("c", &["apply", "--yes"])
        .expect_code(0)
        .expect_output("resuming run");
    fleet.assert_no_local_state();
}

#[test]
fn database_restart_mid_run_never_writes_a_record_twice() {
    let pg = Postgres::start();
    let fleet = Fleet::new(&pg, 5);
    fleet.slow(3);
    let (a, args) = fleet.spawn("a", &["apply", "--yes"]);
    wait_for("the run's first step", Duration::from_secs(60), || {
        step_starts(&pg) >= 1
    });
    pg.stop();
    std::thread::sleep(Duration::from_secs(1));
    pg.restart();
    let first = finish(args, a);
    assert!(
        first.code == 0 || first.code == 75,
        "the run neither continued nor stopped resumably\n{first}"
    );
    fleet.slow(0);
    if first.code == 75 {
        fleet.run("b", &["apply", "--yes"]).expect_code(0);
    }
    let lines = journal(&pg);
    let mut seen = std::collections::BTreeSet::new();
    for l in &lines {
        assert!(seen.insert(l), "record written twice: {l}\n{lines:#?}");
    }
    fleet
        .run("c", &["status"])
        .expect_code(0)
        .expect_output("complete");
}

#[test]
fn push_and_pull_round_trip_byte_for_byte() {
    let pg = Postgres::start();
    // First a local fleet: the same inventory without a backend.
    let fleet = Fleet::with(&pg, 3, "", "encrypted");
    fleet.run("a", &["apply", "--yes"]).expect_code(0);
    let state = fleet.dir.path().join(".certroll");
    let before = certroll::state::Snapshot::read_dir(&state).unwrap();
    assert!(!before.files.is_empty() && !before.journal.is_empty());
    let text = std::fs::read_to_string(fleet.inventory()).unwrap();
    std::fs::write(
        fleet.inventory(),
        text.replace(
            "[certroll]\n",
            "[certroll]\nstate_env = \"CERTROLL_STATE_URL\"\n",
        ),
    )
    .unwrap();
    fleet
        .run("b", &["state", "push"])
        .expect_code(0)
        .expect_output("copied");
    fleet
        .run("b", &["status"])
        .expect_code(0)
        .expect_output("complete");
    // Pushing again into a backend that holds state is refused.
    fleet.run("b", &["state", "push"]).expect_code(77);
    std::fs::rename(&state, fleet.dir.path().join("old-state")).unwrap();
    fleet
        .run("c", &["state", "pull"])
        .expect_code(0)
        .expect_output("copied");
    let after = certroll::state::Snapshot::read_dir(&state).unwrap();
    assert_eq!(after, before, "the round trip changed the state");
    // A routine run on the backend works from what was pushed.
    fleet.run("a", &["apply", "--yes"]).expect_code(0);
}

#[test]
fn bad_backend_configuration_is_refused_and_nothing_reaches_the_fleet() {
    let pg = Postgres::start();
    // A URL without a database: the inventory is refused.
    let no_db = Fleet::with(
        &pg,
        2,
        &format!(
            "state = \"{}\"\n",
            pg.url_without_password("").trim_end_matches('/')
        ),
        "encrypted",
    );
    no_db
        .run("a", &["apply", "--yes"])
        .expect_code(78)
        .expect_output("names no database");
    // A password in the inventory is refused.
    let pw = Fleet::with(
        &pg,
        2,
        &format!("state = \"{}\"\n", pg.url("fleet")),
        "encrypted",
    );
    pw.run("a", &["plan"])
        .expect_code(78)
        .expect_output("carries a password");
    // A plain key file may not go to the database.
    let file = Fleet::with(&pg, 2, "state_env = \"CERTROLL_STATE_URL\"\n", "file");
    file.run("a", &["apply", "--yes"])
        .expect_code(78)
        .expect_output("key_store = \"encrypted\"");
    // An unreachable server.
    let mut down = Fleet::new(&pg, 2);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    down.url = format!("postgres://postgres:x@127.0.0.1:{port}/fleet");
    down.run("a", &["apply", "--yes"]).expect_code(69);
    // Wrong credentials.
    let mut wrong = Fleet::new(&pg, 2);
    wrong.url = pg
        .url("fleet")
        .replace(support::postgres::PASSWORD, "wrong");
    wrong
        .run("a", &["apply", "--yes"])
        .expect_code(78)
        .expect_output("credentials");
    // A database whose schema a newer certroll wrote.
    let newer = Fleet::new(&pg, 2);
    newer.run("a", &["status"]).expect_code(0);
    pg.sql("fleet", "UPDATE certroll_schema SET version = 99");
    newer
        .run("a", &["apply", "--yes"])
        .expect_code(78)
        .expect_output("newer certroll");
    pg.sql("fleet", "UPDATE certroll_schema SET version = 1");
    // A database holding another fleet's state.
    pg.sql(
        "fleet",
        "INSERT INTO certroll_fleet (id, cas) VALUES (1, ARRAY['edge'])",
    );
    newer
        .run("a", &["apply", "--yes"])
        .expect_code(78)
        .expect_output("another fleet");
    for f in [&no_db, &pw, &file, &down, &wrong, &newer] {
        assert_eq!(f.node_files(), 0, "a refused command wrote to the fleet");
        f.assert_no_local_state();
    }
}

#[test]
fn push_refuses_an_unfinished_local_run_and_lock_reads_the_local_lock() {
    let pg = Postgres::start();
    let fleet = Fleet::with(&pg, 2, "", "encrypted");
    fleet
        .run("a", &["lock"])
        .expect_code(0)
        .expect_output("is free");
    // A node whose reload fails leaves the run incomplete.
    let text = std::fs::read_to_string(fleet.inventory()).unwrap();
    std::fs::write(
        fleet.inventory(),
        text.replace("touch nodes/{node}/reloaded\"", "exit 3\""),
    )
    .unwrap();
    fleet.run("a", &["apply", "--yes"]).expect_code(75);
    let text = std::fs::read_to_string(fleet.inventory()).unwrap();
    std::fs::write(
        fleet.inventory(),
        text.replace(
            "[certroll]\n",
            "[certroll]\nstate_env = \"CERTROLL_STATE_URL\"\n",
        ),
    )
    .unwrap();
    fleet
        .run("b", &["state", "push"])
        .expect_code(77)
        .expect_output("is unfinished");
    assert!(
        journal(&pg).is_empty(),
        "a refused push wrote to the database"
    );
}

#[test]
fn ca_extend_on_postgres_saves_the_extension_in_the_backend_and_writes_nothing_locally() {
    let pg = Postgres::start();
    let fleet = Fleet::new(&pg, 3);
    fleet.run("a", &["apply", "--yes"]).expect_code(0);
    fleet.run("b", &["verify"]).expect_code(0);
    let before = journal(&pg).len();

    // Extended from one directory, under the lease; the store it changed is the backend's.
    fleet
        .run("a", &["ca", "extend", "internal"])
        .expect_code(0)
        .expect_output("extended CA internal G1");
    fleet.assert_no_local_state();
    assert_eq!(journal(&pg).len(), before, "ca extend journals no run");

    // Another directory reads the extended certificate from the backend: every bundle is
    // outdated until a routine run installs it.
    let run = fleet.run("b", &["verify", "--format", "json"]);
    assert_eq!(run.code, 1, "{run}");
    assert_eq!(
        run.stdout.matches("outdated-ca-certificate").count(),
        3,
        "{run}"
    );
    fleet.run("c", &["apply", "--yes"]).expect_code(0);
    fleet.run("a", &["verify"]).expect_code(0);
    fleet.assert_no_local_state();
}
