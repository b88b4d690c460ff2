//! `become = "sudo"`: a node reached as an unprivileged SSH user whose files and commands
//! need root. Every operation of the wrapped transport runs through `sudo -n` (never a
//! password prompt): commands as `sudo -n -- sh -c '<command>'`, file reads and writes as
//! small scripts whose data travels on standard input (base64 on the way back), never in a
//! command line.
//!
//! A sudo that would ask for a password fails at once, with a message that says so: at
//! connect time (`sudo -n true`), and again on any later command should the rule change.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use super::{ErrorKind, ExecOutput, Transport, TransportError, WriteOptions};
use crate::shell::shell_quote;

/// How long one of the wrapper's own helper commands (read, write, mode) may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// A transport whose operations run through `sudo -n` on the node.
pub struct Sudo {
    inner: Arc<dyn Transport>,
}

impl Sudo {
    /// Wraps `inner` after checking that `sudo -n true` works on the node.
    pub fn check(inner: Arc<dyn Transport>) -> Result<Sudo, TransportError> {
        let sudo = Sudo { inner };
        let out = sudo.inner.exec("sudo -n true", HELPER_TIMEOUT)?;
        if out.success() {
            return Ok(sudo);
        }
        Err(sudo.refused("run `sudo -n true` (become = \"sudo\")", &out))
    }

    /// `sudo -n -- sh -c '<command>'`.
    pub fn wrap(command: &str) -> String {
        format!("sudo -n -- sh -c {}", shell_quote(command))
    }

    /// The error for a sudo that did not run the command: a password prompt, or no sudo.
    fn refused(&self, action: &str, out: &ExecOutput) -> TransportError {
        let said = out.stderr.trim();
        let message = if said.contains("password") {
            format!(
                "sudo asks for a password, and certroll never types one: give the login user a \
                 NOPASSWD sudoers rule, or log in as root (sudo -n said: {said})"
            )
        } else if out.status == Some(127) || said.contains("not found") {
            format!("sudo is not installed on the node ({said})")
        } else {
            format!(
                "sudo -n refused: {}",
                if said.is_empty() { "no message" } else { said }
            )
        };
        TransportError::new(self.inner.node(), action, ErrorKind::Auth, message)
    }

    /// `out`, or the error of [`Sudo::refused`] for `action` when sudo itself refused.
    fn unless_refused(&self, action: &str, out: ExecOutput) -> Result<ExecOutput, TransportError> {
        if Sudo::sudo_refused(&out) {
            return Err(self.refused(action, &out));
        }
        Ok(out)
    }

    /// True when sudo itself refused (it says so on stderr, exit 1) rather than the command failing.
    fn sudo_refused(out: &ExecOutput) -> bool {
        out.status == Some(1)
            && out.stderr.lines().any(|l| {
                l.starts_with("sudo:") && (l.contains("password") || l.contains("not allowed"))
            })
    }

    /// Runs a helper `script` with `args` as root, `input` on stdin.
    fn helper(
        &self,
        action: &str,
        script: &str,
        args: &[&str],
        input: &[u8],
    ) -> Result<ExecOutput, TransportError> {
        let mut command = format!("sudo -n -- sh -c {} certroll", shell_quote(script));
        for a in args {
            command.push(' ');
            command.push_str(&shell_quote(a));
        }
        let out = self.inner.exec_input(&command, input, HELPER_TIMEOUT)?;
        self.unless_refused(action, out)
    }

    fn failed(&self, action: String, out: &ExecOutput) -> TransportError {
        let said = out.stderr.trim();
        let message = match (said.is_empty(), out.status) {
            (false, _) => said.to_string(),
            (true, Some(code)) => format!("command exited with status {code}"),
            (true, None) => "command was killed or timed out".to_string(),
        };
        TransportError::new(self.inner.node(), action, ErrorKind::Io, message)
    }
}

/// Reads a regular file as base64; exit 3 when it does not exist.
const READ: &str = r#"[ -e "$1" ] || exit 3
[ -f "$1" ] || { echo "not a regular file" >&2; exit 4; }
exec base64 -w 0 -- "$1""#;

