//! Issue 18's proof on real software: the restart-only pool of docs/recipes.md
//! (`restart_pool`: three nginx backends restarted, not reloaded, behind HAProxy with
//! health checks) in a pool `web` with `max_unavailable = 1` and `min_healthy_time = "2s"`,
//! taken over from an operator's openssl-made CA and rotated twice by
//! `certroll apply --rotate --parallel 16`, under curl traffic through HAProxy and a direct
//! mutual-TLS curl per backend (whose failures show the restart windows and are allowed).
//!
//! Required: 0 failed requests through HAProxy; never more than one backend down at once,
//! as the outside observer (`restart_observer`) measures it; each backend restarted (its
//! counted reload, `Pool::counted_reload`) no more often than `certroll plan --rotate
//! --format json` said before the rotation (`restarts[].restarts` of its node); every
//! rotation completes and `verify --live` passes.
//!
//! Needs root, nginx, haproxy, curl and openssl; a missing tool fails the test. Well under a
//! minute per rotation.

use std::collections::BTreeMap;
use std::time::Instant;

use super::recipes::with_value;
use super::restart_observer::Observer;
use super::restart_pool::{Pool, BACKENDS};
use super::restart_pool_harness::{ok_counts, wait_for_traffic};
use super::traffic::Loop;
use crate::support::cli::Control;

/// The takeover (the first rotation, away from the imported CA) and two rotations after it.
const ROTATIONS: u32 = 3;

/// The inventory: the recipes as written (local nodes), each backend's reload counted.
fn inventory(pool: &Pool) -> String {
    let mut text = format!(
        "[certroll]\nstate_dir = \".certroll\"\n\n[ca.internal]\nsubject = \"CN=Restart Pool Test CA\"\n\n\
         [defaults]\ntransport = \"local\"\nconfirm_timeout = \"60s\"\n\n{}\n",
        pool.pool_table()
    );
    for node in BACKENDS {
        let table = super::recipes::without_keys(&pool.backend(node), &["ssh"]);
        text += &with_value(&table, "reload", &pool.counted_reload(node));
        text.push('\n');
    }
    text += &pool.other_nodes_and_links();
    text
}

/// Per restart-only node, how many restarts the plan of the next rotation costs it:
/// `restarts[] = {node, restarts, visits}` of `certroll plan --rotate --format json`.
fn planned_restarts(control: &Control) -> BTreeMap<String, u64> {
    let run = control.certroll(&["plan", "--rotate", "--format", "json"]);
    run.expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("plan --format json is no JSON: {e}\n{run}"));
    let per_node = plan["restarts"]
        .as_array()
        .unwrap_or_else(|| panic!("the plan has no `restarts` list: {plan:#}"));
    per_node
        .iter()
        .map(|r| {
            let node = r["node"].as_str().unwrap_or_default().to_string();
            let n = r["restarts"]
                .as_u64()
                .unwrap_or_else(|| panic!("restarts of {node} is no count: {r}"));
            (node, n)
        })
        .collect()
}

#[test]
fn restart_only_backends_in_a_pool_take_over_and_rotate_twice_without_a_failed_request() {
    let started = Instant::now();
    let pool = Pool::start();
    let dir = pool.site.dir.path();
    let control = Control {
        dir: dir.to_path_buf(),
        inventory: dir.join("certroll.toml"),
    };
    std::fs::write(&control.inventory, inventory(&pool)).expect("write the inventory");
    let ca_file = pool.ca.cert.display().to_string();
    control
        .certroll(&["ca", "import", "internal", "--cert", &ca_file])
        .expect_code(0);

    let through = pool.through_haproxy();
    let direct: Vec<Loop> = BACKENDS.iter().map(|n| pool.direct(n)).collect();
    let mut loops: Vec<&Loop> = vec![&through];
    loops.extend(direct.iter());
    wait_for_traffic(&loops, &[0; 4], 3, "before the takeover", &pool);
    let observer = Observer::start(&pool.ports());

    for i in 1..=ROTATIONS {
        let planned = planned_restarts(&control);
        let before: Vec<usize> = BACKENDS.iter().map(|n| pool.restarts(n)).collect();
        let run = control.certroll(&["apply", "--rotate", "--parallel", "16", "--yes"]);
        let seen = observer.seen();
        if run.code != 0 {
            panic!(
                "rotation {i} failed\n{run}\nthrough HAProxy {:?}\nobserver {seen:?}\n{}",
                through.tally(),
                pool.logs()
            );
        }
        for (node, was) in BACKENDS.iter().zip(&before) {
            let done = (pool.restarts(node) - was) as u64;
            let plan = planned.get(*node).unwrap_or_else(|| {
                panic!("the plan of rotation {i} names no restarts for {node}: {planned:?}")
            });
            eprintln!("rotation {i}: {node} restarted {done} times, planned {plan}");
            assert!(
                done <= *plan,
                "rotation {i}: {node} restarted {done} times, the plan said {plan}"
            );
            assert!(done >= 1, "rotation {i}: {node} was never restarted");
        }
        assert!(
            seen.max_down <= 1,
            "rotation {i}: the observer saw {} backends down at once: {seen:?}",
            seen.max_down
        );
        let since = ok_counts(&loops);
        wait_for_traffic(&loops, &since, 3, &format!("after rotation {i}"), &pool);
    }

    let seen = observer.stop();
    let through = through.stop().1;
    let direct: Vec<_> = direct.into_iter().map(Loop::stop).collect();
    eprintln!(
        "observer {seen:?}\nthrough HAProxy {through:?}\ndirect {direct:#?}\n\
         restart pool test: {:?} in all",
        started.elapsed()
    );
    assert_eq!(
        through.failed, 0,
        "failed requests through HAProxy: {:#?}",
        through.failures
    );
    assert!(through.ok >= 20, "too little traffic: {through:?}");
    assert!(
        seen.max_down <= 1,
        "the observer saw {} backends down at once: {seen:?}",
        seen.max_down
    );
    assert!(
        seen.downs().iter().all(|d| *d >= 1),
        "the observer saw no restart of some backend: {seen:?}"
    );
    control.certroll(&["verify", "--live"]).expect_code(0);
    assert_eq!(control.current_generation(), 1 + ROTATIONS);
}
