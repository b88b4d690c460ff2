//! The local transport: a node's files and commands on this machine (`transport = "local"`).
//!
//! It gives the same guarantees as the SSH transport so that a rollover rehearsed on
//! one machine behaves like the real one: atomic writes (temporary file created with
//! the final mode in the target's directory, fsync, backup by hard link, rename,
//! directory fsync, read-back hash check) and commands with a time limit that kill the
//! whole process group when it expires. Relative paths and commands are resolved
//! against the working directory (the inventory's directory).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{sha256_hex, ErrorKind, ExecOutput, Transport, TransportError, WriteOptions};

/// Files and commands of one node on the control host.
#[derive(Debug, Clone)]
pub struct LocalTransport {
    node: String,
    workdir: PathBuf,
}

impl LocalTransport {
    /// A transport for `node` whose relative paths and commands run in `workdir`.
    pub fn new(node: &str, workdir: &Path) -> Self {
        LocalTransport {
            node: node.to_string(),
            workdir: workdir.to_path_buf(),
        }
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
        fs::copy(target, &bak)?;
    }
    Ok(())
}

fn backup_path(target: &Path, tag: &str) -> PathBuf {
    let mut s = target.as_os_str().to_os_string();
    s.push(format!(".{tag}.bak"));
    PathBuf::from(s)
}

/// An I/O error as a short lower-case message without the "(os error N)" suffix.
pub(crate) fn io_message(e: &io::Error) -> String {
    let text = match e.kind() {
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// A random hex suffix for temporary files.
pub(crate) fn random_suffix() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}

impl Transport for LocalTransport {
    fn node(&self) -> &str {
        &self.node
    }

    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        match fs::read(self.resolve(path)) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io_err(format!("read {path}"), &e)),
        }
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
        let tmp = dir.join(format!(
            ".{}.certroll-{}",
            name.to_string_lossy(),
            random_suffix()
        ));
        if let Err(e) = self.write_inner(&target, data, opts, &tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(self.io_err(action, &e));
        }
        let back = fs::read(&target).map_err(|e| self.io_err(action.clone(), &e))?;
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
        let action = format!("run `{command}`");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(&self.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| self.io_err(action.clone(), &e))?;
        let out = spawn_reader(child.stdout.take());
        let err = spawn_reader(child.stderr.take());
        let finished = wait_until(&mut child, Instant::now() + timeout)
            .map_err(|e| self.io_err(action.clone(), &e))?;
        let status = match finished {
            Some(code) => code,
            None => {
                kill_group(&mut child);
                None
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        Ok(ExecOutput {
            status,
            stdout,
            stderr,
        })
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

/// Reads a pipe to the end on a thread, so that a full pipe never blocks the child.
fn spawn_reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for the child until `deadline`: `Some(exit code)` when it ended (the code is
/// `None` after a signal), `None` when the deadline passed first.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<Option<i32>>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status.code()));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Kills the child's whole process group (it leads its own group), then reaps it.
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(mode: u32, tag: Option<&str>) -> WriteOptions<'_> {
        WriteOptions {
            mode,
            backup_tag: tag,
            what: "key",
        }
    }

    #[test]
    fn write_creates_parents_mode_and_backup() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalTransport::new("n1", dir.path());
        t.write_file("tls/key.pem", b"one", opts(0o600, Some("g1")))
            .unwrap();
        assert_eq!(
            t.read_file("tls/key.pem").unwrap().as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(t.file_mode("tls/key.pem").unwrap(), Some(0o600));
        assert_eq!(
            t.read_file("tls/key.pem.g1.bak").unwrap(),
            None,
            "no backup of nothing"
        );
        t.write_file("tls/key.pem", b"two", opts(0o644, Some("g1")))
            .unwrap();
        assert_eq!(
            t.read_file("tls/key.pem").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(t.file_mode("tls/key.pem").unwrap(), Some(0o644));
        assert_eq!(
            t.read_file("tls/key.pem.g1.bak").unwrap().as_deref(),
            Some(&b"one"[..])
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("tls"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("certroll-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn absolute_paths_and_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalTransport::new("n1", Path::new("/nonexistent-workdir"));
        let abs = dir.path().join("a.pem");
        let abs = abs.to_str().unwrap();
        assert_eq!(t.read_file(abs).unwrap(), None);
        assert_eq!(t.file_mode(abs).unwrap(), None);
        t.remove_file(abs, Some("x")).unwrap();
        t.write_file(abs, b"data", opts(0o644, None)).unwrap();
        t.remove_file(abs, Some("g7")).unwrap();
        assert_eq!(t.read_file(abs).unwrap(), None);
        assert_eq!(
            t.read_file(&format!("{abs}.g7.bak")).unwrap().as_deref(),
            Some(&b"data"[..])
        );
    }

    #[test]
    fn write_errors_name_action_file_and_node() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("file"), b"x").unwrap();
        let t = LocalTransport::new("app1", dir.path());
        let err = t.write_file(
            "file/ca.pem",
            b"x",
            WriteOptions {
                mode: 0o644,
                backup_tag: None,
                what: "trust bundle",
            },
        );
        let err = err.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Io);
        let text = err.to_string();
        assert!(
            text.starts_with("failed to write trust bundle file/ca.pem on node app1: "),
            "{text}"
        );
    }

    #[test]
    fn exec_runs_in_workdir_and_captures_output() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("marker"), b"here").unwrap();
        let t = LocalTransport::new("n1", dir.path());
        let out = t
            .exec("cat marker; echo oops >&2; exit 3", Duration::from_secs(10))
            .unwrap();
        assert_eq!(out.status, Some(3));
        assert_eq!(out.stdout, "here");
        assert_eq!(out.stderr, "oops\n");
        assert!(t.exec("true", Duration::from_secs(10)).unwrap().success());
    }

    #[test]
    fn exec_timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let t = LocalTransport::new("n1", dir.path());
        let start = Instant::now();
        // The background sleep keeps stdout open: only a group kill lets the call return.
        let out = t
            .exec(
                "sleep 30 & echo started; sleep 30",
                Duration::from_millis(300),
            )
            .unwrap();
        assert_eq!(out.status, None);
        assert_eq!(out.stdout, "started\n");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
    }
}
