//! Pools and restart-only nodes through the real binary on local nodes: each node is
//! restarted exactly as often as the plan said, a pool's members never restart together
//! (measured from the commands' own log), `reload_trust` and `{changes}` tell the commands
//! what changed, a member that does not come back stops its pool until a resumed run brings
//! it back, and bad pool input is refused at load.

use std::collections::HashMap;
use std::path::Path;

mod support;
use support::run::{certroll, Run};

/// A log line per command: `<nanoseconds> <node> <what> <changes>`.
const LOG: &str = "restarts.log";

fn inventory(dir: &Path, pools: &str, app: &str) {
    let text = format!(
        "[ca.internal]\nsubject = \"CN=Pools CA\"\n\n{pools}\n\
         [defaults]\ntransport = \"local\"\ntrust_bundle = \"nodes/{{node}}/ca.pem\"\n\
         cert = \"nodes/{{node}}/cert.pem\"\nkey = \"nodes/{{node}}/key.pem\"\n\
         restarts = true\nconfirm_timeout = \"3s\"\n\
         reload = 'echo \"$(date +%s%N) {{node}} start {{changes}}\" >> {LOG}; sleep 0.2; echo \"$(date +%s%N) {{node}} end {{changes}}\" >> {LOG}'\n\
         confirm = 'test ! -e down-{{node}}'\n\n\
         [nodes.edge]\n[nodes.app1]\n{app}\n[nodes.app2]\n{app}\n[nodes.app3]\n{app}\n[nodes.db]\n\n\
         [[links]]\nclient = \"edge\"\nserver = [\"app1\", \"app2\", \"app3\"]\n\n\
         [[links]]\nclient = [\"app1\", \"app2\", \"app3\"]\nserver = \"db\"\nmutual = true\n"
    );
    std::fs::write(dir.join("certroll.toml"), text).unwrap();
}

fn run(dir: &Path, args: &[&str]) -> Run {
    certroll(&dir.join("certroll.toml"), args, |c| {
        c.current_dir(dir).env_remove("CERTROLL_INVENTORY");
    })
}

/// (time, node, start?, changes) per log line, after `skip` lines.
fn log(dir: &Path, skip: usize) -> Vec<(u128, String, bool, String)> {
    let text = std::fs::read_to_string(dir.join(LOG)).unwrap_or_default();
    text.lines()
        .skip(skip)
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].to_string(),
                f[2] == "start",
                f[3].to_string(),
            )
        })
        .collect()
}

fn lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join(LOG)).map_or(0, |t| t.lines().count())
}

/// Most members of `members` between their start and end at once.
fn most_at_once(events: &[(u128, String, bool, String)], members: &[&str]) -> usize {
    let (mut now, mut most) = (0usize, 0usize);
    for (_, _, start, _) in events.iter().filter(|e| members.contains(&e.1.as_str())) {
        if *start {
            now += 1;
            most = most.max(now);
        } else {
            now -= 1;
        }
    }
    most
}

const POOL: &str = "[pools.app]\nmax_unavailable = 1\nmin_healthy_time = \"1s\"\n";
const MEMBER: &str = "pool = \"app\"";

#[test]
fn restart_only_nodes_restart_as_often_as_the_plan_says_one_pool_member_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    inventory(dir.path(), POOL, MEMBER);
    run(dir.path(), &["apply", "--yes", "--parallel", "8"]).expect_code(0);
    let plan = run(
        dir.path(),
        &["plan", "--rotate", "--check", "--format", "json"],
    );
    plan.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let promised: HashMap<String, u64> = doc["restarts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["node"].as_str().unwrap().to_string(),
                r["restarts"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(promised["app1"], 2, "{}", plan.stdout);
    assert_eq!(promised["db"], 2, "{}", plan.stdout);
    assert_eq!(doc["pools"][0]["budget"], 1);
    let before = lines(dir.path());
    let out = run(
        dir.path(),
        &["apply", "--rotate", "--yes", "--parallel", "8"],
    );
    out.expect_code(0).expect_output("waits for pool app");
    let events = log(dir.path(), before);
    for (node, count) in &promised {
        let seen = events.iter().filter(|e| &e.1 == node && e.2).count() as u64;
        assert_eq!(
            seen, *count,
            "{node} restarted {seen} times, the plan said {count}\n{out}"
        );
    }
    assert_eq!(
        most_at_once(&events, &["app1", "app2", "app3"]),
        1,
        "{events:?}"
    );
}

#[test]
fn reload_trust_restarts_only_for_trust_changes_and_commands_are_told_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    inventory(dir.path(), "", "");
    let text = std::fs::read_to_string(dir.path().join("certroll.toml")).unwrap();
    let text = text.replace(
        "[nodes.db]\n",
        "[nodes.db]\nreload_trust = 'echo \"$(date +%s%N) db restart {changes}\" >> restarts.log'\n",
    );
    std::fs::write(dir.path().join("certroll.toml"), text).unwrap();
    run(dir.path(), &["apply", "--yes"]).expect_code(0);
    let before = lines(dir.path());
    run(dir.path(), &["apply", "--rotate", "--yes"]).expect_code(0);
    let db: Vec<(bool, String)> = log(dir.path(), before)
        .into_iter()
        .filter(|e| e.1 == "db")
        .map(|e| (e.2, e.3))
        .collect();
    // db verifies app1..3 (mutual): trust-add restarts it, then leaf-swap + trust-prune
    // (a trust change) restarts it again; `reload` never runs for it.
    assert_eq!(
        db,
        [
            (false, "bundle".to_string()),
            (false, "bundle,leaf".to_string())
        ],
        "{db:?}"
    );
    let edge: Vec<String> = log(dir.path(), before)
        .into_iter()
        .filter(|e| e.1 == "edge" && e.2)
        .map(|e| e.3)
        .collect();
    assert_eq!(edge, ["bundle,leaf", "bundle"]);
}

