//! The one in-memory node of the unit tests: files with their modes, scripted command
//! results, and the faults a test asks for (a file that cannot be read, writes that fail).
//! Unit tests of the executor and the verifier drive it instead of a real transport.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{ErrorKind, ExecOutput, Transport, TransportError, WriteOptions};

/// A node in memory. Commands answer from `script` (the last answer repeats).
pub struct FakeNode {
    pub name: String,
    /// path → (bytes, mode).
    pub files: Mutex<BTreeMap<String, (Vec<u8>, u32)>>,
    /// Paths whose read fails with "permission denied".
    pub unreadable: Mutex<Vec<String>>,
    pub script: Mutex<VecDeque<Result<ExecOutput, ErrorKind>>>,
    /// Every command run, in order.
    pub commands: Mutex<Vec<String>>,
    /// When set, every write fails with this kind.
    pub fail_write: Option<ErrorKind>,
    /// When set, commands exit 1 ("not yet") before this instant and 0 from then on,
    /// whatever the script says.
    pub succeed_from: Option<Instant>,
}

/// A command's answer: `status` and `stderr`, no stdout.
pub fn out(status: i32, stderr: &str) -> Result<ExecOutput, ErrorKind> {
    Ok(ExecOutput {
        status: Some(status),
        stdout: String::new(),
        stderr: stderr.to_string(),
    })
}

impl FakeNode {
    /// Node `name` with no files, whose commands all exit 0 saying "ok".
    pub fn new(name: &str) -> FakeNode {
        let ok = Ok(ExecOutput {
            status: Some(0),
            stdout: "ok\n".into(),
            stderr: String::new(),
        });
        FakeNode {
            name: name.to_string(),
            files: Mutex::default(),
            unreadable: Mutex::default(),
            script: Mutex::new(VecDeque::from([ok])),
            commands: Mutex::default(),
            fail_write: None,
            succeed_from: None,
        }
    }

    /// The same node whose commands fail until `from` and succeed afterwards.
    pub fn succeeding_from(self, from: Instant) -> FakeNode {
        FakeNode {
            succeed_from: Some(from),
            ..self
        }
    }

    /// The same node answering its commands from `script`.
    pub fn scripted(self, script: Vec<Result<ExecOutput, ErrorKind>>) -> FakeNode {
        FakeNode {
            script: Mutex::new(script.into()),
            ..self
        }
    }

    /// Puts a file on the node.
    pub fn put(&self, path: &str, data: &[u8], mode: u32) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), (data.to_vec(), mode));
    }

    fn fail(&self, action: String, kind: ErrorKind, message: &str) -> TransportError {
        TransportError::new(&self.name, action, kind, message)
    }
}

impl Transport for FakeNode {
    fn node(&self) -> &str {
        &self.name
    }
    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        if self.unreadable.lock().unwrap().iter().any(|p| p == path) {
            let action = format!("read {path}");
            return Err(self.fail(action, ErrorKind::Io, "permission denied"));
        }
        Ok(self.files.lock().unwrap().get(path).map(|(d, _)| d.clone()))
    }
    fn file_mode(&self, path: &str) -> Result<Option<u32>, TransportError> {
        Ok(self.files.lock().unwrap().get(path).map(|(_, m)| *m))
    }
    fn write_file(
        &self,
        path: &str,
        data: &[u8],
        o: WriteOptions<'_>,
    ) -> Result<(), TransportError> {
        if let Some(kind) = self.fail_write {
            let action = format!("write {} {path}", o.what);
            return Err(self.fail(action, kind, "permission denied"));
        }
        let mut files = self.files.lock().unwrap();
        if let (Some(tag), Some(old)) = (o.backup_tag, files.get(path).cloned()) {
            files.insert(format!("{path}.{tag}.bak"), old);
        }
        files.insert(path.to_string(), (data.to_vec(), o.mode));
        Ok(())
    }
    fn remove_file(&self, path: &str, backup_tag: Option<&str>) -> Result<(), TransportError> {
        let mut files = self.files.lock().unwrap();
        if let (Some(tag), Some(old)) = (backup_tag, files.remove(path)) {
            files.insert(format!("{path}.{tag}.bak"), old);
        }
        Ok(())
    }
    fn exec(&self, command: &str, _timeout: Duration) -> Result<ExecOutput, TransportError> {
        self.commands.lock().unwrap().push(command.to_string());
        if let Some(from) = self.succeed_from {
            let status = if Instant::now() >= from { 0 } else { 1 };
            return out(status, "not yet").map_err(|k| self.fail(String::new(), k, ""));
        }
        let mut script = self.script.lock().unwrap();
        let next = if script.len() > 1 {
            script.pop_front().unwrap()
        } else {
            script[0].clone()
        };
        next.map_err(|k| self.fail(format!("run `{command}`"), k, "connection reset"))
    }
}
