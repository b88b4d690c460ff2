//! Text that came from a node or a certificate, made safe to print on a terminal.
//!
//! A node's command output (a reload's or confirm's stderr, a probe's first line), a
//! confirm's message, the subject or SAN of a certificate found on a node, a file name read
//! from a node's directory, an error a node's tools wrote: all of it is chosen by whoever
//! controls the node or issued the certificate. Printed raw, an ESC sequence or a carriage
//! return in it can erase the operator's line and draw another one ("verify: OK") over it.
//! So every text rendering of such a string goes through [`line`] (one line: every control
//! character escaped, newline included) or [`block`] (several lines: the newline kept).
//!
//! Escaped are the C0 controls (U+0000–U+001F, ESC among them), DEL, the C1 controls
//! (U+0080–U+009F, which some terminals obey like ESC sequences) and the Unicode
//! direction overrides and isolates, which reorder what is shown. Each becomes a visible
//! escape: `\r`, `\n`, `\t`, `\x1b` for the ASCII ones, `\u{9b}` for the others. Text
//! without any of them is returned as it is, without a copy. JSON output never goes
//! through here: serde escapes control characters itself and a script gets the exact
//! string.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` for one line of output: every control character escaped, newline included.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// `s` for a block of lines (an error and its causes): control characters escaped, the
/// newline kept (a carriage return is escaped, so no line can overwrite another).
pub fn block(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// Whether `c` is shown as an escape (a newline too unless `keep_newline`).
fn unsafe_char(c: char, keep_newline: bool) -> bool {
    if c == '\n' {
        return !keep_newline;
    }
    c.is_control() || is_bidi_control(c)
}

/// The Unicode characters that change the direction text is shown in (Trojan Source).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

fn escape(s: &str, keep_newline: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| unsafe_char(c, keep_newline)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !unsafe_char(c, keep_newline) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_rewriting_sequence_is_shown_not_obeyed() {
        let hostile = "reload failed\x1b[2K\rverify: OK";
        assert_eq!(line(hostile), "reload failed\\x1b[2K\\rverify: OK");
        assert_eq!(block(hostile), "reload failed\\x1b[2K\\rverify: OK");
    }

    #[test]
    fn newlines_are_kept_only_in_blocks() {
        assert_eq!(line("a\nb"), "a\\nb");
        assert_eq!(block("a\nb"), "a\nb");
        assert_eq!(block("a\r\nb"), "a\\r\nb");
    }

    #[test]
    fn every_kind_of_control_character_is_escaped() {
        assert_eq!(line("\0\x07\x08\t\x7f"), "\\x00\\x07\\x08\\t\\x7f");
        // C1: CSI (U+009B) and NEL (U+0085) as characters.
        assert_eq!(line("a\u{9b}2Jb\u{85}"), "a\\u{9b}2Jb\\u{85}");
        // Direction overrides and isolates.
        assert_eq!(line("x\u{202e}cod.exe"), "x\\u{202e}cod.exe");
        assert_eq!(line("\u{2066}\u{2069}"), "\\u{2066}\\u{2069}");
        for s in [line("\u{1b}"), block("\u{1b}")] {
            assert!(!s.contains('\u{1b}'), "{s}");
        }
    }

    #[test]
    fn ordinary_text_is_returned_untouched() {
        for s in [
            "CN=Internal CA G1, O=Example",
            "Zürich → Genève ⇄ 東京 ✓",
            "/etc/tls/key.pem does not exist",
            "",
        ] {
            assert!(matches!(line(s), Cow::Borrowed(b) if b == s), "{s}");
            assert!(matches!(block(s), Cow::Borrowed(b) if b == s), "{s}");
        }
        // A backslash is left as it is: the escapes are for reading, not for parsing.
        assert_eq!(line("C:\\x1b"), "C:\\x1b");
    }
}
