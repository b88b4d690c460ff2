//! The `floor` mode of the fleet benchmark: what a rotation would cost if each of its steps
//! were nothing but one remote command, so that the gap between a real rotation and its
//! targets can be told apart into what SSH and the node's processes cost and what
//! certroll's step adds.
//!
//! ```sh
//! cargo bench --bench fleet -- floor 20     # or scripts/bench-floor.sh 20 200
//! ```
//!
//! On N fleet nodes, with certroll's own SSH transport (library API) and apply's default
//! parallelism (16 at a time), it measures:
//!
//! - connecting to every node (what every certroll command pays before its first
//!   operation; compare with `verify`);
//! - three waves (a phased rotation has three) of one `true` per node: on a bare channel
//!   (the login shell runs it, no wrapper), in the direct wrapper of certroll's own
//!   scripts ([`certroll::transport::Transport::exec_input`]) and in the relaying wrapper of
//!   node commands ([`certroll::transport::Transport::exec`]), which a rotation step runs in.
//!
//! Wall time is the best of `CERTROLL_BENCH_RUNS` (default 3); CPU times are summed over
//! the runs: the nodes' (every sshd listener's whole process tree, from /proc, clock ticks
//! of 10 ms) and this process's own (certroll's transport). A last pass per phase under
//! `strace -f` on every sshd counts the processes started and programs run, exactly.

use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use certroll::transport::ssh::SshTransport;
use certroll::transport::{HostKeyPolicy, Transport};

use super::count::{processes_and_programs, stat_fields, stop_trace, trace_sshds};
use super::support::Fleet;
use super::{quiet_shells, sshd_pid, Tiers};

/// Steps in flight at once, as `certroll apply`'s default `--parallel`.
const PARALLEL: usize = 16;
/// Commands per node: the waves of a phased rotation (trust-add, leaf-swap, trust-prune).
const WAVES: usize = 3;

/// How a phase runs its commands.
#[derive(Clone, Copy)]
enum Way {
    Bare,
    Direct,
    Relayed,
}

const PHASES: [(&str, Option<Way>); 4] = [
    ("connect to every node", None),
    ("3 x `true` a node, bare channel", Some(Way::Bare)),
    ("3 x `true` a node, direct wrapper", Some(Way::Direct)),
    ("3 x `true` a node, relaying wrapper", Some(Way::Relayed)),
];

/// What one phase measured, summed over the runs (wall: the best run).
#[derive(Default)]
struct Measured {
    wall: Option<Duration>,
    nodes_cpu: Duration,
    own_cpu: Duration,
}

