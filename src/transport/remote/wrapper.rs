//! The shell wrappers a remote command runs in, and the protocol of their output: the
//! PID line they print first (the process group to kill at a deadline or on SIGINT and
//! SIGTERM) and, for node commands, the exit marker on stderr that carries the command's
//! status (see [`super::command`] for why a node command's end is its shell's exit).

use crate::shell::shell_quote;
use crate::transport::limits::keep_output;

/// The shell script that runs `command` (see the module header): prints its PID, runs
/// the command (in a subshell) with stdin from /dev/null and its two streams relayed by `cat`s that
/// ignore SIGPIPE and drain into /dev/null once the channel is gone, then prints
/// `<marker> <exit status>` on the channel's stderr. The login shell only `exec`s
/// `/bin/sh` with the quoted script and command as arguments.
pub(super) fn wrapper(command: &str, marker: &str, stdin: bool) -> String {
    let relay = "(trap '' PIPE; cat; exec cat >/dev/null) 2>/dev/null";
    // With input, the command reads the channel (the pipeline's first stage inherits it).
    let input = if stdin { "" } else { "</dev/null" };
    // The command runs as `sh -c` would run it (no positional parameters), in a subshell
    // of the wrapper's shell rather than a shell of its own: one program fewer to start.
    let script = format!(
        "echo $$; exec 4>&2; certroll_command=$1; set --; \
         {{ {{ (eval \"$certroll_command\") {input} 3>&- 4>&-; echo \"{marker} $?\" >&4; }} \
         2>&1 1>&3 3>&- | {relay} >&4 3>&-; }} 3>&1 | {relay}"
    );
    format!(
        "exec /bin/sh -c {} certroll {}",
        shell_quote(&script),
        shell_quote(command)
    )
}

/// The lean wrapper of certroll's own scripts, which leave nothing running behind them:
/// one `sh` that prints its PID (the process group to kill at the deadline) and runs the
/// command itself, its streams straight on the channel (stdin from /dev/null unless
/// `stdin`); the command's end is the end of its output, its status the channel's.
pub(super) fn direct(command: &str, stdin: bool) -> String {
    let input = if stdin { "" } else { " </dev/null" };
    let script = format!("echo $$; eval \"$1\"{input}");
    format!(
        "exec /bin/sh -c {} certroll {}",
        shell_quote(&script),
        shell_quote(command)
    )
}

/// The two streams as read so far, and the exit status once the marker was seen.
#[derive(Default)]
pub(super) struct Streams {
    pub(super) out: Vec<u8>,
    pub(super) err: Vec<u8>,
    /// The last bytes of stderr not yet known to hold no marker.
    pending: Vec<u8>,
    pub(super) exited: Option<i32>,
}

impl Streams {
    /// Takes a chunk of stderr: the marker line (once) is removed and parsed, everything
    /// else is kept (up to the cap).
    pub(super) fn stderr(&mut self, chunk: &[u8], marker: &[u8]) {
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
    pub(super) fn flush(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        keep_output(&mut self.err, &pending);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits the PID line the wrapper prints first from the command's own output.
pub(super) fn split_pid(stdout: Vec<u8>) -> (Option<u32>, Vec<u8>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_marker_split_across_reads_is_found_and_removed() {
        let marker = b"certroll-exit-0123456789ab ";
        let mut s = Streams::default();
        s.stderr(b"first line\ncertroll-exit-01", marker);
        assert_eq!(s.exited, None);
        s.stderr(b"23456789ab 3\nlater\n", marker);
        assert_eq!(s.exited, Some(3));
        s.stderr(b"after\n", marker);
        s.flush();
        assert_eq!(s.err, b"first line\nlater\nafter\n");
        // A marker with another nonce is the command's own output.
        let mut s = Streams::default();
        s.stderr(b"certroll-exit-ffffffffffff 0\n", marker);
        s.flush();
        assert_eq!((s.exited, s.err.len()), (None, 29));
    }

    #[test]
    fn wrapper_reports_pid_and_exit_and_keeps_the_streams_apart() {
        // What sshd does: the login shell runs the wrapper with `-c`.
        let marker = "certroll-exit-0123456789ab";
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(wrapper(
                "echo out; echo 'it''s err' >&2; exit 7",
                marker,
                false,
            ))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let (pid, rest) = stdout.split_once('\n').unwrap();
        assert!(pid.parse::<u32>().is_ok(), "{stdout}");
        assert_eq!(rest, "out\n");
        let mut s = Streams::default();
        s.stderr(&out.stderr, format!("{marker} ").as_bytes());
        s.flush();
        assert_eq!(s.exited, Some(7));
        assert_eq!(String::from_utf8_lossy(&s.err), "its err\n");
        // As under `sh -c`: no positional parameters, and a syntax error is the command's.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(wrapper("echo \"[$#]\"; if", marker, false))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.split_once('\n').unwrap().1, "", "{stdout}");
        let mut s = Streams::default();
        s.stderr(&out.stderr, format!("{marker} ").as_bytes());
        assert_eq!(s.exited, Some(2));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(wrapper("echo \"[$#]\"", marker, false))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(stdout.split_once('\n').unwrap().1, "[0]\n");
    }
}