#[test]
fn a_member_that_does_not_come_back_stops_its_pool_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    inventory(dir.path(), "[pools.app]\nmax_unavailable = 2\n", MEMBER);
    run(dir.path(), &["apply", "--yes"]).expect_code(0);
    std::fs::write(dir.path().join("down-app1"), "").unwrap();
    let before = lines(dir.path());
    let out = run(
        dir.path(),
        &["apply", "--rotate", "--yes", "--parallel", "1"],
    );
    out.expect_code(75)
        .expect_output("pool app stopped: member app1")
        .expect_output("confirm command `test ! -e down-app1` failed");
    let restarted: Vec<String> = log(dir.path(), before)
        .into_iter()
        .filter(|e| e.2 && e.1.starts_with("app"))
        .map(|e| e.1)
        .collect();
    assert_eq!(restarted, ["app1"], "only the member that went down\n{out}");
    run(dir.path(), &["status"])
        .expect_code(75)
        .expect_output("pool app: 1 of 3 member(s) down now, budget 2: app1 (failed)")
        .expect_output("app2 waits for app1");
    std::fs::remove_file(dir.path().join("down-app1")).unwrap();
    run(dir.path(), &["apply", "--yes"]).expect_code(0);
}

#[test]
fn a_prune_without_restart_is_reported_pending_by_verify_until_the_next_restart() {
    let dir = tempfile::tempdir().unwrap();
    inventory(dir.path(), "", "");
    let text = std::fs::read_to_string(dir.path().join("certroll.toml")).unwrap();
    let text = text.replace("[nodes.edge]\n", "[nodes.edge]\nrestart_on_prune = false\n");
    std::fs::write(dir.path().join("certroll.toml"), text).unwrap();
    run(dir.path(), &["apply", "--yes"]).expect_code(0);
    run(dir.path(), &["verify"]).expect_code(0);
    let before = lines(dir.path());
    run(dir.path(), &["apply", "--rotate", "--yes"]).expect_code(0);
    let edge: Vec<String> = log(dir.path(), before)
        .into_iter()
        .filter(|e| e.1 == "edge" && e.2)
        .map(|e| e.3)
        .collect();
    assert_eq!(edge, ["bundle,leaf"], "the prune ran no reload");
    let out = run(dir.path(), &["verify"]);
    out.expect_output("node edge holds its pruned bundle on disk, but run")
        .expect_output("restart pending");
    assert_ne!(out.code, 0, "pending is not healthy\n{out}");
}

#[test]
fn a_closed_window_stops_a_no_wait_run_before_any_member_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(3);
    let window = format!(
        "[pools.app]\nwindows = [\"daily {:02}:00-{:02}:00 UTC\"]\n",
        later.hour(),
        (later.hour() + 1) % 24
    );
    inventory(dir.path(), "", "");
    run(dir.path(), &["apply", "--yes"]).expect_code(0);
    inventory(dir.path(), &window, MEMBER);
    let plan = run(dir.path(), &["plan", "--rotate"]);
    plan.expect_code(0)
        .expect_output("restarts only in daily")
        .expect_output("before the old generation expires");
    let before = lines(dir.path());
    let out = run(dir.path(), &["apply", "--rotate", "--yes", "--no-wait"]);
    out.expect_code(75)
        .expect_output("pool app: every restart window is closed until")
        .expect_output("stopping here (--no-wait)");
    let members: Vec<String> = log(dir.path(), before)
        .into_iter()
        .filter(|e| e.2 && e.1.starts_with("app"))
        .map(|e| e.1)
        .collect();
    assert!(members.is_empty(), "{members:?}\n{out}");
    assert!(
        log(dir.path(), before).iter().any(|e| e.1 == "edge"),
        "nodes in no pool carry on\n{out}"
    );
}

#[test]
fn an_unknown_pool_is_refused_at_load_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    inventory(dir.path(), POOL, "pool = \"ap\"");
    let out = run(dir.path(), &["apply", "--yes"]);
    out.expect_code(78)
        .expect_output("certroll.toml:20:8: node app1 names pool \"ap\", which is not defined")
        .expect_output("did you mean \"app\"?");
    assert!(!dir.path().join(".certroll").exists(), "{out}");
}
