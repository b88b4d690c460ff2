//! Commands on one SSH connection: a wrapper that makes a command's end its shell's exit,
//! a deadline that kills its whole process group, and channels left to close later.
//!
//! certroll's own scripts (the file script without node commands, the write helpers,
//! keygen) leave nothing behind them, so they run in the [`direct`] wrapper: one `sh` that
//! prints its PID and runs the script, its output straight on the channel. Node commands
//! (reload, confirm, probe, and a step's file script that runs them) run inside the
//! relaying wrapper ([`wrapper`]). It prints its PID first: sshd
//! starts every session command in a new session, so that PID names the process group
//! to kill at the deadline or on SIGINT/SIGTERM. It runs the command with stdin from
//! /dev/null and its output relayed through two `cat` processes, and it reports the
//! command's exit on stderr behind a random marker. So the end of a command is its
//! shell's exit, not the end of its output: a background child that keeps the output
//! open (a reload that forks a server) is not waited for, and after the channel closes
//! the relays keep draining what it writes into /dev/null, so it neither blocks nor dies
//! of SIGPIPE. It is not killed either: it was left behind on purpose. sshd closes such a
//! channel only once that child lets go of it, so the channel is closed on our side and
//! kept ([`Conn::abandon`]) until sshd's close arrives.

use std::io::Read;
use std::thread;
use std::time::{Duration, Instant};

use ssh2::{Channel, ErrorCode};

use super::wrapper::{direct, split_pid, wrapper, Streams};
use super::{Conn, OpErr, Raw};
use crate::interrupt::{self, CommandGuard, Signal};
use crate::transport::limits::random_suffix;
use crate::transport::limits::{keep_output, MAX_COMMAND_BYTES};
use crate::transport::process::OUTPUT_GRACE;
use crate::transport::session::IO_TIMEOUT;
use crate::transport::staged::Tracker;
use crate::transport::{ErrorKind, ExecOutput, Stage, TransportError};

/// Most abandoned channels kept per session (sshd counts them against `MaxSessions`,
/// default 10); past this the session is replaced before the next call.
const MAX_LINGERING: usize = 4;
/// Longest wait for a stopped command's PID line, when it was not read yet.
const PID_WAIT: Duration = Duration::from_secs(15);
/// Longest wait for the command that kills a timed-out command's process group.
const KILL_TIMEOUT: Duration = Duration::from_secs(15);

impl Conn {
    /// Runs `command` under `sh -c`; kills its process group when `timeout` expires or
    /// SIGINT/SIGTERM arrives ([`ErrorKind::Interrupted`]).
    pub(crate) fn exec(
        &mut self,
        node: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        self.exec_staged(node, command, None, timeout, &[], true)
    }

