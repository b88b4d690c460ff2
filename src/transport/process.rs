//! A command on this machine with a deadline that holds whatever the command does.
//!
//! The command runs under `sh -c` as the leader of its own process group, stdin from
//! /dev/null. Its completion is its shell's exit, never the end of its output: a
//! background child may keep the pipes open for as long as it lives (a reload that
//! forks a server, `sleep 25 & true`). So the output is read by one thread per stream
//! into a shared buffer; once the shell has exited, the caller waits a short grace for
//! the end of the output and then takes what came. The reader threads keep draining
//! (and discarding) what a surviving child writes later, so that child never blocks on
//! a full pipe nor dies of SIGPIPE: it was left behind on purpose and is not killed.
//! At the deadline, or when SIGINT/SIGTERM arrived, the whole process group is killed.

use std::io::{self, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::child_env::SecretEnv;
use super::limits::keep_output;
use super::staged::Tracker;
use super::Stage;
use crate::interrupt::{self, CommandGuard, Signal};

/// How long the output may take to end once the command's shell has exited (or its group
/// was killed): enough to read what it wrote before exiting, even on a loaded machine.
pub(crate) const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The shell exited; the code is `None` when a signal ended it.
    Exited(Option<i32>),
    /// The deadline passed first; the process group was killed.
    TimedOut,
    /// SIGINT or SIGTERM arrived first; the process group was killed.
    Interrupted(Signal),
}

/// A finished command: how it ended and the output kept.
pub(crate) struct Finished {
    pub ended: Ended,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Runs `command` in `workdir` until it exits, `timeout` passes, or a signal arrives.
/// With `input`, the command reads it (then end of file) on its standard input instead of
/// /dev/null, and a signal does not stop it (it carries a file change that must complete)
/// until it enters its first stage, if `stages` are given (see [`Stage`]: each marker on
/// stdout also moves the deadline). The variables of `secrets` are not in the command's
/// environment.
pub(crate) fn run(
    command: &str,
    workdir: &Path,
    input: Option<&[u8]>,
    timeout: Duration,
    secrets: &SecretEnv,
    stages: &[Stage<'_>],
) -> io::Result<Finished> {
    let _in_flight = CommandGuard::new();
    let deadline = crate::duration::deadline(timeout);
    let mut cmd = Command::new("sh");
    secrets.strip(&mut cmd);
    let mut child = cmd
        .arg("-c")
        .arg(command)
        .current_dir(workdir)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), input) {
        let data = data.to_vec();
        // A command that exits without reading all of it closes the pipe: not an error here.
        thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &data);
        });
    }
    let out = Capture::start(child.stdout.take());
    let err = Capture::start(child.stderr.take());
    let mut stop = Tracker::new(stages, deadline, input.is_none());
    let ended = match wait(&mut child, &mut stop, &out) {
        Ok(ended) => ended,
        Err(e) => {
            kill_group(&mut child);
            return Err(e);
        }
    };
    if !matches!(ended, Ended::Exited(_)) {
        kill_group(&mut child);
    }
    let grace_end = Instant::now() + OUTPUT_GRACE;
    Ok(Finished {
        ended,
        stdout: out.finish(grace_end),
        stderr: err.finish(grace_end),
    })
}

/// Waits for the shell until the deadline or a signal (as `stop`, following the stages
/// seen on `out`, says), without reaping it in the latter cases (its PID names the group
/// to kill).
fn wait(child: &mut Child, stop: &mut Tracker<'_>, out: &Capture) -> io::Result<Ended> {
    let started = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Ended::Exited(status.code()));
        }
        let now = Instant::now();
        out.observe(stop, now);
        if let Some(signal) = interrupt::requested().filter(|_| stop.interruptible) {
            return Ok(Ended::Interrupted(signal));
        }
        if now >= stop.deadline {
            return Ok(Ended::TimedOut);
        }
        thread::sleep(pause);
        // Short pauses while the command is young: most end within milliseconds.
        let cap = if started.elapsed() < Duration::from_millis(250) {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(20)
        };
        pause = (pause * 2).min(cap);
    }
}

/// Kills the child's whole process group (it leads its own group), then reaps it.
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// What a reader thread has gathered from one pipe.
#[derive(Default)]
struct Gathered {
    data: Vec<u8>,
    /// The pipe reached its end (every writer closed it) or failed.
    ended: bool,
    /// The caller took the data: whatever comes later is discarded.
    taken: bool,
}

/// One pipe read to its end on its own thread.
struct Capture {
    shared: Arc<(Mutex<Gathered>, Condvar)>,
}

impl Capture {
    fn start<R: Read + Send + 'static>(pipe: Option<R>) -> Capture {
        let shared = Arc::new((Mutex::new(Gathered::default()), Condvar::new()));
        let Some(mut pipe) = pipe else {
            lock(&shared.0).ended = true;
            return Capture { shared };
        };
        let theirs = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("certroll-output".into())
            .spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                loop {
                    let n = match pipe.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    let mut g = lock(&theirs.0);
                    if !g.taken {
                        keep_output(&mut g.data, &buf[..n]);
                    }
                }
                lock(&theirs.0).ended = true;
                theirs.1.notify_all();
            });
        if spawned.is_err() {
            // No thread to read with: the pipe is closed (dropped with the closure).
            lock(&shared.0).ended = true;
        }
        Capture { shared }
    }

    /// Lets `stop` look at the output gathered so far.
    fn observe(&self, stop: &mut Tracker<'_>, now: Instant) {
        stop.observe(&lock(&self.shared.0).data, now);
    }

    /// The output gathered when the pipe ends or `until` passes, whichever is first.
    fn finish(self, until: Instant) -> Vec<u8> {
        let (mutex, ended) = &*self.shared;
        let mut g = lock(mutex);
        while !g.ended {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            g = ended
                .wait_timeout(g, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        g.taken = true;
        std::mem::take(&mut g.data)
    }
}

/// Locks a buffer; a reader that panicked left it usable (it only appends bytes).
fn lock(m: &Mutex<Gathered>) -> std::sync::MutexGuard<'_, Gathered> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_child_holding_the_output_does_not_delay_the_exit() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("still-running");
        let start = Instant::now();
        // The child outlives the shell, keeps stdout open, then proves it was not killed.
        let cmd = format!(
            "(sleep 40; touch '{}') & echo started",
            marker.to_str().unwrap()
        );
        let f = run(
            &cmd,
            dir.path(),
            None,
            Duration::from_secs(60),
            &SecretEnv::none(),
            &[],
        )
        .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "waited for the child: {:?}",
            start.elapsed()
        );
        assert_eq!(f.ended, Ended::Exited(Some(0)));
        assert_eq!(f.stdout, b"started\n");
        let until = Instant::now() + Duration::from_secs(90);
        while !marker.exists() && Instant::now() < until {
            thread::sleep(Duration::from_millis(50));
        }
        assert!(marker.exists(), "the detached child was killed");
    }

    #[test]
    fn output_beyond_the_cap_is_read_and_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let f = run(
            "head -c 3000000 /dev/zero; echo done >&2",
            dir.path(),
            None,
            Duration::from_secs(60),
            &SecretEnv::none(),
            &[],
        )
        .unwrap();
        assert_eq!(f.ended, Ended::Exited(Some(0)));
        assert_eq!(f.stdout.len(), super::super::limits::MAX_OUTPUT_BYTES);
        assert_eq!(f.stderr, b"done\n");
    }
}
