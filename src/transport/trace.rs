//! Test hook: `CERTROLL_TRACE_TRANSPORT=<file>` appends every command, its standard input,
//! output and error, and every file read or written, that crosses any transport to
//! `<file>`. Compiled only into debug builds (`debug_assertions`); the integration tests
//! use it to prove that a key made on the node never crosses the transport. It records
//! secrets (with `key_source = "control"` the keys travel): never set it on a real fleet.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{ByteStream, DirEntry, ExecOutput, Transport, TransportError, WriteOptions};

/// The environment variable naming the trace file.
pub const TRACE_ENV: &str = "CERTROLL_TRACE_TRANSPORT";

/// `inner`, traced when [`TRACE_ENV`] is set.
pub fn wrap(inner: Arc<dyn Transport>) -> Arc<dyn Transport> {
    match std::env::var_os(TRACE_ENV) {
        Some(path) if !path.is_empty() => Arc::new(Traced {
            inner,
            file: Mutex::new(path.into()),
        }),
        _ => inner,
    }
}

struct Traced {
    inner: Arc<dyn Transport>,
    file: Mutex<std::path::PathBuf>,
}

impl Traced {
    fn log(&self, what: &str, parts: &[(&str, &[u8])]) {
        // A test hook: a trace that cannot be written is skipped, never a failed step.
        let Ok(path) = self.file.lock() else { return };
        let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&*path)
        else {
            return;
        };
        let mut rec = format!("=== node {} {what}\n", self.inner.node()).into_bytes();
        for (name, data) in parts {
            rec.extend_from_slice(format!("--- {name}\n").as_bytes());
            rec.extend_from_slice(data);
            rec.push(b'\n');
        }
        let _ = f.write_all(&rec);
    }

    fn exec_log(&self, command: &str, input: &[u8], r: &Result<ExecOutput, TransportError>) {
        match r {
            Ok(o) => self.log(
                "exec",
                &[
                    ("command", command.as_bytes()),
                    ("stdin", input),
                    ("stdout", o.stdout.as_bytes()),
                    ("stderr", o.stderr.as_bytes()),
                ],
            ),
            Err(e) => self.log(
                "exec",
                &[
                    ("command", command.as_bytes()),
                    ("stdin", input),
                    ("error", e.to_string().as_bytes()),
                ],
            ),
        }
    }
}

impl Transport for Traced {
    fn node(&self) -> &str {
        self.inner.node()
    }

    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        let r = self.inner.read_file(path);
        let data = r.as_ref().ok().and_then(|d| d.clone()).unwrap_or_default();
        self.log("read_file", &[("path", path.as_bytes()), ("stdout", &data)]);
        r
    }

    fn file_mode(&self, path: &str) -> Result<Option<u32>, TransportError> {
        self.log("file_mode", &[("path", path.as_bytes())]);
        self.inner.file_mode(path)
    }

    fn write_file(
        &self,
        path: &str,
        data: &[u8],
        opts: WriteOptions<'_>,
    ) -> Result<(), TransportError> {
        self.log("write_file", &[("path", path.as_bytes()), ("stdin", data)]);
        self.inner.write_file(path, data, opts)
    }

    fn remove_file(&self, path: &str, backup_tag: Option<&str>) -> Result<(), TransportError> {
        self.log("remove_file", &[("path", path.as_bytes())]);
        self.inner.remove_file(path, backup_tag)
    }

    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, TransportError> {
        let r = self.inner.exec(command, timeout);
        self.exec_log(command, &[], &r);
        r
    }

    fn exec_input(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let r = self.inner.exec_input(command, input, timeout);
        self.exec_log(command, input, &r);
        r
    }

    fn exec_staged(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
        stages: &[super::Stage<'_>],
    ) -> Result<ExecOutput, TransportError> {
        let r = self.inner.exec_staged(command, input, timeout, stages);
        self.exec_log(command, input, &r);
        r
    }

    fn open_stream(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn ByteStream>, TransportError> {
        self.log(
            "open_stream",
            &[("address", format!("{host}:{port}").as_bytes())],
        );
        self.inner.open_stream(host, port, timeout)
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<DirEntry>>, TransportError> {
        let r = self.inner.list_dir(path);
        let names: Vec<u8> = r
            .as_ref()
            .ok()
            .and_then(|e| e.as_ref())
            .map(|e| {
                e.iter()
                    .flat_map(|d| format!("{}\n", d.name).into_bytes())
                    .collect()
            })
            .unwrap_or_default();
        self.log("list_dir", &[("path", path.as_bytes()), ("stdout", &names)]);
        r
    }
}
