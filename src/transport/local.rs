//! The local transport: a node's files and commands on this machine (`transport = "local"`).
//!
//! It gives the same guarantees as the SSH transport so that a rollover rehearsed on
//! one machine behaves like the real one: atomic writes (temporary file created with
//! the final mode in the target's directory, fsync, backup by hard link, rename,
//! directory fsync, read-back hash check), bounded reads of regular files only, and
//! commands with a time limit that kill the whole process group when it expires
//! ([`super::process`]). Relative paths and commands are resolved against the working
//! directory (the inventory's directory).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::child_env::SecretEnv;
use super::limits::{self, random_suffix, MAX_FILE_BYTES};
use super::process::{self, Ended};
use super::session::io_message;
use super::{sha256_hex, ErrorKind, ExecOutput, Transport, TransportError, WriteOptions};

/// Files and commands of one node on the control host.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    node: String,
    workdir: PathBuf,
    /// Variables the commands it runs never inherit.
    secrets: SecretEnv,
}

impl LocalTransport {
    /// A transport for `node` whose relative paths and commands run in `workdir`.
    pub fn new(node: &str, workdir: &Path) -> Self {
        LocalTransport {
            node: node.to_string(),
            workdir: workdir.to_path_buf(),
            secrets: SecretEnv::none(),
        }
    }

    /// The same transport, whose commands start without the variables of `secrets`.
    pub fn hiding(mut self, secrets: SecretEnv) -> Self {
        self.secrets = secrets;
        self
    }

    /// The directory relative paths are resolved against.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.workdir.join(p)
        }
    }

    fn io_err(&self, action: String, e: &io::Error) -> TransportError {
        TransportError::new(&self.node, action, ErrorKind::Io, io_message(e))
    }

    fn write_inner(
        &self,
        target: &Path,
        data: &[u8],
        opts: WriteOptions<'_>,
        tmp: &Path,
    ) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(opts.mode)
            .open(tmp)?;
        // The umask may have cleared bits of the requested mode: set it exactly.
        file.set_permissions(fs::Permissions::from_mode(opts.mode))?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        if let Some(tag) = opts.backup_tag {
            backup(target, tag)?;
            tighten_backup(&backup_path(target, tag), opts.mode)?;
        }
        fs::rename(tmp, target)?;
        if let Some(dir) = target.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Keeps `target` as `<target>.<tag>.bak` (hard link, else copy) if it exists.
fn backup(target: &Path, tag: &str) -> io::Result<()> {
    if fs::symlink_metadata(target).is_err() {
        return Ok(());
    }
    let bak = backup_path(target, tag);
    match fs::remove_file(&bak) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if fs::hard_link(target, &bak).is_err() {
        // A copy reads the file: never a FIFO or a device, which could block for ever.
        if !fs::metadata(target)?.is_file() {
            let msg = format!("cannot back up {}: not a regular file", target.display());
            return Err(io::Error::other(msg));
        }
        fs::copy(target, &bak)?;
    }
    Ok(())
}

/// A backup never exposes a key: a key file's backup is kept as closed as the new key
/// (`mode`), and any backup holding a private key (e.g. one appended to a certificate)
/// is made 0600.
fn tighten_backup(bak: &Path, mode: u32) -> io::Result<()> {
    let Ok(meta) = fs::symlink_metadata(bak) else {
        return Ok(());
    };
    let secret = mode & 0o077 == 0
        || (meta.is_file()
            && meta.len() <= 1 << 20
            && fs::read(bak).is_ok_and(|d| super::holds_private_key(&d)));
    if secret && meta.permissions().mode() & 0o077 != 0 {
        let closed = if mode & 0o077 == 0 { mode } else { 0o600 };
        fs::set_permissions(bak, fs::Permissions::from_mode(closed))?;
    }
    Ok(())
}

fn backup_path(target: &Path, tag: &str) -> PathBuf {
    let mut s = target.as_os_str().to_os_string();
    s.push(format!(".{tag}.bak"));
    PathBuf::from(s)
}

