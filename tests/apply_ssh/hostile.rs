//! Node commands that daemonize or hang, over SSH through the real binary: a reload and
//! a confirm that leave a 25 s child holding their output do not stall the run, and
//! SIGINT during a hanging reload kills its whole process group on the node (no orphan),
//! journals the run as interrupted and exits 130; a reload that prints the file script's
//! markers itself (files in place, reload and confirm exited 0) and then fails is a failed
//! reload all the same.

use std::thread;
use std::time::{Duration, Instant};

use certroll::transport::ssh::SshTransport;
use certroll::transport::{HostKeyPolicy, Transport};

use crate::support::cli::Control;
use crate::support::inventory::FleetInventory;
use crate::support::Fleet;

#[test]
fn daemonizing_reload_over_ssh_does_not_outlive_confirm_timeout() {
    let fleet = Fleet::start(&["app1", "db1"]);
    let inv = FleetInventory::new(&fleet)
        .link("app1", "db1")
        .default_key("reload", "sleep 25 & true")
        .default_key("confirm", "sleep 25 & true")
        .default_key("confirm_timeout", "3s");
    let ctl = Control::new(&fleet, &inv);
    let start = Instant::now();
    ctl.apply_ok(&[]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "apply took {:?}: it waited for the reload's child",
        start.elapsed()
    );
}

#[test]
fn sigint_during_a_reload_over_ssh_leaves_no_orphan_on_the_node() {
    let fleet = Fleet::start(&["app1", "db1"]);
    let pids = fleet.remote_path("pids");
    let reload = format!("echo $$ >> {pids}; sleep 300 & echo $! >> {pids}; sleep 300");
    let inv = FleetInventory::new(&fleet)
        .link("app1", "db1")
        .default_key("reload", &reload)
        .default_key("confirm_timeout", "5m");
    let ctl = Control::new(&fleet, &inv);
    let bg = ctl.spawn(&["apply", "--yes"]);
    let written = |node: &str| {
        std::fs::read_to_string(fleet.host_path(node, &pids))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while written("app1") + written("db1") < 2 {
        assert!(Instant::now() < deadline, "no reload started");
        thread::sleep(Duration::from_millis(50));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &bg.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let start = Instant::now();
    let run = bg.wait();
    assert!(start.elapsed() < Duration::from_secs(60), "{}", run.stderr);
    run.expect_code(130).expect_output("stopped by SIGINT");
    // Every process a reload started is gone on its node (zombies awaiting their
    // reaper count as gone).
    let check = format!(
        "for p in $(cat {pids} 2>/dev/null); do i=0; while [ $i -lt 100 ]; do \
         s=$(awk '{{print $3}}' /proc/$p/stat 2>/dev/null); \
         if [ -z \"$s\" ] || [ \"$s\" = Z ]; then break; fi; sleep 0.1; i=$((i+1)); done; \
         [ $i -lt 100 ] || echo \"alive $p\"; done"
    );
    for node in ["app1", "db1"] {
        let t = SshTransport::connect(node, &fleet.settings(node), HostKeyPolicy::default())
            .expect("connect");
        let out = t
            .exec(&check, Duration::from_secs(60))
            .expect("check the node");
        assert_eq!(out.stdout, "", "{node}: orphans left");
    }
}

#[test]
fn a_reload_that_prints_forged_markers_then_fails_fails_the_step() {
    let fleet = Fleet::start(&["lb1", "app1"]);
    // What a service (or a hostile user whose log lines it echoes) may print: the markers
    // the file script prints, on both streams, then a line that would rewrite the terminal.
    let forged = "for s in 1 2; do echo 'certroll: files in place'; \
                  echo 'certroll: reload exited 0'; echo 'certroll: confirm exited 0'; \
                  echo 'certroll: reload exited 0' >&2; echo 'certroll: confirm exited 0' >&2; \
                  done; printf 'bad config\\033[2K\\rreload: OK\\n' >&2; exit 3";
    let inv = FleetInventory::new(&fleet)
        .link("lb1", "app1")
        .node_key("app1", "reload", forged)
        .node_key("app1", "confirm", "true");
    let ctl = Control::new(&fleet, &inv);
    let run = ctl.certroll(&["apply", "--yes"]);
    run.expect_code(75)
        .expect_output("failed to run reload command")
        .expect_output("on node app1: exited 3: bad config\\x1b[2K\\rreload: OK");
    assert!(
        !run.output().contains('\x1b'),
        "the node's output is escaped\n{run}"
    );
}
