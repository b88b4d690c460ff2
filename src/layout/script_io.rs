//! The node-side script's input and output: the one command that carries its parts and
//! its arguments to the node (without the parts' comments, so that it fits in one SSH
//! packet), and what it prints back: the markers of the `apply` script (every file in
//! place, the OS trust update's, the reload's and the first confirm attempt's exit
//! status), each carrying the step's random nonce so that nothing the node's commands
//! print (they never see it) can pass for one, and the marker before a store password.

use std::sync::OnceLock;

use super::os_trust_script::OS_UPDATE_EXITED;
use super::{inspect, keys_script, os_trust_script, safety_script, script};
use crate::shell::shell_quote;

/// `set -- <quoted args...>` then the script: the shell that runs the command runs the
/// script itself (no second shell to start), its parts shipped without their comments
/// ([`shipped`]). `inspect` gets its own piece instead of the OS trust store's:
/// the whole command must fit in one SSH packet (libssh2's is 35,000 bytes, and `become`
/// quotes the script once more).
pub(super) fn command(args: &[String]) -> String {
    let mut c = String::from("set --");
    for a in args {
        c.push(' ');
        c.push_str(&shell_quote(a));
    }
    static WITH_OS_TRUST: OnceLock<String> = OnceLock::new();
    static WITH_INSPECT: OnceLock<String> = OnceLock::new();
    let (cell, part) = if args.first().is_some_and(|a| a == "inspect") {
        (&WITH_INSPECT, inspect::INSPECT)
    } else {
        (&WITH_OS_TRUST, os_trust_script::OS_TRUST)
    };
    c.push_str(cell.get_or_init(|| {
        shipped(&[
            safety_script::SAFETY,
            keys_script::KEYS,
            part,
            script::SCRIPT,
        ])
    }));
    c
}

/// The script as a command carries it: `parts` one after the other without their comment
/// lines (a quarter of the text), so that the largest command, quoted twice under
/// `become = "sudo"`, stays well inside the one SSH packet libssh2 sends it in (35,000
/// bytes). No line of the script's here-documents or quoted strings starts with `#`.
pub fn shipped(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for line in parts.iter().flat_map(|p| p.split_inclusive('\n')) {
        if !line.trim_start().starts_with('#') {
            out.push_str(line);
        }
    }
    out
}

/// Marker printed once every file is in place (before the reload runs), followed by the
/// step's nonce ([`files_in_place`]).
pub const FILES_IN_PLACE: &str = "certroll: files in place";
/// Marker before the store password's text (`password`).
pub const PASSWORD_FOLLOWS: &str = "certroll: password follows";
/// Marker before the step's nonce and the reload command's exit status (on stdout and on
/// stderr, on a line of its own: [`reload_exited`]).
pub const RELOAD_EXITED: &str = "certroll: reload exited ";
/// Marker before the step's nonce and the first confirm attempt's exit status (on stdout
/// and on stderr, on a line of its own).
pub const CONFIRM_EXITED: &str = "certroll: confirm exited ";

/// A fresh nonce for one `apply` script: the markers it prints after the switch carry it,
/// so that no output of the node's commands (which never see it) can pass for one.
pub fn nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The line the script prints once every file is in place, with `nonce`.
pub fn files_in_place(nonce: &str) -> String {
    format!("{FILES_IN_PLACE} {nonce}")
}

/// The start of the reload's status line with `nonce` (the status follows).
pub fn reload_exited(nonce: &str) -> String {
    format!("{RELOAD_EXITED}{nonce} ")
}

/// What the apply script reported.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reported {
    /// Every file was in place (the switch happened).
    pub in_place: bool,
    /// The OS trust store's update command, when it ran to its end (its marker found).
    pub os_update: Option<crate::transport::ExecOutput>,
    /// The reload's exit status, when it ran to its end.
    pub reload_status: Option<i32>,
    /// The reload's own output (the script's markers removed).
    pub reload_stdout: String,
    pub reload_stderr: String,
    /// The first confirm attempt's exit status, when it ran to its end.
    pub confirm_status: Option<i32>,
    pub confirm_stdout: String,
    pub confirm_stderr: String,
}

/// One stream split at the status lines: the reload's part (when `reload` ran) and its
/// status, then the confirm's part and its status.
struct Split {
    reload: (Option<i32>, String),
    confirm: (Option<i32>, String),
}

