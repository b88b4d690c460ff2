//! Operations on one live SSH connection: SFTP reads and atomic writes, commands with
//! a time limit.
//!
//! OpenSSH's SFTP v3 `rename` refuses to overwrite and ssh2 does not bind
//! `posix-rename@openssh.com`, so the final step of an atomic write (backup by hard
//! link, then rename over the target) runs as one small shell command. Reads are
//! bounded ([`super::limits`]): the file's type and size are checked before it is opened.
//!
//! Commands run inside a small wrapper ([`wrapper`]). It prints its PID first: sshd
//! starts every session command in a new session, so that PID names the process group
//! to kill at the deadline or on SIGINT/SIGTERM. It runs the command with stdin from
//! /dev/null and its output relayed through two `cat` processes, and it reports the
//! command's exit on stderr behind a random marker. So the end of a command is its
//! shell's exit, not the end of its output: a background child that keeps the output
//! open (a reload that forks a server) is not waited for, and after the channel closes
//! the relays keep draining what it writes into /dev/null, so it neither blocks nor dies
//! of SIGPIPE. It is not killed either: it was left behind on purpose.

use std::io::{Read, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use ssh2::{Channel, ErrorCode, FileStat, OpenFlags, OpenType, Session, Sftp};

use super::limits::{self, keep_output, MAX_FILE_BYTES};
use super::local::random_suffix;
use super::process::OUTPUT_GRACE;
use super::session::{io_error, ssh_error, IO_TIMEOUT};
use super::ssh::shell_quote;
use super::tunnel::Tunnel;
use super::{sha256_hex, ErrorKind, ExecOutput, TransportError, WriteOptions};
use crate::interrupt::{self, CommandGuard, Signal};

/// One authenticated session with its lazily opened SFTP channel. Fields drop in
/// order: SFTP, then the session, then the tunnel that carries it.
pub(crate) struct Conn {
    sftp: Option<Sftp>,
    /// Channels of commands that returned while something they left behind still held
    /// their output: closed on our side, waiting for sshd's close (see [`Conn::abandon`]).
    lingering: Vec<Channel>,
    session: Session,
    _tunnel: Option<Tunnel>,
    broken: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.sftp = None;
        if !self.lingering.is_empty() {
            // Freeing a channel sshd has not closed yet would wait for it (in blocking
            // mode, up to the I/O timeout): let libssh2 give up at once instead.
            self.session.set_blocking(false);
            self.lingering.clear();
        }
    }
}

/// Output of a command: stdout, stderr, exit status (`None` after a signal or timeout).
struct Raw {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<i32>,
    /// Set when SIGINT or SIGTERM stopped the command (its group was killed).
    interrupted: Option<Signal>,
}

/// Most abandoned channels kept per session (sshd counts them against `MaxSessions`,
/// default 10); past this the session is replaced before the next call.
const MAX_LINGERING: usize = 4;

impl Conn {
    pub(crate) fn new(session: Session, tunnel: Option<Tunnel>) -> Self {
        Conn {
            sftp: None,
            lingering: Vec::new(),
            session,
            _tunnel: tunnel,
            broken: false,
        }
    }

    fn sftp(&mut self) -> Result<&Sftp, ssh2::Error> {
        let sftp = match self.sftp.take() {
            Some(s) => s,
            None => self.session.sftp()?,
        };
        Ok(self.sftp.insert(sftp))
    }

