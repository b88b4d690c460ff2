//! The mechanism of one step on a real node: switch to a new version of its files in one
//! rename (the layout of [`crate::layout`], keeping the run's backup), run the node's reload
//! command and the first attempt of its confirm command in the same remote command, then
//! confirm: read every written file back and compare its SHA-256, and poll the node's
//! confirm command until it exits 0 or time runs out.
//!
//! What to write is decided elsewhere (from the PKI); these functions only carry it out,
//! through any [`Transport`], and turn every failure into a [`StepError`] that names the
//! node, the action and the file or command.

use std::time::{Duration, Instant};

use super::{FileHash, FileOp, StepError, PUBLIC_KEY_HASH};
use crate::inventory::Node;
use crate::layout::{self, ApplyOptions, Change, LayoutError, Role};
use crate::transport::{sha256_hex, ExecOutput, Transport};

/// First pause between two runs of the confirm command; it doubles up to [`CONFIRM_MAX_DELAY`].
pub const CONFIRM_FIRST_DELAY: Duration = Duration::from_millis(50);
/// Longest pause between two runs of the confirm command.
pub const CONFIRM_MAX_DELAY: Duration = Duration::from_secs(2);

/// A reload or confirm command with `{node}` and `{ca}` filled in, shell-quoted.
pub fn command_for(template: &str, node: &Node, ca: &str) -> String {
    crate::shell::fill(template, &[("node", &node.name), ("ca", ca)])
}

/// Writes the step's files as one new version of the node's file set for `ca` and switches
/// to it in one rename (see [`crate::layout`]); files the step does not touch are carried
/// over. `backup_tag` (the run id) tags the version and the run's backup. With `reload`,
/// the reload command runs in the same remote command; its result is returned. `last`
/// (the node's last step of the run) also removes the versions no longer needed.
pub fn apply_file_ops(
    transport: &dyn Transport,
    node: &Node,
    ca: &str,
    ops: &[FileOp],
    backup_tag: Option<&str>,
    reload: Option<&str>,
    last: bool,
) -> Result<Option<ExecOutput>, StepError> {
    let commands = NodeCommands {
        reload,
        confirm: None,
    };
    Ok(apply_files(transport, node, ca, ops, backup_tag, commands, last)?.reload)
}

/// The node's commands a step's remote command runs after the switch.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeCommands<'a> {
    pub reload: Option<&'a str>,
    /// Its first attempt only; [`apply_and_confirm`] polls the rest.
    pub confirm: Option<&'a str>,
}

/// [`apply_file_ops`], running `commands` in the same remote command; returns what they did.
pub fn apply_files(
    transport: &dyn Transport,
    node: &Node,
    ca: &str,
    ops: &[FileOp],
    backup_tag: Option<&str>,
    commands: NodeCommands<'_>,
    last: bool,
) -> Result<layout::Applied, StepError> {
    let paths = node.paths(ca);
    let mut changes = Vec::with_capacity(ops.len());
    for op in ops {
        let role = Role::of(&paths, op.path()).ok_or_else(|| {
            StepError::permanent(format!(
                "failed to write {} {} on node {}: it is not one of the node's files for CA {ca}",
                op.what(),
                op.path(),
                node.name
            ))
        })?;
        let change = match op {
            FileOp::Write { data, .. } => Change::Write(data),
            FileOp::Remove { .. } => Change::Remove,
            FileOp::NodeKey { pending, .. } => Change::NodeKey(pending),
            FileOp::Assemble { .. } => Change::Assemble,
        };
        changes.push((role, change));
    }
    let opts = ApplyOptions {
        reload: commands.reload,
        confirm: commands.confirm,
        clean: last,
        ..ApplyOptions::default()
    };
    let run = backup_tag.unwrap_or("run");
    match layout::apply(transport, node, ca, run, &changes, &opts) {
        Ok(applied) => Ok(applied),
        Err(LayoutError::Transport(e)) => Err(e.into()),
        Err(e) => Err(StepError::permanent(e.to_string())),
    }
}

/// Runs the node's reload command, if it has one; a non-zero exit fails the step.
pub fn run_reload(transport: &dyn Transport, node: &Node, ca: &str) -> Result<(), StepError> {
    let Some(template) = &node.reload else {
        return Ok(());
    };
    let command = command_for(template, node, ca);
    let out = transport.exec(&command, node.confirm_timeout)?;
    reload_result(node, &command, &out)
}