    /// Runs `command` in the relaying [`wrapper`], as [`Conn::exec`] does, with `input` on
    /// its standard input when given; SIGINT/SIGTERM stop it from the start when
    /// `interruptible`, else from its first stage on ([`crate::transport::Stage`]).
    pub(crate) fn exec_staged(
        &mut self,
        node: &str,
        command: &str,
        input: Option<&[u8]>,
        timeout: Duration,
        stages: &[Stage<'_>],
        interruptible: bool,
    ) -> Result<ExecOutput, TransportError> {
        let action = crate::transport::run_action(command);
        let how = How {
            input,
            timeout,
            interruptible,
            relayed: true,
            stages,
        };
        let raw = self
            .run_with(command, &how)
            .map_err(|e| e.into_error(node, &action))?;
        if let Some(signal) = raw.interrupted {
            let msg = format!(
                "interrupted by {}: the command's process group was killed",
                signal.name()
            );
            return Err(TransportError::new(
                node,
                action,
                ErrorKind::Interrupted,
                msg,
            ));
        }
        Ok(ExecOutput {
            status: raw.status,
            stdout: String::from_utf8_lossy(&raw.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&raw.stderr).into_owned(),
        })
    }

    /// `command` (one of certroll's own scripts) with `input` (then end of file) on its
    /// standard input, in the [`direct`] wrapper: its output comes straight over the
    /// channel. Not stopped by SIGINT/SIGTERM: it carries a file change that must complete.
    pub(crate) fn exec_input(
        &mut self,
        node: &str,
        command: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let action = crate::transport::run_action(command);
        let how = How {
            input: Some(input),
            timeout,
            interruptible: false,
            relayed: false,
            stages: &[],
        };
        let raw = self
            .run_with(command, &how)
            .map_err(|e| e.into_error(node, &action))?;
        Ok(ExecOutput {
            status: raw.status,
            stdout: String::from_utf8_lossy(&raw.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&raw.stderr).into_owned(),
        })
    }

    /// Runs one of certroll's own helper commands in the [`direct`] wrapper (stdin from
    /// /dev/null, not stopped by a signal: it finishes a file change).
    pub(super) fn run(&mut self, command: &str, timeout: Duration) -> Result<Raw, OpErr> {
        let how = How {
            input: None,
            timeout,
            interruptible: false,
            relayed: false,
            stages: &[],
        };
        self.run_with(command, &how)
    }

    /// Runs `command` in its wrapper, collecting output without blocking on either
    /// stream, until the command's shell exits (relayed) or its output ends (direct), its
    /// deadline passes or (when interruptible) a signal arrives. In the last two cases the
    /// process group is killed before the channel is closed.
    fn run_with(&mut self, command: &str, how: &How<'_>) -> Result<Raw, OpErr> {
        let _in_flight = CommandGuard::new();
        self.reap();
        let marker = format!("certroll-exit-{} ", random_suffix());
        let input = how.input;
        let wrapped = if how.relayed {
            wrapper(command, marker.trim_end(), input.is_some())
        } else {
            direct(command, input.is_some())
        };
        if wrapped.len() > MAX_COMMAND_BYTES {
            return Err(OpErr::TooLong(wrapped.len()));
        }
        let mut channel = self.session.channel_session()?;
        channel.exec(&wrapped)?;
        if let Some(data) = input {
            std::io::Write::write_all(&mut channel, data).map_err(OpErr::Stream)?;
            channel.send_eof()?;
        }
        self.session.set_blocking(false);
        let mut stop = Tracker::new(
            how.stages,
            crate::duration::deadline(how.timeout),
            how.interruptible,
        );
        let mut collected = collect(&mut channel, &mut stop, marker.as_bytes());
        if let Ok(c) = &mut collected {
            if matches!(c.end, End::TimedOut | End::Interrupted(_)) {
                // The group to kill is named by the wrapper's first line: make sure it
                // arrived, even when the command was stopped before it was read.
                await_pid_line(&mut channel, &mut c.streams.out);
            }
        }
        self.session.set_blocking(true);
        let c = collected?;
        let (pid, stdout) = split_pid(c.streams.out);
        let (stderr, exited) = (c.streams.err, c.streams.exited);
        match c.end {
            End::Eof => {
                channel.wait_close()?;
                let status = match exited {
                    Some(code) => Some(code),
                    None => exit_code(&channel)?,
                };
                Ok(Raw {
                    stdout,
                    stderr,
                    status,
                    interrupted: None,
                })
            }
            End::Exited => {
                // A child the command left behind still holds the output: stop reading.
                self.abandon(channel);
                Ok(Raw {
                    stdout,
                    stderr,
                    status: exited,
                    interrupted: None,
                })
            }
            End::TimedOut | End::Interrupted(_) => {
                if let Some(pid) = pid {
                    self.kill_group(pid);
                }
                self.abandon(channel);
                let interrupted = match c.end {
                    End::Interrupted(signal) => Some(signal),
                    _ => None,
                };
                Ok(Raw {
                    stdout,
                    stderr,
                    status: None,
                    interrupted,
                })
            }
        }
    }

    /// Kills process group `pid` (and `pid` itself) on the node, waiting at most
    /// [`KILL_TIMEOUT`]; a session that cannot do it in time is replaced.
    fn kill_group(&mut self, pid: u32) {
        let kill = format!("kill -KILL -- -{pid} {pid} 2>/dev/null; true");
        self.session.set_timeout(KILL_TIMEOUT.as_millis() as u32);
        let killed = self
            .session
            .channel_session()
            .and_then(|mut ch| ch.exec(&kill).and_then(|()| ch.wait_close()));
        self.session.set_timeout(IO_TIMEOUT.as_millis() as u32);
        if killed.is_err() {
            self.broken = true;
        }
    }

    /// Closes our side of a channel whose output something on the node may still hold,
    /// without waiting: sshd closes its side only once every holder is gone (it keeps
    /// reading and discarding stderr until then), which may be never. The channel is
    /// kept until then and freed by a later [`Conn::reap`].
    fn abandon(&mut self, mut channel: Channel) {
        self.session.set_blocking(false);
        // Sends EOF and CLOSE; "would block" only means sshd has not answered yet.
        let pending = channel.close().is_err_and(|e| would_block(&e));
        self.session.set_blocking(true);
        if pending {
            self.lingering.push(channel);
        }
        if self.lingering.len() > MAX_LINGERING {
            self.broken = true;
        }
    }

    /// Frees the abandoned channels sshd has closed meanwhile.
    fn reap(&mut self) {
        if self.lingering.is_empty() {
            return;
        }
        self.session.set_blocking(false);
        // A channel whose close completes now is freed without waiting.
        self.lingering
            .retain_mut(|ch| ch.close().is_err_and(|e| would_block(&e)));
        self.session.set_blocking(true);
    }
}

/// How [`Conn::run_with`] runs a command.
struct How<'a> {
    input: Option<&'a [u8]>,
    timeout: Duration,
    /// Whether SIGINT/SIGTERM stops the command from the start (node commands).
    interruptible: bool,
    /// The relaying [`wrapper`] (node commands) rather than the [`direct`] one.
    relayed: bool,
    /// Markers that move the deadline and make the command interruptible.
    stages: &'a [Stage<'a>],
}

