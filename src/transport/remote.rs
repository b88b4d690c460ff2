//! Operations on one live SSH connection: SFTP reads and atomic writes, commands with
//! a time limit.
//!
//! OpenSSH's SFTP v3 `rename` refuses to overwrite and ssh2 does not bind
//! `posix-rename@openssh.com`, so the final step of an atomic write (backup by hard
//! link, then rename over the target) runs as one small shell command. Commands report
//! their shell's PID first so a command that outlives its time limit can have its
//! whole process group killed (sshd starts every session command in a new session).

use std::io::{Read, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use ssh2::{Channel, ErrorCode, FileStat, OpenFlags, OpenType, Session, Sftp};

use super::local::{io_message, random_suffix};
use super::session::{ssh_error, IO_TIMEOUT};
use super::ssh::shell_quote;
use super::tunnel::Tunnel;
use super::{sha256_hex, ErrorKind, ExecOutput, TransportError, WriteOptions};

/// One authenticated session with its lazily opened SFTP channel. Fields drop in
/// order: SFTP, then the session, then the tunnel that carries it.
pub(crate) struct Conn {
    sftp: Option<Sftp>,
    session: Session,
    _tunnel: Option<Tunnel>,
    broken: bool,
}

/// Output of a command: stdout, stderr, exit status (`None` after a signal or timeout).
struct Raw {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<i32>,
}

/// How long a timed-out command's channel may take to close after its group was killed.
const KILL_GRACE: Duration = Duration::from_secs(10);

impl Conn {
    pub(crate) fn new(session: Session, tunnel: Option<Tunnel>) -> Self {
        Conn {
            sftp: None,
            session,
            _tunnel: tunnel,
            broken: false,
        }
    }

    /// The session and the tunnel under it, for a caller that needs the session alone
    /// (a byte stream of its own); the SFTP channel, if open, is closed.
    pub(crate) fn into_parts(self) -> (Session, Option<Tunnel>) {
        drop(self.sftp);
        (self.session, self._tunnel)
    }

    fn sftp(&mut self) -> Result<&Sftp, ssh2::Error> {
        let sftp = match self.sftp.take() {
            Some(s) => s,
            None => self.session.sftp()?,
        };
        Ok(self.sftp.insert(sftp))
    }

    /// Reads a whole file; `None` if it does not exist.
    pub(crate) fn read(
        &mut self,
        node: &str,
        path: &str,
        action: &str,
    ) -> Result<Option<Vec<u8>>, TransportError> {
        let err = |e: &ssh2::Error| ssh_error(node, action, e);
        let mut file = match self.sftp().and_then(|s| s.open(Path::new(path))) {
            Ok(f) => f,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(err(&e)),
        };
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| TransportError::new(node, action, ErrorKind::Io, io_message(&e)))?;
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
            "{}/.{name}.certroll-{}",
            dir.trim_end_matches('/'),
            random_suffix()
        );
        if let Err(e) = self.write_temp(&tmp, data, opts.mode) {
            self.discard(&tmp);
            return Err(e.into_error(node, &action));
        }
        let mut script = String::from("set -e; ");
        let (t, tq) = (shell_quote(path), shell_quote(&tmp));
        if let Some(tag) = opts.backup_tag {
            let b = shell_quote(&format!("{path}.{tag}.bak"));
            script += &format!(
                "if [ -e {t} ]; then ln -f -- {t} {b} 2>/dev/null || cp -p -- {t} {b}; fi; "
            );
        }
        script += &format!("mv -f -- {tq} {t}");
        let raw = self
            .run(&script, IO_TIMEOUT)
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
            .run(&script, IO_TIMEOUT)
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

    /// Runs `command` under `sh -c`; kills its process group when `timeout` expires.
    pub(crate) fn exec(
        &mut self,
        node: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let action = format!("run `{command}`");
        let raw = self
            .run(command, timeout)
            .map_err(|e| e.into_error(node, &action))?;
        Ok(ExecOutput {
            status: raw.status,
            stdout: String::from_utf8_lossy(&raw.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&raw.stderr).into_owned(),
        })
    }

    /// Runs `command` under `/bin/sh -c`, collecting output without blocking on either
    /// stream. The wrapper prints the shell's PID first (the leader of the process
    /// group sshd created); on timeout that group is killed, then the channel closed.
    fn run(&mut self, command: &str, timeout: Duration) -> Result<Raw, OpErr> {
        let wrapped = format!("echo $$; exec /bin/sh -c {}", shell_quote(command));
        let mut channel = self.session.channel_session()?;
        channel.exec(&wrapped)?;
        self.session.set_blocking(false);
        let collected = collect(&mut channel, Instant::now() + timeout);
        self.session.set_blocking(true);
        let (stdout, stderr, finished) = collected?;
        let (pid, stdout) = split_pid(stdout);
        if !finished {
            if let Some(pid) = pid {
                let kill = format!("kill -KILL -- -{pid} {pid} 2>/dev/null; true");
                if let Ok(mut ch) = self.session.channel_session() {
                    let _ = ch.exec(&kill).and_then(|()| ch.wait_close());
                }
            }
            // sshd closes the channel once the killed command is gone; if it does not,
            // the session may be stuck mid-close and is replaced before the next call.
            self.session.set_timeout(KILL_GRACE.as_millis() as u32);
            if channel.close().and_then(|()| channel.wait_close()).is_err() {
                self.broken = true;
            }
            self.session.set_timeout(IO_TIMEOUT.as_millis() as u32);
            return Ok(Raw {
                stdout,
                stderr,
                status: None,
            });
        }
        channel.wait_close()?;
        let signalled = channel
            .exit_signal()
            .map(|s| s.exit_signal.is_some())
            .unwrap_or(false);
        let status = if signalled {
            None
        } else {
            Some(channel.exit_status()?)
        };
        Ok(Raw {
            stdout,
            stderr,
            status,
        })
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
        file.write_all(data).map_err(OpErr::Io)?;
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
    /// Writing file data failed (disk full, quota...).
    Io(std::io::Error),
    /// Reading a command's output failed: the connection is broken.
    Stream(std::io::Error),
}

impl OpErr {
    fn into_error(self, node: &str, action: &str) -> TransportError {
        match self {
            OpErr::Ssh(e) => ssh_error(node, action, &e),
            OpErr::Io(e) => TransportError::new(node, action, ErrorKind::Io, io_message(&e)),
            OpErr::Stream(e) => {
                TransportError::new(node, action, ErrorKind::Transient, io_message(&e))
            }
        }
    }
}

impl From<ssh2::Error> for OpErr {
    fn from(e: ssh2::Error) -> Self {
        OpErr::Ssh(e)
    }
}

/// Reads both streams of a non-blocking channel until EOF or the deadline.
fn collect(channel: &mut Channel, deadline: Instant) -> Result<(Vec<u8>, Vec<u8>, bool), OpErr> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut pause = Duration::from_micros(50);
    loop {
        let got = read_available(&mut channel.stream(0), &mut out)?
            + read_available(&mut channel.stderr(), &mut err)?;
        if got > 0 {
            pause = Duration::from_micros(50);
            continue;
        }
        if channel.eof() {
            return Ok((out, err, true));
        }
        if Instant::now() >= deadline {
            return Ok((out, err, false));
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

fn read_available<R: Read>(r: &mut R, into: &mut Vec<u8>) -> Result<usize, OpErr> {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => {
                into.extend_from_slice(&buf[..n]);
                total += n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(total),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(OpErr::Stream(e)),
        }
    }
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