/// A reload that did not exit 0 fails the step, quoting its last words.
fn reload_result(node: &Node, command: &str, out: &ExecOutput) -> Result<(), StepError> {
    if out.success() {
        return Ok(());
    }
    Err(StepError::permanent(format!(
        "failed to run reload command `{command}` on node {}: {}",
        node.name,
        describe_exit(out)
    )))
}

/// Which of `expected` differ on the node, as readable reasons (empty when all match).
pub fn mismatches(
    transport: &dyn Transport,
    node: &Node,
    expected: &[FileHash],
) -> Result<Vec<String>, StepError> {
    let mut out = Vec::new();
    for f in expected {
        let public = f
            .sha256
            .as_deref()
            .is_some_and(|h| h.starts_with(PUBLIC_KEY_HASH));
        if f.sha256.as_deref() == Some(super::ASSEMBLED) {
            // Made on the node: never read back here; it must be there.
            if transport.file_mode(&f.path)?.is_some() {
                continue;
            }
            out.push(format!(
                "file {} on node {} is absent, expected the one made there",
                f.path, node.name
            ));
            continue;
        }
        let actual = if public {
            // A key made on the node is never read back: the node derives its public key.
            match layout::public_key(transport, node, &f.path) {
                Ok(k) => k.map(|d| format!("{PUBLIC_KEY_HASH}{}", sha256_hex(&d))),
                Err(LayoutError::Transport(e)) => return Err(e.into()),
                Err(e) => return Err(StepError::permanent(e.to_string())),
            }
        } else {
            transport.read_file(&f.path)?.map(|d| sha256_hex(&d))
        };
        if actual == f.sha256 {
            continue;
        }
        let shown = |h: &Option<String>| match h {
            Some(h) if h.starts_with(PUBLIC_KEY_HASH) => {
                let h = &h[PUBLIC_KEY_HASH.len()..];
                format!(
                    "a key whose public key has sha256 {}",
                    &h[..h.len().min(16)]
                )
            }
            Some(h) => format!("sha256 {}", &h[..h.len().min(16)]),
            None => "absent".to_string(),
        };
        out.push(format!(
            "file {} on node {} is {}, expected {}",
            f.path,
            node.name,
            shown(&actual),
            shown(&f.sha256)
        ));
    }
    Ok(out)
}

/// Whether every file in `expected` is on the node as journaled (absent where `sha256` is `None`).
pub fn files_match(
    transport: &dyn Transport,
    node: &Node,
    expected: &[FileHash],
) -> Result<bool, StepError> {
    Ok(mismatches(transport, node, expected)?.is_empty())
}

/// Confirms a step: every written file reads back with its hash, then the node's confirm
/// command (if any) exits 0 before `node.confirm_timeout`.
pub fn confirm(
    transport: &dyn Transport,
    node: &Node,
    ca: &str,
    written: &[FileHash],
) -> Result<(), StepError> {
    read_back(transport, node, written)?;
    let Some(template) = &node.confirm else {
        return Ok(());
    };
    poll_confirm(transport, node, &command_for(template, node, ca))
}

/// Every written file reads back with its hash.
fn read_back(
    transport: &dyn Transport,
    node: &Node,
    written: &[FileHash],
) -> Result<(), StepError> {
    let bad = mismatches(transport, node, written)?;
    if let Some(first) = bad.first() {
        return Err(StepError::confirm_failed(format!(
            "failed to read back what was written: {first}"
        )));
    }
    Ok(())
}

/// Runs `command` until it exits 0, pausing 50 ms, 100 ms, ... up to 2 s between runs
/// (the last pause shortened to end at the deadline, so the command runs once more
/// then), and gives up after `node.confirm_timeout` quoting the last failure.
pub fn poll_confirm(
    transport: &dyn Transport,
    node: &Node,
    command: &str,
) -> Result<(), StepError> {
    let deadline = crate::duration::deadline(node.confirm_timeout);
    poll_confirm_after(transport, node, command, None, deadline)
}