/// How [`collect`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The output ended: every process holding it is gone.
    Eof,
    /// The command's shell exited, but something it left behind still holds the output.
    Exited,
    TimedOut,
    Interrupted(Signal),
}

/// Collected output and how the collection ended.
struct Collected {
    streams: Streams,
    end: End,
}

/// Reads both streams of a non-blocking channel until the output ends, or the command's
/// shell has exited and [`OUTPUT_GRACE`] has passed, or `stop` says to give up.
fn collect(
    channel: &mut Channel,
    stop: &mut Tracker<'_>,
    marker: &[u8],
) -> Result<Collected, OpErr> {
    let mut s = Streams::default();
    let mut grace_end = None;
    let started = Instant::now();
    let mut pause = Duration::from_micros(50);
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        let mut got = read_available(&mut channel.stream(0), &mut chunk)?;
        keep_output(&mut s.out, &chunk);
        chunk.clear();
        got += read_available(&mut channel.stderr(), &mut chunk)?;
        s.stderr(&chunk, marker);
        if s.exited.is_some() && grace_end.is_none() {
            grace_end = Some(Instant::now() + OUTPUT_GRACE);
        }
        let now = Instant::now();
        stop.observe(&s.out, now);
        let end = if got == 0 && channel.eof() {
            Some(End::Eof)
        } else if let Some(g) = grace_end {
            (now >= g).then_some(End::Exited)
        } else if let Some(signal) = interrupt::requested().filter(|_| stop.interruptible) {
            Some(End::Interrupted(signal))
        } else {
            (now >= stop.deadline).then_some(End::TimedOut)
        };
        if let Some(end) = end {
            s.flush();
            return Ok(Collected { streams: s, end });
        }
        if got > 0 {
            pause = Duration::from_micros(50);
            continue;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(poll_cap(started.elapsed()));
    }
}

/// Longest pause between two looks at a command's channel: short while the command is
/// young (most end within milliseconds, and a pause of 10 ms doubled the time of a 3 ms
/// command), longer once it has run a while (a reload that takes seconds).
fn poll_cap(running: Duration) -> Duration {
    if running < Duration::from_millis(250) {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(10)
    }
}

/// Reads stdout until it holds the wrapper's PID line (or the output ends, or
/// [`PID_WAIT`] passes): on a loaded node the line may still be on its way.
fn await_pid_line(channel: &mut Channel, out: &mut Vec<u8>) {
    let until = Instant::now() + PID_WAIT;
    let mut chunk = Vec::new();
    while !out.contains(&b'\n') && Instant::now() < until {
        chunk.clear();
        match read_available(&mut channel.stream(0), &mut chunk) {
            Ok(0) if channel.eof() => return,
            Ok(0) => thread::sleep(Duration::from_millis(5)),
            Ok(_) => keep_output(out, &chunk),
            Err(_) => return,
        }
    }
}

/// The channel's exit status, `None` when a signal ended the command.
fn exit_code(channel: &Channel) -> Result<Option<i32>, ssh2::Error> {
    let signalled = channel
        .exit_signal()
        .map(|s| s.exit_signal.is_some())
        .unwrap_or(false);
    if signalled {
        return Ok(None);
    }
    Ok(Some(channel.exit_status()?))
}

/// Reads what is available now; bytes are appended to `into` (the caller caps them).
fn read_available<R: Read>(r: &mut R, into: &mut Vec<u8>) -> Result<usize, OpErr> {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                total += n;
                // Bound one round, so that a command printing without end cannot keep
                // this loop from checking its deadline.
                if total >= 256 * 1024 {
                    return Ok(total);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(total),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(OpErr::Stream(e)),
        }
    }
}

/// libssh2's "would block" (`LIBSSH2_ERROR_EAGAIN`) in non-blocking mode.
fn would_block(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(-37)
}