impl Transport for LocalTransport {
    fn node(&self) -> &str {
        &self.node
    }

    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        match read_bounded(&self.resolve(path)) {
            Ok(Bounded::Data(data)) => Ok(Some(data)),
            Ok(Bounded::Refused(why)) => Err(limits::refused(&self.node, path, why)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_err(format!("read {path}"), &e)),
        }
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<super::DirEntry>>, TransportError> {
        let action = || format!("list directory {path}");
        let entries = match fs::read_dir(self.resolve(path)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_err(action(), &e)),
        };
        let mut out = Vec::new();
        for entry in entries.take(super::MAX_DIR_ENTRIES) {
            let entry = entry.map_err(|e| self.io_err(action(), &e))?;
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue; // removed while listing
            };
            out.push(super::DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                mode: meta.permissions().mode() & 0o7777,
                regular: meta.file_type().is_file(),
                size: meta.len(),
            });
        }
        Ok(Some(out))
    }

    fn file_mode(&self, path: &str) -> Result<Option<u32>, TransportError> {
        match fs::metadata(self.resolve(path)) {
            Ok(m) => Ok(Some(m.permissions().mode() & 0o7777)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_err(format!("read the mode of {path}"), &e)),
        }
    }

    fn write_file(
        &self,
        path: &str,
        data: &[u8],
        opts: WriteOptions<'_>,
    ) -> Result<(), TransportError> {
        let action = format!("write {} {path}", opts.what);
        let target = self.resolve(path);
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(TransportError::new(
                &self.node,
                action,
                ErrorKind::Io,
                "not a file path",
            ));
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| self.io_err(action.clone(), &e))?;
        let name = name.to_string_lossy();
        remove_stale_temps(dir, &name);
        let tmp = dir.join(limits::temp_name(&name, &random_suffix()));
        if let Err(e) = self.write_inner(&target, data, opts, &tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(self.io_err(action, &e));
        }
        let back = match read_bounded(&target) {
            Ok(Bounded::Data(back)) => back,
            Ok(Bounded::Refused(why)) => {
                return Err(TransportError::new(&self.node, action, ErrorKind::Io, why))
            }
            Err(e) => return Err(self.io_err(action, &e)),
        };
        let (want, got) = (sha256_hex(data), sha256_hex(&back));
        if want != got {
            let msg = format!("read-back mismatch: wrote sha256 {want}, file has sha256 {got}");
            return Err(TransportError::new(&self.node, action, ErrorKind::Io, msg));
        }
        Ok(())
    }

    fn remove_file(&self, path: &str, backup_tag: Option<&str>) -> Result<(), TransportError> {
        let action = format!("remove {path}");
        let target = self.resolve(path);
        if fs::symlink_metadata(&target).is_err() {
            return Ok(());
        }
        if let Some(tag) = backup_tag {
            backup(&target, tag).map_err(|e| self.io_err(action.clone(), &e))?;
        }
        match fs::remove_file(&target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io_err(action, &e)),
        }
    }

    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, TransportError> {
        self.run(command, None, timeout, &[])
    }

    fn exec_input(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        self.run(command, Some(input), timeout, &[])
    }

    fn exec_staged(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
        stages: &[super::Stage<'_>],
    ) -> Result<ExecOutput, TransportError> {
        self.run(command, Some(input), timeout, stages)
    }
    fn open_stream(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn super::ByteStream>, TransportError> {
        super::stream::connect_local(&self.node, host, port, timeout)
    }
}

impl LocalTransport {
    /// Runs `sh -c command` in the work directory, with `input` (then EOF) or nothing on
    /// its standard input; kills its process group at the deadline (see [`process::run`]
    /// for `stages`).
    fn run(
        &self,
        command: &str,
        input: Option<&[u8]>,
        timeout: Duration,
        stages: &[super::Stage<'_>],
    ) -> Result<ExecOutput, TransportError> {
        let action = super::run_action(command);
        let done = process::run(
            command,
            &self.workdir,
            input,
            timeout,
            &self.secrets,
            stages,
        )
        .map_err(|e| self.io_err(action.clone(), &e))?;
        let status = match done.ended {
            Ended::Exited(code) => code,
            Ended::TimedOut => None,
            Ended::Interrupted(signal) => {
                let msg = format!(
                    "interrupted by {}: the command's process group was killed",
                    signal.name()
                );
                return Err(TransportError::new(
                    &self.node,
                    action,
                    ErrorKind::Interrupted,
                    msg,
                ));
            }
        };
        Ok(ExecOutput {
            status,
            stdout: String::from_utf8_lossy(&done.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
        })
    }
}

/// A bounded read: the data, or why the file was refused.
enum Bounded {
    Data(Vec<u8>),
    Refused(String),
}

/// Reads a regular file of at most [`MAX_FILE_BYTES`], following symbolic links. The
/// file is opened non-blocking, so a FIFO swapped in after the type check cannot hang
/// the open, and its type is checked again on the open file.
fn read_bounded(path: &Path) -> io::Result<Bounded> {
    if let Some(why) = refusal(&fs::metadata(path)?) {
        return Ok(Bounded::Refused(why));
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if let Some(why) = refusal(&file.metadata()?) {
        return Ok(Bounded::Refused(why));
    }
    let mut data = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_FILE_BYTES {
        return Ok(Bounded::Refused(limits::too_large(data.len() as u64)));
    }
    Ok(Bounded::Data(data))
}

/// Why a file with this metadata is not read, if it is not.
fn refusal(meta: &fs::Metadata) -> Option<String> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        return (meta.len() > MAX_FILE_BYTES).then(|| limits::too_large(meta.len()));
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    };
    Some(limits::not_regular(kind))
}

/// Removes temporary files an earlier, killed write of `name` left in `dir`; only names
/// certroll makes ([`limits::is_temp_of`]), and only files or links, never directories.
fn remove_stale_temps(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let n = entry.file_name();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(true);
        if !is_dir && limits::is_temp_of(&n.to_string_lossy(), name) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;
