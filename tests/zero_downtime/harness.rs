//! A bootstrapped test fleet with live traffic: sshd nodes, the inventory, one
//! `certroll-peer` per node handshaking continuously, and the certroll CLI pointed at it.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::peers::Peers;
use crate::support::topology::Topology;
use crate::support::traffic::{Sampler, Snapshot, Timeline};
use crate::support::Fleet;

pub const CERTROLL: &str = env!("CARGO_BIN_EXE_certroll");
/// How often the sampler reads the peers' stats while certroll runs.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// The longest a link may go without a successful handshake while certroll runs; far
/// above the peers' 20 ms pace and their 200 ms stats period. A loaded test machine was
/// seen to pause every peer at once for ~10 s (no handshake failed): the bound is for a
/// link that stops, not for the machine's pauses. Failed handshakes are counted apart.
pub const MAX_STALL: Duration = Duration::from_secs(20);
/// Handshakes every counter must add to count as "traffic flowed" in a phase.
pub const GROWTH: u64 = 5;
const APPLY_TIMEOUT: Duration = Duration::from_secs(180);

/// The scenarios each keep a fleet of busy peers; one at a time keeps a 2-core machine
/// responsive enough for the timing bounds above.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a certroll command printed and returned.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with the output unless the command exited 0.
    pub fn success(self, what: &str) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "{what} failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A fleet whose CA was created and installed, with every peer handshaking on every link.
pub struct Zdt {
    pub topo: Topology,
    pub fleet: Fleet,
    pub inventory: PathBuf,
    pub state_dir: PathBuf,
    pub peers: Peers,
    /// When set, certroll runs with `CERTROLL_TRACE_TRANSPORT` naming this file.
    pub trace: Option<PathBuf>,
}

impl Zdt {
    /// Starts the fleet and the peers (with no files yet), bootstraps with
    /// `certroll apply --yes` (whose reload and confirm go to the peers), restarts the peers
    /// so that their counters start at zero on the bootstrapped files, and waits until every
    /// link handshakes.
    pub fn bootstrapped(topo: Topology) -> Zdt {
        let fleet = Fleet::start(&topo.names());
        let state_dir = fleet.dir().join("state");
        let inventory = fleet.dir().join("certroll.toml");
        fs::write(&inventory, topo.inventory_toml(&fleet, &state_dir)).expect("write inventory");
        let peers = Peers::start(&fleet, &topo);
        let mut zdt = Zdt {
            topo,
            fleet,
            inventory,
            state_dir,
            peers,
            trace: None,
        };
        zdt.certroll(&["apply", "--yes"]).success("bootstrap apply");
        zdt.peers.restart();
        let zero = zdt.peers.snapshot();
        zdt.peers
            .wait_for_growth(&zero, GROWTH, "every link to handshake after bootstrap");
        zdt
    }

    /// Starts the fleet with files that `write` puts on the nodes (made outside certroll),
    /// starts the peers on them, and waits until every link handshakes. No certroll run.
    pub fn with_files(topo: Topology, write: impl FnOnce(&Fleet, &Topology)) -> Zdt {
        let fleet = Fleet::start(&topo.names());
        let state_dir = fleet.dir().join("state");
        let inventory = fleet.dir().join("certroll.toml");
        fs::write(&inventory, topo.inventory_toml(&fleet, &state_dir)).expect("write inventory");
        write(&fleet, &topo);
        let peers = Peers::start(&fleet, &topo);
        let zdt = Zdt {
            topo,
            fleet,
            inventory,
            state_dir,
            peers,
            trace: None,
        };
        let zero = zdt.peers.snapshot();
        zdt.peers.wait_for_growth(
            &zero,
            GROWTH,
            "every link to handshake on the operator's CA",
        );
        zdt
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(CERTROLL);
        cmd.arg("-i").arg(&self.inventory).args(args);
        cmd.stdin(Stdio::null());
        if let Some(trace) = &self.trace {
            cmd.env("CERTROLL_TRACE_TRANSPORT", trace);
        }
        cmd
    }

