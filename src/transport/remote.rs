//! Operations on one live SSH connection: SFTP reads and atomic writes, commands with
//! a time limit.
//!
//! OpenSSH's SFTP v3 `rename` refuses to overwrite and ssh2 does not bind
//! `posix-rename@openssh.com`, so the final step of an atomic write (backup by hard
//! link, then rename over the target) runs as one small shell command. Reads are
//! bounded ([`super::limits`]): the file's type and size are checked before it is opened.
//!
//! Commands (the node's and these helpers) run as described in [`command`].

use std::io::{Read, Write};
use std::path::Path;

use ssh2::{Channel, ErrorCode, FileStat, OpenFlags, OpenType, Session, Sftp};

use super::limits::{self, random_suffix, MAX_FILE_BYTES};
use super::session::{io_error, ssh_error, IO_TIMEOUT};
use super::tunnel::Tunnel;
use super::{sha256_hex, ErrorKind, TransportError, WriteOptions};
use crate::interrupt::Signal;
use crate::shell::shell_quote;

mod command;
mod wrapper;

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

    /// The session and the tunnel under it, for a caller that needs the session alone
    /// (a byte stream of its own); the SFTP channel, if open, is closed.
    pub(crate) fn into_parts(mut self) -> (Session, Option<Tunnel>) {
        self.sftp = None;
        // `Session` is a shared handle: this clone keeps the session open once `self`
        // (a fresh connection, with no lingering channel) is dropped.
        (self.session.clone(), self._tunnel.take())
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

    /// The listing described on [`super::Transport::list_dir`] (SFTP `readdir`, which
    /// reports each entry without following links).
    pub(crate) fn list(
        &mut self,
        node: &str,
        path: &str,
    ) -> Result<Option<Vec<super::DirEntry>>, TransportError> {
        let entries = match self.sftp().and_then(|s| s.readdir(Path::new(path))) {
            Ok(e) => e,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(ssh_error(node, &format!("list directory {path}"), &e)),
        };
        let listed = entries
            .into_iter()
            .take(super::MAX_DIR_ENTRIES)
            .filter_map(|(p, st)| {
                let perm = st.perm?;
                Some(super::DirEntry {
                    name: p.file_name()?.to_string_lossy().into_owned(),
                    mode: perm & 0o7777,
                    regular: perm & 0o170000 == 0o100000,
                    size: st.size.unwrap_or(0),
                })
            })
            .collect();
        Ok(Some(listed))
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
            // A backup never exposes a key: a key file's backup is kept as closed as the
            // new key, and any backup holding a private key (e.g. one appended to a
            // certificate) is made 0600.
            let tighten = if opts.mode & 0o077 == 0 {
                format!("chmod {:o} -- {b}; ", opts.mode)
            } else {
                format!("if grep -q -e 'PRIVATE KEY-----' -- {b}; then chmod 600 -- {b}; fi; ")
            };
            script += &format!(
                "if [ -e {t} ]; then ln -f -- {t} {b} 2>/dev/null || \
                 {{ [ -f {t} ] || {{ echo 'cannot back up '{t}': not a regular file' >&2; exit 1; }}; \
                 cp -p -- {t} {b}; }}; {tighten}fi; "
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

    /// Runs `command` on a bare channel: the login shell runs it as it is, with no
    /// wrapper, no deadline and no process group to kill; returns its exit status (`None`
    /// after a signal). Only for measuring what the wrappers cost (`benches/fleet.rs`,
    /// `floor`): a node command must go through [`Conn::exec`].
    pub(crate) fn exec_bare(
        &mut self,
        node: &str,
        command: &str,
    ) -> Result<Option<i32>, TransportError> {
        let action = format!("{} on a bare channel", super::run_action(command));
        let run = |session: &Session| -> Result<Option<i32>, OpErr> {
            let mut channel = session.channel_session()?;
            channel.exec(command)?;
            let mut sink = Vec::new();
            channel.read_to_end(&mut sink).map_err(OpErr::Stream)?;
            channel
                .stderr()
                .read_to_end(&mut sink)
                .map_err(OpErr::Stream)?;
            channel.wait_close()?;
            let signalled = channel.exit_signal().is_ok_and(|s| s.exit_signal.is_some());
            Ok((!signalled).then_some(channel.exit_status()?))
        };
        run(&self.session).map_err(|e| e.into_error(node, &action))
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
    /// A command too long for one SSH packet, not sent (its size).
    TooLong(usize),
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
            OpErr::TooLong(size) => {
                TransportError::new(node, action, ErrorKind::Io, limits::command_too_long(size))
            }
        }
    }
}

impl From<ssh2::Error> for OpErr {
    fn from(e: ssh2::Error) -> Self {
        OpErr::Ssh(e)
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

/// The message of a failed helper command: its stderr, else its exit status.
fn command_failure(raw: &Raw) -> String {
    let stderr = String::from_utf8_lossy(&raw.stderr).trim().to_string();
    match (stderr.is_empty(), raw.status) {
        (false, _) => stderr,
        (true, Some(code)) => format!("command exited with status {code}"),
        (true, None) => "command was killed or timed out".to_string(),
    }
}
