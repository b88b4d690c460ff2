//! Crash safety under live traffic: `certroll apply --rotate` is killed with SIGKILL at
//! several points of the rotation (once the journal holds k step-done records), and a plain
//! `certroll apply --yes` resumes it each time. The peers run throughout: not one handshake
//! may fail, traffic never stops, and the rotation ends with every node on G2.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::checks::{assert_all_on_new_generation, assert_peers_serve_files_on_disk, Generations};
use crate::harness::{serial, wait_with_timeout, Zdt, GROWTH, MAX_STALL, SAMPLE_EVERY};
use crate::support::traffic::Sampler;
use crate::three_tier;

const KILL_WAIT: Duration = Duration::from_secs(120);

/// Steps of the last run, from `certroll status --format json`: (total, done, interrupted).
pub(crate) fn step_states(zdt: &Zdt) -> (usize, usize, usize) {
    let status = zdt.certroll(&["status", "--format", "json"]);
    assert_eq!(
        status.code,
        Some(75),
        "status of an interrupted rotation must say incomplete\n{}{}",
        status.stdout,
        status.stderr
    );
    let doc: Value = serde_json::from_str(&status.stdout).expect("status JSON");
    let steps = doc["steps"].as_array().expect("steps").clone();
    let count = |state: &str| steps.iter().filter(|s| s["state"] == state).count();
    (steps.len(), count("done"), count("interrupted"))
}

/// Starts certroll with `args` and kills it with SIGKILL once the journal holds `k`
/// step-done records of this rotation (`baseline` is the count before it began).
pub(crate) fn kill_after_steps(zdt: &Zdt, args: &[&str], baseline: usize, k: usize, log: &str) {
    let mut child = zdt.spawn(args, log);
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        if zdt.journal_steps_done() - baseline >= k {
            child.kill().expect("kill certroll");
            let status = child.wait().expect("reap certroll");
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                Some(9),
                "certroll ({log}) had already exited ({status}) when it was to be killed\n{}",
                zdt.spawned_output(log)
            );
            return;
        }
        if let Some(status) = child.try_wait().expect("poll certroll") {
            panic!(
                "certroll ({log}) exited with {status} before {k} steps were done\n{}",
                zdt.spawned_output(log)
            );
        }
        assert!(
            Instant::now() < deadline,
            "certroll ({log}) did not reach {k} done steps in {KILL_WAIT:?}"
        );
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn rotation_killed_at_several_points_resumes_without_a_failed_handshake() {
    let _one = serial();
    let mut zdt = Zdt::bootstrapped(three_tier());
    let baseline = zdt.journal_steps_done();
    let before = zdt.peers.live_snapshot();
    let sampler = Sampler::start(zdt.peers.state_dirs(), SAMPLE_EVERY);

    // First kill: early in the rotation, right after the first confirmed step.
    kill_after_steps(&zdt, &["apply", "--rotate", "--yes"], baseline, 1, "kill-1");
    let mut kills = 1;
    let (total, mut done, interrupted) = step_states(&zdt);
    eprintln!("killed after {done} of {total} steps ({interrupted} interrupted)");
    assert!(
        total >= 9,
        "a three-tier rotation has many steps, got {total}"
    );

    // Then at about a third and two thirds of the plan, each time resuming with a plain apply.
    for (i, target) in [total / 3, 2 * total / 3].into_iter().enumerate() {
        let k = target.max(done + 1);
        if k >= total {
            break;
        }
        let log = format!("kill-{}", i + 2);
        kill_after_steps(&zdt, &["apply", "--yes"], baseline, k, &log);
        let (_, now_done, interrupted) = step_states(&zdt);
        eprintln!("killed after {now_done} of {total} steps ({interrupted} interrupted)");
        assert!(now_done >= k, "the journal says {k} steps were done");
        done = now_done;
        kills += 1;
    }

    let mut last = zdt.spawn(&["apply", "--yes", "--format", "json"], "resume");
    let code = wait_with_timeout(&mut last, Duration::from_secs(180), "resume");
    let output = zdt.spawned_output("resume");
    assert_eq!(code, Some(0), "the last resume must complete\n{output}");
    assert!(
        output.contains("\"resumed\":true") && output.contains("\"event\":\"step-skipped\""),
        "the last apply must resume the run and skip the done steps\n{output}"
    );

    let after = zdt.peers.live_snapshot();
    let timeline = sampler.finish();
    zdt.assert_no_failures(&after, "rotation with kills");
    let stalled = after.stalled_since(&before, GROWTH);
    assert!(
        stalled.is_empty(),
        "links without traffic during the rotation with kills:\n{}",
        stalled.join("\n")
    );
    let unreachable = after.new_unreachable_since(&before);
    assert!(
        unreachable.is_empty(),
        "servers became unreachable during the rotation with kills:\n{}",
        unreachable.join("\n")
    );
    timeline.assert_continuous(MAX_STALL, "rotation with kills");
    eprintln!(
        "rotation with {kills} kills took {:?}, 0 failed handshakes",
        timeline.duration()
    );

    let settled = zdt
        .peers
        .wait_for_growth(&after, GROWTH, "traffic after the resumed rotation");
    zdt.assert_no_failures(&settled, "after the resumed rotation");
    assert_peers_serve_files_on_disk(&zdt, &settled, 4);
    zdt.peers.stop();
    let gens = Generations::of(&zdt, 1, 2);
    assert_all_on_new_generation(&zdt, &gens);
    zdt.certroll(&["verify"])
        .success("verify after the resumed rotation");
}