/// [`poll_confirm`] until `deadline`, whose first run may have happened already (in the
/// step's remote command) and ended with `first`: the polling goes on from its first pause.
fn poll_confirm_after(
    transport: &dyn Transport,
    node: &Node,
    command: &str,
    mut first: Option<ExecOutput>,
    deadline: Instant,
) -> Result<(), StepError> {
    let mut delay = CONFIRM_FIRST_DELAY;
    let mut runs = 0u32;
    // The last run that ran to its end: a final run cut short by the deadline says less.
    let mut exited: Option<String> = None;
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        runs += 1;
        let result = match first.take() {
            Some(out) => Ok(out),
            None => transport.exec(command, left),
        };
        let last = match result {
            Ok(out) if out.success() => return Ok(()),
            Ok(out) => {
                let what = describe_exit(&out);
                if out.status.is_some() {
                    exited = Some(what.clone());
                }
                what
            }
            Err(e) if e.is_transient() => e.to_string(),
            Err(e) => return Err(e.into()),
        };
        let now = Instant::now();
        if let Some(signal) = crate::interrupt::requested() {
            return Err(StepError::new(
                super::StepErrorKind::StopRun,
                format!(
                    "interrupted by {} while node {} had not confirmed yet",
                    signal.name(),
                    node.name
                ),
            ));
        }
        if now >= deadline {
            let last = match exited {
                Some(exit) if exit != last => {
                    format!("{exit} (a later run was cut off at the time limit)")
                }
                _ => last,
            };
            return Err(StepError::confirm_failed(format!(
                "node {} did not confirm within {}: confirm command `{command}` failed {runs} time(s), last: {last}",
                node.name,
                crate::duration::format(node.confirm_timeout)
            )));
        }
        std::thread::sleep(delay.min(deadline - now));
        delay = (delay * 2).min(CONFIRM_MAX_DELAY);
    }
}

/// Reload + confirm of files already in place (a resumed step whose writes had landed).
pub fn reconfirm(
    transport: &dyn Transport,
    node: &Node,
    ca: &str,
    written: &[FileHash],
) -> Result<(), StepError> {
    run_reload(transport, node, ca)?;
    confirm(transport, node, ca, written)
}

/// Write, reload, confirm: the whole apply of one step (`last`: see [`apply_file_ops`]).
/// The switch, the reload and the first attempt of the confirm command are one remote
/// command (SIGINT/SIGTERM stop the reload and the confirm, never the file change before
/// them; each keeps its time limit); then every written file is read back, and the
/// confirm command, if its first attempt failed, is polled.
pub fn apply_and_confirm(
    transport: &dyn Transport,
    node: &Node,
    ca: &str,
    ops: &[FileOp],
    backup_tag: Option<&str>,
    last: bool,
) -> Result<(), StepError> {
    let reload = node.reload.as_deref().map(|r| command_for(r, node, ca));
    let check = node.confirm.as_deref().map(|c| command_for(c, node, ca));
    let commands = NodeCommands {
        reload: reload.as_deref(),
        confirm: check.as_deref(),
    };
    let applied = apply_files(transport, node, ca, ops, backup_tag, commands, last)?;
    if let (Some(command), Some(out)) = (&reload, &applied.reload) {
        reload_result(node, command, out)?;
    }
    let written: Vec<FileHash> = ops.iter().map(FileOp::hash).collect();
    read_back(transport, node, &written)?;
    let Some(command) = check else {
        return Ok(());
    };
    let deadline = match &applied.confirm {
        Some(out) if out.success() => return Ok(()),
        // The first run was cut off at `confirm_timeout`: its time is up.
        Some(out) if out.status.is_none() => Instant::now(),
        _ => crate::duration::deadline(node.confirm_timeout),
    };
    poll_confirm_after(transport, node, &command, applied.confirm, deadline)
}

/// `exited 1: <last stderr line>`, for messages.
fn describe_exit(out: &ExecOutput) -> String {
    let status = match out.status {
        Some(code) => format!("exited {code}"),
        None => "was killed or timed out".to_string(),
    };
    let last = |s: &str| {
        s.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string())
    };
    match last(&out.stderr).or_else(|| last(&out.stdout)) {
        Some(line) => format!("{status}: {line}"),
        None => format!("{status} without output"),
    }
}

#[cfg(test)]
#[path = "step_tests.rs"]
mod tests;