pub fn floor(n: usize) {
    let runs: usize = std::env::var("CERTROLL_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    let names = Tiers::new(n.max(3)).names();
    let n = names.len();
    let fleet = Fleet::start(&names.iter().map(String::as_str).collect::<Vec<_>>());
    let shell = quiet_shells(&fleet, &names);
    let pids: Vec<String> = names.iter().map(|m| sshd_pid(fleet.node(m).port)).collect();
    println!(
        "{n} sshd nodes; {shell}; {PARALLEL} at a time; wall: best of {runs}, CPU: all {runs} runs; \
         load average before: {}",
        loadavg()
    );
    let mut measured: Vec<Measured> = PHASES.iter().map(|_| Measured::default()).collect();
    for _ in 0..runs {
        let (conns, took) = measure(&pids, || connect_all(&fleet, &names));
        add(&mut measured[0], took);
        for (i, (_, way)) in PHASES.iter().enumerate().skip(1) {
            let Some(way) = *way else { continue };
            let ((), took) = measure(&pids, || waves(&conns, way));
            add(&mut measured[i], took);
        }
    }
    let load_after = loadavg();
    // Exact counts: one traced pass per phase (connections included, then taken away).
    let log = fleet.dir().join("floor-strace.log");
    let mut counted = Vec::new();
    for (_, way) in PHASES {
        let tracer = trace_sshds(&pids, &log);
        let conns = connect_all(&fleet, &names);
        if let Some(way) = way {
            waves(&conns, way);
        }
        drop(conns);
        counted.push(processes_and_programs(&stop_trace(tracer, &log)));
    }
    let cmds = (n * WAVES) as f64;
    let ms = |d: Duration, per: f64| d.as_secs_f64() * 1e3 / per;
    println!(
        "{:<38} {:>9} {:>9} {:>11} {:>11} {:>9} {:>9}",
        "", "wall", "a node", "node CPU", "own CPU", "processes", "programs"
    );
    for (i, (label, way)) in PHASES.iter().enumerate() {
        let m = &measured[i];
        let wall = m.wall.unwrap_or_default();
        // Per connection for the first phase, per command for the others.
        let per = if way.is_some() { cmds } else { n as f64 };
        let (procs, progs) = match way {
            None => counted[0],
            Some(_) => (
                counted[i].0.saturating_sub(counted[0].0),
                counted[i].1.saturating_sub(counted[0].1),
            ),
        };
        println!(
            "{label:<38} {:>7.3} s {:>6.2} ms {:>8.2} ms {:>8.2} ms {:>9.2} {:>9.2}",
            wall.as_secs_f64(),
            ms(wall, n as f64),
            ms(m.nodes_cpu, per * runs as f64),
            ms(m.own_cpu, per * runs as f64),
            procs as f64 / per,
            progs as f64 / per,
        );
    }
    let connect = measured[0].wall.unwrap_or_default();
    let relayed = measured[3].wall.unwrap_or_default();
    println!(
        "(CPU and counts: a connection for the first line, a command for the others)\n\
         floor of a {n}-node rotation (connect + 3 waves of relayed `true`): {:.3} s\n\
         load average after: {load_after}",
        (connect + relayed).as_secs_f64()
    );
}

fn add(m: &mut Measured, took: Measured) {
    let best = took.wall.unwrap_or_default();
    m.wall = Some(m.wall.map_or(best, |w| w.min(best)));
    m.nodes_cpu += took.nodes_cpu;
    m.own_cpu += took.own_cpu;
}

/// Runs `f`; its wall time, the CPU it cost the nodes and this process.
fn measure<T>(pids: &[String], f: impl FnOnce() -> T) -> (T, Measured) {
    let (nodes, own) = (trees_cpu(pids), own_cpu());
    let start = Instant::now();
    let out = f();
    let wall = start.elapsed();
    let took = Measured {
        wall: Some(wall),
        nodes_cpu: trees_cpu(pids).saturating_sub(nodes),
        own_cpu: own_cpu().saturating_sub(own),
    };
    (out, took)
}

/// One connection per node, opened `PARALLEL` at a time.
fn connect_all(fleet: &Fleet, names: &[String]) -> Vec<SshTransport> {
    let mut conns = parallel(names.len(), |i| {
        let name = &names[i];
        let t = SshTransport::connect(name, &fleet.settings(name), HostKeyPolicy::default());
        (i, t.unwrap_or_else(|e| panic!("connect to {name}: {e}")))
    });
    conns.sort_by_key(|(i, _)| *i);
    conns.into_iter().map(|(_, t)| t).collect()
}

/// [`WAVES`] waves of one `true` per node, each wave `PARALLEL` at a time.
fn waves(conns: &[SshTransport], way: Way) {
    for _ in 0..WAVES {
        parallel(conns.len(), |i| {
            let t = &conns[i];
            let ok = match way {
                Way::Bare => t.exec_bare("true").map(|s| s == Some(0)),
                Way::Direct => t
                    .exec_input("true", b"", Duration::from_secs(60))
                    .map(|o| o.success()),
                Way::Relayed => t.exec("true", Duration::from_secs(60)).map(|o| o.success()),
            };
            match ok {
                Ok(true) => {}
                Ok(false) => panic!("`true` failed on {}", t.node()),
                Err(e) => panic!("`true` on {}: {e}", t.node()),
            }
        });
    }
}

/// `f(0..n)`, [`PARALLEL`] threads pulling indices in order.
fn parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..PARALLEL.min(n))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return out;
                        }
                        out.push(f(i));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a benchmark worker panicked"))
            .collect()
    })
}

/// CPU time consumed so far by the process trees under the given sshd listeners: each
/// listener's reaped children (`cutime + cstime`, fields 16 and 17) and every live
/// descendant's own and reaped time (fields 14 to 17), found by their parent (field 4).
fn trees_cpu(roots: &[String]) -> Duration {
    let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut cpu: HashMap<u64, (u64, u64)> = HashMap::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|p| p.parse::<u64>().ok()) else {
            continue;
        };
        let Some(f) = stat_fields(&pid.to_string()) else {
            continue;
        };
        let get = |k: usize| f.get(k).copied().unwrap_or(0);
        children.entry(get(1)).or_default().push(pid);
        // (own utime + stime, reaped children's cutime + cstime)
        cpu.insert(pid, (get(11) + get(12), get(13) + get(14)));
    }
    let mut ticks = 0;
    let mut todo: Vec<u64> = Vec::new();
    for root in roots {
        let Ok(pid) = root.parse::<u64>() else {
            continue;
        };
        ticks += cpu.get(&pid).map_or(0, |c| c.1);
        todo.extend(children.get(&pid).into_iter().flatten());
    }
    while let Some(pid) = todo.pop() {
        ticks += cpu.get(&pid).map_or(0, |c| c.0 + c.1);
        todo.extend(children.get(&pid).into_iter().flatten());
    }
    Duration::from_millis(ticks * 10)
}

/// CPU time (user + system) of this process so far: its threads are certroll's transport.
fn own_cpu() -> Duration {
    let f = stat_fields("self").unwrap_or_default();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn loadavg() -> String {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split(' ').take(3).collect::<Vec<_>>().join(" ")
}
