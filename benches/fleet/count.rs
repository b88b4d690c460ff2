//! The `count` mode of the fleet benchmark: one phased rotation measured without a clock
//! (CPU time of certroll and of the nodes' sshd sessions), then one under `strace -f` on
//! every node's sshd (processes started, programs run, remote commands) and on certroll
//! (its syncs), per step; and the `strace` helpers the `floor` mode shares.
//!
//! ```sh
//! cargo bench --bench fleet -- count 20
//! ```

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::support::Fleet;
use super::{certroll_bin, quiet_shells, sshd_pid, timed, write_inventory, Tiers};

/// CPU time (user + system) of the reaped children of process `pid`, from /proc (clock
/// ticks of 10 ms): for this process, the certroll runs; for an sshd listener, every
/// session it served that has ended, with all their processes.
fn children_cpu(pid: &str) -> Duration {
    let f = stat_fields(pid).unwrap_or_default();
    // cutime and cstime are fields 16 and 17 (13 and 14 here).
    let ticks = f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The fields after the command name of `/proc/<pid>/stat` (`None` once the process is
/// gone), from field 3 on.
pub fn stat_fields(pid: &str) -> Option<Vec<u64>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    // Field 3 (the state) is a letter: keep positions, parse the rest.
    Some(rest.split(' ').map(|x| x.parse().unwrap_or(0)).collect())
}

/// One phased rotation of `n` nodes, measured without a clock: CPU time of certroll and of
/// the nodes' sshd sessions, then (in a second rotation under `strace -f` on every node's
/// sshd) the processes started and the remote commands run, per step.
pub fn count(n: usize) {
    let tiers = Tiers::new(n);
    let names = tiers.names();
    let fleet = Fleet::start(&names.iter().map(String::as_str).collect::<Vec<_>>());
    println!("{}", quiet_shells(&fleet, &names));
    let pids: Vec<String> = names.iter().map(|m| sshd_pid(fleet.node(m).port)).collect();
    let nodes_cpu = || pids.iter().map(|p| children_cpu(p)).sum::<Duration>();
    let inv = write_inventory(&fleet, &tiers, 0);
    timed(&inv, &["apply", "--yes"]);
    let steps = 3 * n;
    let (mine, theirs) = (children_cpu("self"), nodes_cpu());
    let wall = timed(&inv, &["apply", "--rotate", "--yes"]);
    // The sessions end with certroll; their sshd reaps them a moment later.
    std::thread::sleep(Duration::from_secs(2));
    let (mine, theirs) = (children_cpu("self") - mine, nodes_cpu() - theirs);
    println!(
        "rotation of {n} nodes, {steps} steps: {:.3} s wall",
        wall.as_secs_f64()
    );
    println!(
        "CPU: certroll {:.2} s ({:.1} ms a step), nodes' sshd sessions {:.2} s ({:.1} ms a step)",
        mine.as_secs_f64(),
        mine.as_secs_f64() * 1e3 / steps as f64,
        theirs.as_secs_f64(),
        theirs.as_secs_f64() * 1e3 / steps as f64
    );
    let log = fleet.dir().join("strace.log");
    let tracer = trace_sshds(&pids, &log);
    // certroll itself under strace too, for its journal syncs.
    let syncs_log = fleet.dir().join("syncs.log");
    let synced = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&syncs_log)
        .arg(certroll_bin())
        .arg("-i")
        .arg(&inv)
        .args(["apply", "--rotate", "--yes"])
        .env("NO_COLOR", "1")
        .output()
        .expect("run certroll under strace");
    assert!(synced.status.success(), "the traced rotation failed");
    let text = stop_trace(tracer, &log);
    let (started, execs) = processes_and_programs(&text);
    // sshd runs every session command as `<login shell> -c <command>`, the shell named by
    // its base name (certroll's wrappers name `/bin/sh` by its path).
    let commands = text.lines().filter(|l| login_shell_command(l)).count();
    let syncs = fs::read_to_string(&syncs_log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("sync(") && !l.contains("= -1"))
        .count();
    let per = |x: usize| x as f64 / steps as f64;
    println!(
        "certroll: {syncs} fsync/fdatasync calls ({:.2} a step; the journal, the CA store)",
        per(syncs)
    );
    println!(
        "on the nodes: {started} processes started ({:.1} a step), {execs} programs run ({:.1} a step), \
         {commands} commands through the login shell ({:.2} a step)",
        per(started),
        per(execs),
        per(commands)
    );
}

/// `strace -f` on the given sshd listeners, logging every process started and every
/// program run by the sessions they start from now on, one file per process (`log.PID`:
/// a call is never split across lines, so a failed `execve` of a `PATH` search is told
/// apart from a program run).
pub fn trace_sshds(pids: &[String], log: &Path) -> std::process::Child {
    let mut strace = Command::new("strace");
    strace.args([
        "-ff",
        "-qq",
        "-e",
        "trace=execve,clone,clone3,fork,vfork",
        "-o",
    ]);
    strace.arg(log);
    for p in pids {
        strace.args(["-p", p]);
    }
    let tracer = strace
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run strace");
    // strace attaches to each listener in turn.
    std::thread::sleep(Duration::from_secs(2));
    tracer
}

/// Lets the traced sessions end and be reaped, stops `tracer`, returns its log (the
/// files `log.PID`, which it removes).
pub fn stop_trace(mut tracer: std::process::Child, log: &Path) -> String {
    std::thread::sleep(Duration::from_secs(2));
    let _ = Command::new("kill")
        .args(["-INT", &tracer.id().to_string()])
        .status();
    let _ = tracer.wait();
    let (dir, stem) = (log.parent().unwrap_or(Path::new(".")), log.file_name());
    let prefix = format!("{}.", stem.unwrap_or_default().to_string_lossy());
    let mut text = String::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(&prefix) else {
            continue;
        };
        // Each line as `strace -f` writes it to one file: `PID call(...) = result`.
        for line in fs::read_to_string(entry.path()).unwrap_or_default().lines() {
            let _ = writeln!(text, "{pid} {line}");
        }
        let _ = fs::remove_file(entry.path());
    }
    text
}

/// Processes started (not threads) and programs run, in an strace log of [`trace_sshds`].
pub fn processes_and_programs(text: &str) -> (usize, usize) {
    let started = text
        .lines()
        .filter(|l| {
            (l.contains(" clone(") || l.contains(" clone3(") || l.contains("fork("))
                && !l.contains("= -1")
                && !l.contains("CLONE_THREAD")
        })
        .count();
    let execs = text
        .lines()
        .filter(|l| l.contains(" execve(") && !l.contains("= -1"))
        .count();
    (started, execs)
}

/// Whether an strace line is sshd starting one of certroll's remote commands through the
/// login shell: `execve("…", ["bash", "-c", "exec /bin/sh -c …` (SFTP sessions, which sshd
/// starts the same way, and the programs the commands run are not counted).
fn login_shell_command(line: &str) -> bool {
    let Some(at) = line.find(" execve(\"") else {
        return false;
    };
    let Some(argv) = line[at..].find("[\"").map(|i| &line[at + i + 2..]) else {
        return false;
    };
    let Some(end) = argv.find('"') else {
        return false;
    };
    let shell = matches!(&argv[..end], "bash" | "sh" | "dash" | "zsh" | "ksh" | "ash");
    shell && argv[end..].starts_with("\", \"-c\", \"exec /bin/sh -c") && !line.contains("= -1")
}
