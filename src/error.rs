//! How certroll shows an error: the one convention every error type follows.
//!
//! An error's `Display` says what failed at its own level — the action, the node, the file
//! or directory — and never repeats its cause; the cause is its [`Error::source`]. At the
//! edge, `certroll` prints the whole chain once, one cause per line:
//!
//! ```text
//! error: failed to read the CA store .certroll/ca/internal
//!   caused by: failed to read generation pointer .certroll/ca/internal/current
//!   caused by: Is a directory (os error 21)
//! ```
//!
//! Where an error must become one line of text (a step's failure in the journal and the
//! events, a command's refusal), [`chain`] joins the levels with `": "`.

use std::error::Error;

/// The error and its causes, outermost first.
pub fn causes<'a>(
    err: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

/// The error and its causes on one line: `outer: inner: root`.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    causes(err)
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("failed to write journal /s/journal.jsonl")]
    struct Outer {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_level_is_shown_once() {
        let e = Outer {
            source: std::io::Error::other("No space left on device"),
        };
        assert_eq!(
            chain(&e),
            "failed to write journal /s/journal.jsonl: No space left on device"
        );
        assert_eq!(causes(&e).count(), 2);
    }
}
