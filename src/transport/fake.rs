//! The one in-memory node of the unit tests: files with their modes, scripted command
//! results, and the faults a test asks for (a file that cannot be read, writes that fail).
//! It also plays the layout script's file changes (`exec_input`) on its files.
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
    /// Plays the layout script on the in-memory files: writes and removes as it would,
    /// then runs the reload and the first confirm (through [`Transport::exec`]) as the script
    /// does.
    fn exec_input(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        if let Some(kind) = self.fail_write {
            let action = "write the files of CA internal".to_string();
            return Err(self.fail(action, kind, "permission denied"));
        }
        let (line, script) = command
            .split_once('\n')
            .expect("set -- line, then the script");
        let parts = [
            crate::layout::safety_script::SAFETY,
            crate::layout::keys_script::KEYS,
            crate::layout::os_trust_script::OS_TRUST,
            crate::layout::script::SCRIPT,
        ];
        let shipped = crate::layout::script_io::shipped(&parts);
        assert_eq!(Some(script), shipped.strip_prefix('\n'));
        let words = shell_words(line);
        assert_eq!(words[..3], ["set", "--", "apply"], "{words:?}");
        let (reload, confirm) = (words[13].clone(), words[14].clone());
        let mut data = input;
        // 14 words, then OSDIR OSUPDATE OSFILES, then 6 per file.
        for f in words[20..].chunks(6) {
            let mut files = self.files.lock().unwrap();
            match f[2].as_str() {
                "w" => {
                    let (now, rest) = data.split_at(f[3].parse().unwrap());
                    data = rest;
                    files.insert(f[1].clone(), (now.to_vec(), 0o600));
                }
                "r" => {
                    files.remove(&f[1]);
                }
                _ => {}
            }
        }
        // The data ends with `END_MARKER NONCE`.
        let end = String::from_utf8_lossy(data);
        let nonce = end.trim_end().rsplit(' ').next().unwrap_or_default();
        let mut stdout = format!("certroll: files in place {nonce}\n");
        let mut stderr = String::new();
        let mut reloaded = true;
        for (command, marker) in [(reload, "reload"), (confirm, "confirm")] {
            if command.is_empty() || !reloaded {
                continue;
            }
            let r = self.exec(&command, timeout)?;
            let status = r.status.unwrap_or(137);
            let line = format!("\ncertroll: {marker} exited {nonce} {status}\n");
            stdout += &format!("{}{line}", r.stdout);
            stderr += &format!("{}{line}", r.stderr);
            reloaded = status == 0;
        }
        Ok(ExecOutput {
            status: Some(0),
            stdout,
            stderr,
        })
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
        next.map_err(|k| self.fail(super::run_action(command), k, "connection reset"))
    }
}

/// Splits a command made of words quoted by `shell_quote` (or bare words).
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let (mut cur, mut quoted, mut any) = (String::new(), false, false);
    let mut chars = command.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('\'', _) => {
                quoted = !quoted;
                any = true;
            }
            ('\\', false) => {
                cur.extend(chars.next());
            }
            (' ', false) => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (c, _) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}