/// Writes stdin atomically to $1 with mode $2, keeping `$1.$3.bak` when $3 is set.
const WRITE: &str = r#"set -e
d=$(dirname -- "$1"); n=$(basename -- "$1")
mkdir -p -- "$d"
t="$d/.$n.certroll-$$"
umask 077
cat > "$t"
chmod -- "$2" "$t"
if [ -n "$3" ] && [ -e "$1" ]; then ln -f -- "$1" "$1.$3.bak" 2>/dev/null || cp -p -- "$1" "$1.$3.bak"; fi
mv -f -- "$t" "$1""#;

impl Transport for Sudo {
    fn node(&self) -> &str {
        self.inner.node()
    }

    fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, TransportError> {
        let action = format!("read {path}");
        let out = self.helper(&action, READ, &[path], &[])?;
        match out.status {
            Some(0) => base64::engine::general_purpose::STANDARD
                .decode(out.stdout.trim())
                .map(Some)
                .map_err(|e| {
                    TransportError::new(self.node(), action, ErrorKind::Io, e.to_string())
                }),
            Some(3) => Ok(None),
            _ => Err(self.failed(action, &out)),
        }
    }

    fn file_mode(&self, path: &str) -> Result<Option<u32>, TransportError> {
        let action = format!("read the mode of {path}");
        let script = r#"[ -e "$1" ] || exit 3; exec stat -L -c %a -- "$1""#;
        let out = self.helper(&action, script, &[path], &[])?;
        match out.status {
            Some(0) => u32::from_str_radix(out.stdout.trim(), 8)
                .map(Some)
                .map_err(|e| {
                    TransportError::new(self.node(), action, ErrorKind::Io, e.to_string())
                }),
            Some(3) => Ok(None),
            _ => Err(self.failed(action, &out)),
        }
    }

    fn write_file(
        &self,
        path: &str,
        data: &[u8],
        opts: WriteOptions<'_>,
    ) -> Result<(), TransportError> {
        let action = format!("write {} {path}", opts.what);
        let mode = format!("{:o}", opts.mode);
        let tag = opts.backup_tag.unwrap_or_default();
        let out = self.helper(&action, WRITE, &[path, &mode, tag], data)?;
        if !out.success() {
            return Err(self.failed(action, &out));
        }
        Ok(())
    }

    fn remove_file(&self, path: &str, backup_tag: Option<&str>) -> Result<(), TransportError> {
        let action = format!("remove {path}");
        let script = r#"if [ -n "$2" ] && [ -e "$1" ]; then mv -f -- "$1" "$1.$2.bak"; else rm -f -- "$1"; fi"#;
        let out = self.helper(
            &action,
            script,
            &[path, backup_tag.unwrap_or_default()],
            &[],
        )?;
        if !out.success() {
            return Err(self.failed(action, &out));
        }
        Ok(())
    }

    fn exec(&self, command: &str, timeout: Duration) -> Result<ExecOutput, TransportError> {
        let out = self.inner.exec(&Sudo::wrap(command), timeout)?;
        self.unless_refused(&super::run_action(command), out)
    }

    /// A TCP stream needs no privilege: opened by the login session.
    fn open_stream(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Box<dyn super::ByteStream>, TransportError> {
        self.inner.open_stream(host, port, timeout)
    }

    /// Listed as the login user: a directory it cannot read lists as absent.
    fn list_dir(&self, path: &str) -> Result<Option<Vec<super::DirEntry>>, TransportError> {
        self.inner.list_dir(path)
    }

    fn exec_input(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<ExecOutput, TransportError> {
        let out = self
            .inner
            .exec_input(&Sudo::wrap(command), input, timeout)?;
        self.unless_refused(&super::run_action(command), out)
    }

    fn exec_staged(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
        stages: &[super::Stage<'_>],
    ) -> Result<ExecOutput, TransportError> {
        let out = self
            .inner
            .exec_staged(&Sudo::wrap(command), input, timeout, stages)?;
        self.unless_refused(&super::run_action(command), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_prompt_is_recognised() {
        let out = ExecOutput {
            status: Some(1),
            stdout: String::new(),
            stderr: "sudo: a password is required\n".into(),
        };
        assert!(Sudo::sudo_refused(&out));
        let fine = ExecOutput {
            status: Some(1),
            stdout: String::new(),
            stderr: "reload failed\n".into(),
        };
        assert!(!Sudo::sudo_refused(&fine));
    }

    #[test]
    fn commands_are_quoted_once_for_sudo() {
        assert_eq!(
            Sudo::wrap("systemctl reload 'x'"),
            "sudo -n -- sh -c 'systemctl reload '\\''x'\\'''"
        );
    }
}