    /// Reads a whole regular file of at most [`MAX_FILE_BYTES`]; `None` if it does not
    /// exist. Its type and size are checked (following links) before it is opened.
    pub(crate) fn read(
        &mut self,
        node: &str,
        path: &str,
        action: &str,
    ) -> Result<Option<Vec<u8>>, TransportError> {
        let err = |e: &ssh2::Error| ssh_error(node, action, e);
        let refused = |why: String| TransportError::new(node, action, ErrorKind::FileRefused, why);
        let sftp = self.sftp().map_err(|e| err(&e))?;
        let st = match sftp.stat(Path::new(path)) {
            Ok(st) => st,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(err(&e)),
        };
        if let Some(why) = refusal(&st) {
            return Err(refused(why));
        }
        let file = match sftp.open(Path::new(path)) {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(err(&e)),
        };
        let mut data = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| {
                io_error(
                    node,
                    action,
                    &e,
                    ssh2::Error::last_session_error(&self.session),
                )
            })?;
        if data.len() as u64 > MAX_FILE_BYTES {
            return Err(refused(limits::too_large(data.len() as u64)));
        }
        Ok(Some(data))
    }

    /// Permission bits of a file; `None` if it does not exist.
    pub(crate) fn mode(&mut self, node: &str, path: &str) -> Result<Option<u32>, TransportError> {
        match self.sftp().and_then(|s| s.stat(Path::new(path))) {
            Ok(st) => Ok(st.perm.map(|p| p & 0o7777)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(ssh_error(node, &format!("read the mode of {path}"), &e)),
        }
    }

    /// The atomic write described on [`super::Transport::write_file`].
    pub(crate) fn write(
        &mut self,
        node: &str,
        path: &str,
        data: &[u8],
        opts: WriteOptions<'_>,
    ) -> Result<(), TransportError> {
        let action = format!("write {} {path}", opts.what);
        let fail = |kind, msg: String| TransportError::new(node, action.as_str(), kind, msg);
        let (dir, name) = split_path(path)
            .ok_or_else(|| fail(ErrorKind::Io, "remote paths must be absolute".into()))?;
        self.mkdir_p(node, &action, dir)?;
        let tmp = format!(
            "{}/{}",
            dir.trim_end_matches('/'),
            limits::temp_name(name, &random_suffix())
        );
        if let Err(e) = self.write_temp(&tmp, data, opts.mode) {
            self.discard(&tmp);
            return Err(e.into_error(node, &action));
        }
        let (t, tq) = (shell_quote(path), shell_quote(&tmp));
        // Temporary files of earlier, killed writes of this file go first (never ours).
        let mut script = format!(
            "for f in {}; do if [ \"$f\" != {tq} ] && [ -f \"$f\" ]; then rm -f -- \"$f\"; fi; done; set -e; ",
            limits::temp_glob(dir, name)
        );
        if let Some(tag) = opts.backup_tag {
            let b = shell_quote(&format!("{path}.{tag}.bak"));
            script += &format!(
                "if [ -e {t} ]; then ln -f -- {t} {b} 2>/dev/null || \
                 {{ [ -f {t} ] || {{ echo 'cannot back up '{t}': not a regular file' >&2; exit 1; }}; \
                 cp -p -- {t} {b}; }}; fi; "
            );
        }
        script += &format!("mv -f -- {tq} {t}");
        let raw = self
            .run(&script, IO_TIMEOUT, false)
            .map_err(|e| e.into_error(node, &action))?;
        if raw.status != Some(0) {
            self.discard(&tmp);
            return Err(fail(ErrorKind::Io, command_failure(&raw)));
        }
        let back = self.read(node, path, &action)?.unwrap_or_default();
        let (want, got) = (sha256_hex(data), sha256_hex(&back));
        if want != got {
            return Err(fail(
                ErrorKind::Io,
                format!("read-back mismatch: wrote sha256 {want}, file has sha256 {got}"),
            ));
        }
        Ok(())
    }

    /// Removes a file, first keeping it as `<path>.<tag>.bak` when a tag is given.
    pub(crate) fn remove(
        &mut self,
        node: &str,
        path: &str,
        backup_tag: Option<&str>,
    ) -> Result<(), TransportError> {
        let action = format!("remove {path}");
        match self.sftp().and_then(|s| s.lstat(Path::new(path))) {
            Ok(_) => {}
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(ssh_error(node, &action, &e)),
        }
        let Some(tag) = backup_tag else {
            return match self.sftp().and_then(|s| s.unlink(Path::new(path))) {
                Ok(()) => Ok(()),
                Err(e) if is_missing(&e) => Ok(()),
                Err(e) => Err(ssh_error(node, &action, &e)),
            };
        };
        let (t, b) = (shell_quote(path), shell_quote(&format!("{path}.{tag}.bak")));
        let script = format!("if [ -e {t} ] || [ -L {t} ]; then mv -f -- {t} {b}; fi");
        let raw = self
            .run(&script, IO_TIMEOUT, false)
            .map_err(|e| e.into_error(node, &action))?;
        if raw.status != Some(0) {
            return Err(TransportError::new(
                node,
                action,
                ErrorKind::Io,
                command_failure(&raw),
            ));
        }
        Ok(())
    }

    /// Runs `command` under `sh -c`; kills its process group when `timeout` expires or
    /// SIGINT/SIGTERM arrives ([`ErrorKind::Interrupted`]).
    pub(crate) fn exec(
        &mut self,
        node: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let action = format!("run `{command}`");
        let raw = self
            .run(command, timeout, true)
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

    /// Runs `command` in the [`wrapper`], collecting output without blocking on either
    /// stream, until the command's shell exits, `timeout` passes or (when
    /// `interruptible`) a signal arrives. In the last two cases the process group is
    /// killed before the channel is closed.
    fn run(&mut self, command: &str, timeout: Duration, interruptible: bool) -> Result<Raw, OpErr> {
        let _in_flight = CommandGuard::new();
        self.reap();
        let marker = format!("certroll-exit-{} ", random_suffix());
        let mut channel = self.session.channel_session()?;
        channel.exec(&wrapper(command, marker.trim_end()))?;
        self.session.set_blocking(false);
        let stop = Stop {
            deadline: Instant::now() + timeout,
            interruptible,
        };
        let collected = collect(&mut channel, &stop, marker.as_bytes());
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
                    let kill = format!("kill -KILL -- -{pid} {pid} 2>/dev/null; true");
                    if let Ok(mut ch) = self.session.channel_session() {
                        let _ = ch.exec(&kill).and_then(|()| ch.wait_close());
                    }
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

    /// True when an operation left the session in a doubtful state.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    fn mkdir_p(&mut self, node: &str, action: &str, dir: &str) -> Result<(), TransportError> {
        let sftp = self.sftp().map_err(|e| ssh_error(node, action, &e))?;
        if sftp
            .stat(Path::new(dir))
            .map(|s| s.is_dir())
            .unwrap_or(false)
        {
            return Ok(());
        }
        let mut prefix = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            prefix.push('/');
            prefix.push_str(part);
            let p = Path::new(&prefix);
            match sftp.stat(p) {
                Ok(st) if st.is_dir() => continue,
                Ok(_) => {
                    let msg = format!("cannot create directory {prefix}: not a directory");
                    return Err(TransportError::new(node, action, ErrorKind::Io, msg));
                }
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(ssh_error(node, action, &e)),
            }
            if let Err(e) = sftp.mkdir(p, 0o755) {
                // Another writer may have created it meanwhile.
                if !sftp.stat(p).map(|s| s.is_dir()).unwrap_or(false) {
                    let mut err = ssh_error(node, action, &e);
                    err.message = format!("cannot create directory {prefix}: {}", err.message);
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    fn write_temp(&mut self, tmp: &str, data: &[u8], mode: u32) -> Result<(), OpErr> {
        let sftp = self.sftp()?;
        let flags = OpenFlags::WRITE | OpenFlags::EXCLUSIVE;
        let mut file = sftp.open_mode(Path::new(tmp), flags, mode as i32, OpenType::File)?;
        // The server's umask may have cleared bits of the requested mode: set it exactly.
        let perm = FileStat {
            size: None,
            uid: None,
            gid: None,
            perm: Some(mode),
            atime: None,
            mtime: None,
        };
        file.setstat(perm)?;
        if let Err(e) = file.write_all(data) {
            return Err(OpErr::Io(e, ssh2::Error::last_session_error(&self.session)));
        }
        match file.fsync() {
            Ok(()) => {}
            // Servers without fsync@openssh.com: the rename still orders the data.
            Err(e) if e.code() == ErrorCode::SFTP(8) => {}
            Err(e) => return Err(OpErr::Ssh(e)),
        }
        file.close()?;
        Ok(())
    }

    /// Best-effort removal of a temporary file after a failed write.
    fn discard(&mut self, tmp: &str) {
        if let Ok(sftp) = self.sftp() {
            let _ = sftp.unlink(Path::new(tmp));
        }
    }
}

/// A failure inside one operation, before it is named and classified.
enum OpErr {
    /// A libssh2 or SFTP error.
    Ssh(ssh2::Error),
    /// Writing file data failed (disk full, quota, a dropped connection), with the
    /// session's last libssh2 error, which tells which.
    Io(std::io::Error, Option<ssh2::Error>),
    /// Reading a command's output failed: the connection is broken.
    Stream(std::io::Error),
}

impl OpErr {
    fn into_error(self, node: &str, action: &str) -> TransportError {
        match self {
            OpErr::Ssh(e) => ssh_error(node, action, &e),
            OpErr::Io(e, last) => io_error(node, action, &e, last),
            OpErr::Stream(e) => {
                let mut err = io_error(node, action, &e, None);
                // Whatever the cause, a command's output stream broke: the session is gone.
                if err.kind == ErrorKind::Io {
                    err.kind = ErrorKind::Transient;
                }
                err
            }
        }
    }
}

impl From<ssh2::Error> for OpErr {
    fn from(e: ssh2::Error) -> Self {
        OpErr::Ssh(e)
    }
}

/// The shell script that runs `command` (see the module header): prints its PID, runs
/// the command with stdin from /dev/null and its two streams relayed by `cat`s that
/// ignore SIGPIPE and drain into /dev/null once the channel is gone, then prints
/// `<marker> <exit status>` on the channel's stderr. The login shell only `exec`s
/// `/bin/sh` with the quoted script and command as arguments.
fn wrapper(command: &str, marker: &str) -> String {
    let relay = "(trap '' PIPE; cat; exec cat >/dev/null) 2>/dev/null";
    let script = format!(
        "echo $$; exec 4>&2; \
         {{ {{ /bin/sh -c \"$1\" </dev/null 3>&- 4>&-; echo \"{marker} $?\" >&4; }} \
         2>&1 1>&3 3>&- | {relay} >&4 3>&-; }} 3>&1 | {relay}"
    );
    format!(
        "exec /bin/sh -c {} certroll {}",
        shell_quote(&script),
        shell_quote(command)
    )
}

/// When [`collect`] gives up waiting for the command's shell.
struct Stop {
    deadline: Instant,
    /// Whether SIGINT/SIGTERM stops the command (user commands, not internal helpers).
    interruptible: bool,
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

/// The two streams as read so far, and the exit status once the marker was seen.
#[derive(Default)]
struct Streams {
    out: Vec<u8>,
    err: Vec<u8>,
    /// The last bytes of stderr not yet known to hold no marker.
    pending: Vec<u8>,
    exited: Option<i32>,
}

impl Streams {
    /// Takes a chunk of stderr: the marker line (once) is removed and parsed, everything
    /// else is kept (up to the cap).
    fn stderr(&mut self, chunk: &[u8], marker: &[u8]) {
        if self.exited.is_some() {
            keep_output(&mut self.err, chunk);
            return;
        }
        self.pending.extend_from_slice(chunk);
        if let Some(at) = find(&self.pending, marker) {
            let rest = &self.pending[at + marker.len()..];
            if let Some(nl) = rest.iter().position(|&b| b == b'\n') {
                let code = std::str::from_utf8(&rest[..nl])
                    .ok()
                    .and_then(|c| c.parse().ok());
                let after = rest[nl + 1..].to_vec();
                let before = self.pending[..at].to_vec();
                keep_output(&mut self.err, &before);
                keep_output(&mut self.err, &after);
                self.pending.clear();
                self.exited = Some(code.unwrap_or(-1));
            }
            return;
        }
        // Keep back only what could be the start of a marker split across two reads.
        let keep = self.pending.len().min(marker.len() + 16);
        let flush = self.pending.len() - keep;
        let head: Vec<u8> = self.pending.drain(..flush).collect();
        keep_output(&mut self.err, &head);
    }

    /// Stderr bytes held back while looking for the marker, once no marker can follow.
    fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        keep_output(&mut self.err, &pending);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Collected output and how the collection ended.
struct Collected {
    streams: Streams,
    end: End,
}

/// Reads both streams of a non-blocking channel until the output ends, or the command's
/// shell has exited and [`OUTPUT_GRACE`] has passed, or `stop` says to give up.
fn collect(channel: &mut Channel, stop: &Stop, marker: &[u8]) -> Result<Collected, OpErr> {
    let mut s = Streams::default();
    let mut grace_end = None;
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
        pause = (pause * 2).min(Duration::from_millis(10));
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

/// Why a file with these SFTP attributes is not read, if it is not.
fn refusal(st: &FileStat) -> Option<String> {
    use ssh2::FileType;
    let kind = match st.perm.map(|_| st.file_type()) {
        None | Some(FileType::RegularFile) => {
            let size = st.size.unwrap_or(0);
            return (size > MAX_FILE_BYTES).then(|| limits::too_large(size));
        }
        Some(FileType::NamedPipe) => "a FIFO",
        Some(FileType::Directory) => "a directory",
        Some(FileType::CharDevice) => "a character device",
        Some(FileType::BlockDevice) => "a block device",
        Some(FileType::Socket) => "a socket",
        Some(_) => "a special file",
    };
    Some(limits::not_regular(kind))
}

/// libssh2's "would block" (`LIBSSH2_ERROR_EAGAIN`) in non-blocking mode.
fn would_block(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(-37)
}

fn is_missing(e: &ssh2::Error) -> bool {
    matches!(e.code(), ErrorCode::SFTP(2) | ErrorCode::SFTP(10))
}

/// `("/etc/tls", "ca.pem")` for `/etc/tls/ca.pem`; `None` for relative paths.
fn split_path(path: &str) -> Option<(&str, &str)> {
    if !path.starts_with('/') {
        return None;
    }
    let (dir, name) = path.rsplit_once('/')?;
    if name.is_empty() {
        return None;
    }
    Some((if dir.is_empty() { "/" } else { dir }, name))
}

/// Splits the PID line the wrapper prints first from the command's own output.
fn split_pid(stdout: Vec<u8>) -> (Option<u32>, Vec<u8>) {
    let Some(nl) = stdout.iter().position(|&b| b == b'\n') else {
        return (None, stdout);
    };
    match std::str::from_utf8(&stdout[..nl])
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(pid) => (Some(pid), stdout[nl + 1..].to_vec()),
        None => (None, stdout),
    }
}

/// The message of a failed helper command: its stderr, else its exit status.
fn command_failure(raw: &Raw) -> String {
    let stderr = String::from_utf8_lossy(&raw.stderr).trim().to_string();
    match (stderr.is_empty(), raw.status) {
        (false, _) => stderr,
        (true, Some(code)) => format!("command exited with status {code}"),
        (true, None) => "command was killed or timed out".to_string(),
    }
}