    /// Runs certroll with `args` to completion.
    pub fn certroll(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run certroll"))
    }

    /// Starts certroll with `args`; stdout and stderr go to `<fleet dir>/<log>.out|err`.
    pub fn spawn(&self, args: &[&str], log: &str) -> Child {
        let out = fs::File::create(self.fleet.dir().join(format!("{log}.out"))).expect("log");
        let err = fs::File::create(self.fleet.dir().join(format!("{log}.err"))).expect("log");
        self.command(args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start certroll")
    }

    /// What a command started with [`Zdt::spawn`] printed.
    pub fn spawned_output(&self, log: &str) -> String {
        let read = |ext: &str| {
            fs::read_to_string(self.fleet.dir().join(format!("{log}.{ext}"))).unwrap_or_default()
        };
        format!("stdout:\n{}\nstderr:\n{}", read("out"), read("err"))
    }

    /// Runs certroll with `args` while sampling the peers: live counters just before and
    /// just after, and the timeline in between.
    pub fn observed(&self, args: &[&str], log: &str) -> Observed {
        let before = self.peers.live_snapshot();
        let sampler = Sampler::start(self.peers.state_dirs(), SAMPLE_EVERY);
        let mut child = self.spawn(args, log);
        let status = wait_with_timeout(&mut child, APPLY_TIMEOUT, log);
        let after = self.peers.live_snapshot();
        let timeline = sampler.finish();
        Observed {
            code: status,
            output: self.spawned_output(log),
            before,
            after,
            timeline,
        }
    }

    /// `step-done` records in the journal (every run of this state directory).
    pub fn journal_steps_done(&self) -> usize {
        let text = fs::read_to_string(self.state_dir.join("journal.jsonl")).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains("\"record\":\"step-done\""))
            .count()
    }

    /// Panics unless no peer ever counted a failed handshake; shows every counter.
    pub fn assert_no_failures(&self, snap: &Snapshot, context: &str) {
        assert!(
            snap.failures().is_empty(),
            "{context}: failed handshakes:\n{}\nall counters:\n{}",
            snap.failures().join("\n"),
            snap.describe()
        );
    }
}

/// What happened around one certroll command.
pub struct Observed {
    pub code: Option<i32>,
    pub output: String,
    pub before: Snapshot,
    pub after: Snapshot,
    pub timeline: Timeline,
}

impl Observed {
    /// Panics unless certroll exited 0, no handshake failed, every link kept handshaking
    /// during the run, and no server became unreachable.
    pub fn assert_zero_downtime(&self, context: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "{context}: certroll failed\n{}",
            self.output
        );
        for snap in [&self.before, &self.after] {
            assert!(
                snap.failures().is_empty(),
                "{context}: failed handshakes:\n{}\nall counters:\n{}\ncertroll {}",
                snap.failures().join("\n"),
                snap.describe(),
                self.output
            );
        }
        let stalled = self.after.stalled_since(&self.before, 1);
        assert!(
            stalled.is_empty(),
            "{context}: links without a successful handshake during the run:\n{}",
            stalled.join("\n")
        );
        let unreachable = self.after.new_unreachable_since(&self.before);
        assert!(
            unreachable.is_empty(),
            "{context}: servers became unreachable during the run:\n{}",
            unreachable.join("\n")
        );
        self.timeline.assert_continuous(MAX_STALL, context);
    }

    /// Successful handshakes over every counter during the run.
    pub fn handshakes(&self) -> u64 {
        let before = self.before.counts();
        self.after
            .counts()
            .iter()
            .map(|(name, c)| c.ok - before.get(name).map_or(0, |b| b.ok))
            .sum()
    }
}

/// Waits for `child`; kills it and panics after `timeout`.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration, what: &str) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for certroll") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("certroll ({what}) did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}