/// The last status line `\n<prefix><status>` in `text` (the script prints a newline before
/// it: the line is its own whatever the command printed last): the text before it, the
/// status, and the text after its line.
fn cut<'t>(text: &'t str, prefix: &str) -> Option<(&'t str, i32, &'t str)> {
    let needle = format!("\n{prefix}");
    let mut end = text.len();
    while let Some(at) = text[..end].rfind(&needle) {
        let rest = &text[at + needle.len()..];
        let (code, after) = rest.split_once('\n').unwrap_or((rest, ""));
        if let Ok(code) = code.parse() {
            return Some((&text[..at], code, after));
        }
        end = at;
    }
    None
}

fn lines(text: &str) -> String {
    text.lines().collect::<Vec<_>>().join("\n")
}

fn split(text: &str, reload: bool, nonce: &str) -> Split {
    let (reload, rest) = if !reload {
        ((None, String::new()), text)
    } else if let Some((before, code, after)) = cut(text, &reload_exited(nonce)) {
        ((Some(code), lines(before)), after)
    } else {
        // The reload did not run to its end: all that followed the switch is its own.
        ((None, lines(text)), "")
    };
    let confirm = match cut(rest, &format!("{CONFIRM_EXITED}{nonce} ")) {
        Some((before, code, _)) => (Some(code), lines(before)),
        None => (None, lines(rest)),
    };
    Split { reload, confirm }
}

/// The OS trust update's part of a stream: its status and what it printed before its
/// status line (the one with the step's nonce, after the newline the script prints
/// first), and the text after that line; `None` and all of `text` when it did not run.
fn take_os_update<'t>(text: &'t str, nonce: &str) -> (Option<(i32, String)>, &'t str) {
    let prefix = format!("{}{nonce} ", OS_UPDATE_EXITED);
    match cut(text, &prefix) {
        Some((before, code, after)) => (Some((code, lines(before))), after),
        None => (None, text),
    }
}

