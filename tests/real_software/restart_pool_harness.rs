//! The restart-only pool (`restart_pool`) proven by hand, without certroll: what the
//! certroll-driven test (`restart_pool_certroll`) relies on to measure a pool budget.
//!
//! - Restarting the backends one at a time, each back and healthy for two seconds before
//!   the next (what `max_unavailable = 1` and `min_healthy_time = "2s"` ask of certroll):
//!   no request through HAProxy fails, the outside observer never sees more than one
//!   backend down, it sees each restart, and the restart logs count each one.
//! - The negative control: all three restarted at once, each down for two seconds (a
//!   restart with a slow start): the observer sees three down at once and the counters
//!   count HAProxy's failed requests — so a budget breach cannot go unnoticed.
//!
//! Needs root, nginx, haproxy, curl and openssl; a missing tool fails the test. About 20 s.

use std::thread;
use std::time::{Duration, Instant};

use super::restart_observer::Observer;
use super::restart_pool::{Pool, BACKENDS};
use super::traffic::{Loop, Tally};

/// How long traffic may take to show progress.
const TRAFFIC_WAIT: Duration = Duration::from_secs(60);
/// How long a restarted backend stays healthy before the next one goes.
const HEALTHY: Duration = Duration::from_secs(2);

/// Waits (bounded) until every loop has `n` more successes than in `since`.
pub fn wait_for_traffic(loops: &[&Loop], since: &[u64], n: u64, what: &str, pool: &Pool) {
    let deadline = Instant::now() + TRAFFIC_WAIT;
    while loops.iter().zip(since).any(|(l, s)| l.tally().ok < s + n) {
        let tallies: Vec<Tally> = loops.iter().map(|l| l.tally()).collect();
        assert!(
            Instant::now() < deadline,
            "{what}: traffic did not flow within {TRAFFIC_WAIT:?}: {tallies:#?}\n{}",
            pool.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn ok_counts(loops: &[&Loop]) -> Vec<u64> {
    loops.iter().map(|l| l.tally().ok).collect()
}

#[test]
fn haproxy_keeps_serving_while_one_restart_only_backend_restarts_at_a_time() {
    let started = Instant::now();
    let pool = Pool::start();
    let through = pool.through_haproxy();
    let direct: Vec<Loop> = BACKENDS.iter().map(|n| pool.direct(n)).collect();
    let mut loops: Vec<&Loop> = vec![&through];
    loops.extend(direct.iter());
    wait_for_traffic(&loops, &[0; 4], 5, "before the restarts", &pool);

    // One at a time, each healthy for a while before the next.
    let observer = Observer::start(&pool.ports());
    for node in BACKENDS {
        pool.restart(node);
        thread::sleep(HEALTHY);
    }
    let since = ok_counts(&loops);
    wait_for_traffic(&loops, &since, 3, "after the restarts", &pool);
    let one_at_a_time = observer.stop();
    let after_restarts = through.tally();
    let direct_failed: Vec<u64> = direct.iter().map(|l| l.tally().failed).collect();
    eprintln!(
        "one at a time: {one_at_a_time:?}\nthrough HAProxy {after_restarts:?}\n\
         direct failures (restart windows) {direct_failed:?}"
    );
    assert_eq!(
        after_restarts.failed, 0,
        "failed requests through HAProxy while one backend restarted at a time: {:#?}",
        after_restarts.failures
    );
    assert!(
        one_at_a_time.max_down <= 1,
        "the observer saw {} backends down at once: {one_at_a_time:?}",
        one_at_a_time.max_down
    );
    assert_eq!(
        one_at_a_time.downs(),
        vec![1, 1, 1],
        "the observer must see each restart once: {one_at_a_time:?}"
    );
    for node in BACKENDS {
        assert_eq!(pool.restarts(node), 1, "{node}'s restart log");
    }

    // The negative control: the whole pool down at once.
    let observer = Observer::start(&pool.ports());
    let failed_before = through.tally().failed;
    thread::scope(|s| {
        for node in BACKENDS {
            let pool = &pool;
            s.spawn(move || {
                pool.stop_backend(node);
                thread::sleep(HEALTHY);
                pool.start_backend(node);
            });
        }
    });
    let since = ok_counts(&loops);
    wait_for_traffic(&loops, &since, 3, "after the whole pool restarted", &pool);
    let all_at_once = observer.stop();
    let through_all = through.tally();
    eprintln!("all at once: {all_at_once:?}\nthrough HAProxy {through_all:?}");
    assert_eq!(
        all_at_once.max_down, 3,
        "the observer must see the whole pool down: {all_at_once:?}"
    );
    assert!(
        through_all.failed > failed_before,
        "with every backend down HAProxy must fail requests, and the counters count them: \
         {through_all:?}"
    );
    let tallies: Vec<(String, Tally)> = std::iter::once(through)
        .chain(direct)
        .map(Loop::stop)
        .collect();
    for (_, tally) in &tallies {
        assert!(tally.ok >= 10, "too little traffic: {tallies:#?}");
    }
    eprintln!("restart pool harness: {:?} in all", started.elapsed());
}