/// Reads the markers with `nonce` out of the script's two streams; `reload` tells whether a
/// reload command was given. Only a marker with the step's nonce counts, on a line of its
/// own, the last one of its kind: what the node's commands print (they never see the
/// nonce) is theirs, whatever it says.
pub fn parse(stdout: &str, stderr: &str, reload: bool, nonce: &str) -> Reported {
    let marker = files_in_place(nonce);
    let mut at = None;
    let mut offset = 0;
    for line in stdout.split_inclusive('\n') {
        offset += line.len();
        if line.trim_end_matches('\n') == marker {
            at = Some(offset);
        }
    }
    let Some(at) = at else {
        return Reported::default();
    };
    let (os_out, rest_out) = take_os_update(&stdout[at..], nonce);
    let (os_err, rest_err) = take_os_update(stderr, nonce);
    let os_update = os_out.map(|(status, stdout)| crate::transport::ExecOutput {
        status: Some(status),
        stdout,
        stderr: os_err.map(|(_, e)| e).unwrap_or_default(),
    });
    // Without the update's status line on stdout, stderr is the reload's and the
    // confirm's alone.
    let rest_err = if os_update.is_some() {
        rest_err
    } else {
        stderr
    };
    let (out, err) = (
        split(rest_out, reload, nonce),
        split(rest_err, reload, nonce),
    );
    Reported {
        in_place: true,
        os_update,
        reload_status: out.reload.0,
        reload_stdout: out.reload.1,
        reload_stderr: err.reload.1,
        confirm_status: out.confirm.0,
        confirm_stdout: out.confirm.1,
        confirm_stderr: err.confirm.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "0123456789abcdef";

    /// What the script prints after `text` for `what` (reload, confirm) exiting `code`.
    fn status(what: &str, code: i32) -> String {
        format!("\ncertroll: {what} exited {N} {code}\n")
    }

    #[test]
    fn markers_are_found_and_removed() {
        let out = format!(
            "certroll: files in place {N}\nreloading\n{}",
            status("reload", 3)
        );
        let r = parse(&out, "", true, N);
        assert!(r.in_place);
        assert_eq!(r.reload_status, Some(3));
        assert_eq!(r.reload_stdout, "reloading");
        assert_eq!(r.confirm_status, None);
        let none = parse("", "", true, N);
        assert!(!none.in_place);
        assert_eq!(none.reload_status, None);
    }

    #[test]
    fn reload_and_confirm_output_are_told_apart_on_both_streams() {
        let out = format!(
            "migrated\ncertroll: files in place {N}\nreloading\npartial{}checking\n{}",
            status("reload", 0),
            status("confirm", 1)
        );
        let err = format!(
            "reload warn\n{}old cert\n{}",
            status("reload", 0),
            status("confirm", 1)
        );
        let r = parse(&out, &err, true, N);
        assert!(r.in_place);
        assert_eq!(r.reload_status, Some(0));
        assert_eq!(r.reload_stdout, "reloading\npartial");
        assert_eq!(r.reload_stderr, "reload warn");
        assert_eq!(r.confirm_status, Some(1));
        assert_eq!(r.confirm_stdout, "checking");
        assert_eq!(r.confirm_stderr, "old cert");
        // Without a reload, what follows the switch is the confirm's; a confirm cut off
        // by its deadline reports no status but keeps its output.
        let r = parse(
            &format!("certroll: files in place {N}\nchecking\n"),
            "slow\n",
            false,
            N,
        );
        assert_eq!((r.reload_status, r.confirm_status), (None, None));
        assert_eq!(
            (r.confirm_stdout.as_str(), r.confirm_stderr.as_str()),
            ("checking", "slow")
        );
        // A reload cannot pass for the confirm by printing its marker.
        let out = format!("certroll: files in place {N}{}", status("confirm", 0));
        let r = parse(&out, "", true, N);
        assert_eq!((r.reload_status, r.confirm_status), (None, None));
    }

    #[test]
    fn the_os_trust_update_is_told_apart_from_the_reload() {
        let os = |code| status("os trust update", code);
        let out = format!(
            "certroll: files in place {N}\nAdding 1 new{}reloading{}",
            os(0),
            status("reload", 0)
        );
        let err = format!("warn{}reload warn{}", os(0), status("reload", 0));
        let r = parse(&out, &err, true, N);
        let update = r.os_update.clone().expect("the update ran");
        assert_eq!(update.status, Some(0));
        assert_eq!(
            (update.stdout.as_str(), update.stderr.as_str()),
            ("Adding 1 new", "warn")
        );
        assert_eq!(r.reload_status, Some(0));
        assert_eq!(
            (r.reload_stdout.as_str(), r.reload_stderr.as_str()),
            ("reloading", "reload warn")
        );
        // No update (the anchors did not change): everything is the reload's.
        let out = format!("certroll: files in place {N}\nx{}", status("reload", 0));
        let r = parse(&out, "", true, N);
        assert_eq!((r.os_update, r.reload_stdout.as_str()), (None, "x"));
        // A failed update: its status, no reload.
        let out = format!("certroll: files in place {N}\n{}", os(2));
        let r = parse(&out, &format!("no{}", os(2)), true, N);
        let update = r.os_update.expect("the update ran");
        assert_eq!((update.status, update.stderr.as_str()), (Some(2), "no"));
        assert_eq!(r.reload_status, None);
        // An update that prints a forged status line (no nonce) then fails is a failure.
        let out = format!(
            "certroll: files in place {N}\ncertroll: os trust update exited 0{}",
            os(1)
        );
        let r = parse(&out, "", true, N);
        assert_eq!(r.os_update.expect("the update ran").status, Some(1));
    }

    #[test]
    fn a_reload_that_prints_a_forged_reload_exited_0_then_exits_1_is_a_failure() {
        // The reload prints every marker as the script once did, and with a guessed nonce,
        // on both streams, then exits 1: only the script's own status line counts.
        let forged = "certroll: files in place\ncertroll: reload exited 0\n\
                      certroll: confirm exited 0\n\ncertroll: reload exited 0\n\
                      certroll: files in place ffffffffffffffff\n\
                      \ncertroll: reload exited ffffffffffffffff 0\n\
                      \ncertroll: confirm exited ffffffffffffffff 0\n";
        let out = format!(
            "certroll: files in place {N}\n{forged}{}",
            status("reload", 1)
        );
        let err = format!("{forged}{}", status("reload", 1));
        let r = parse(&out, &err, true, N);
        assert!(r.in_place);
        assert_eq!(r.reload_status, Some(1), "{r:?}");
        assert_eq!(r.confirm_status, None, "{r:?}");
        assert_eq!(
            r.reload_stdout,
            lines(forged),
            "the forged lines are the reload's"
        );
        assert_eq!(r.reload_stderr, lines(forged));
        // Nor does a forged `files in place` stand for the switch.
        assert!(!parse(forged, "", true, N).in_place);
        // A status line in the middle of a line (not the script's) does not count either.
        let out = format!(
            "certroll: files in place {N}\nx{}",
            &status("reload", 0)[1..]
        );
        assert_eq!(parse(&out, "", true, N).reload_status, None);
    }
}
