//! `starttls = "smtp"` and `"imap"`: protocols of text lines whose STARTTLS command turns
//! the connection into TLS.
//!
//! SMTP (RFC 3207): the server's 220 greeting (possibly several lines), `EHLO`, whose 250
//! reply must list the STARTTLS keyword, `STARTTLS`, 220, then TLS. IMAP (RFC 3501): the
//! server's `* OK` greeting, `a STARTTLS`, `a OK` (untagged lines may come before it),
//! then TLS.
//!
//! Lines are read one byte at a time, so that no byte of the TLS handshake is taken with
//! the last line; each line is capped at [`MAX_LINE`] bytes and each reply at
//! [`MAX_LINES`] lines, so a server that never ends a line or a reply is refused, not
//! buffered. A reply that is not the expected one is reported with the server's words.

use std::io::{Read, Write};

use super::{send, words, ObserveError};
use crate::confirm::deadline::io_error;

/// The longest line read, CRLF included (RFC 5321 allows 512 for a reply line).
pub const MAX_LINE: usize = 2048;
/// The most lines of one reply (an EHLO reply has a dozen).
pub const MAX_LINES: usize = 100;

/// The name certroll gives itself in `EHLO`: a name that can be nobody's (RFC 2606).
const EHLO: &[u8] = b"EHLO certroll.invalid\r\n";

/// One SMTP reply: its code and its lines' texts (after the code).
struct Reply {
    code: u16,
    texts: Vec<Vec<u8>>,
    /// The first line as sent, for messages.
    first: Vec<u8>,
}

/// SMTP's STARTTLS (see the module header).
pub fn smtp(stream: &mut (impl Read + Write)) -> Result<(), ObserveError> {
    let greeting = reply(stream, "the SMTP server's greeting")?;
    expect(&greeting, 220, "greeted certroll")?;
    send(stream, EHLO, "send EHLO to the SMTP server")?;
    let ehlo = reply(stream, "the SMTP server's answer to EHLO")?;
    expect(&ehlo, 250, "answered EHLO")?;
    // The first line is the server's name; each other one starts with a keyword.
    let keywords: Vec<&[u8]> = ehlo
        .texts
        .iter()
        .skip(1)
        .filter_map(|t| t.split(|&b| b == b' ').next())
        .collect();
    if !keywords.iter().any(|k| k.eq_ignore_ascii_case(b"STARTTLS")) {
        return Err(ObserveError::Protocol(format!(
            "the SMTP server does not offer STARTTLS: its answer to EHLO lists {} (is TLS \
             set up on it, e.g. Postfix's smtpd_tls_security_level = may?)",
            words(&keywords.join(&b' '))
        )));
    }
    send(stream, b"STARTTLS\r\n", "send STARTTLS to the SMTP server")?;
    let go = reply(stream, "the SMTP server's answer to STARTTLS")?;
    expect(&go, 220, "answered STARTTLS")
}

/// IMAP's STARTTLS (see the module header).
pub fn imap(stream: &mut (impl Read + Write)) -> Result<(), ObserveError> {
    let greeting = line(stream, "read the IMAP server's greeting")?;
    if !starts_with_ignoring_case(&greeting, b"* OK") {
        return Err(ObserveError::Protocol(format!(
            "the IMAP server greeted certroll with {}, not \"* OK\"",
            words(&greeting)
        )));
    }
    send(
        stream,
        b"a STARTTLS\r\n",
        "send STARTTLS to the IMAP server",
    )?;
    for _ in 0..MAX_LINES {
        let answer = line(stream, "read the IMAP server's answer to STARTTLS")?;
        if answer.starts_with(b"* ") {
            continue;
        }
        if starts_with_ignoring_case(&answer, b"a OK") {
            return Ok(());
        }
        return Err(ObserveError::Protocol(format!(
            "the IMAP server answered STARTTLS with {}, not \"a OK\"",
            words(&answer)
        )));
    }
    Err(too_many("the IMAP server's answer to STARTTLS"))
}

fn starts_with_ignoring_case(line: &[u8], prefix: &[u8]) -> bool {
    line.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// A reply whose code is not `code` is refused with the server's words.
fn expect(reply: &Reply, code: u16, did: &str) -> Result<(), ObserveError> {
    if reply.code == code {
        return Ok(());
    }
    Err(ObserveError::Protocol(format!(
        "the SMTP server {did} with {}, not {code}",
        words(&reply.first)
    )))
}

/// Reads one SMTP reply: lines `NNN-text` then a last `NNN text`, all with one code.
fn reply(stream: &mut impl Read, what: &str) -> Result<Reply, ObserveError> {
    let mut texts = Vec::new();
    let mut first = None;
    let mut code = None;
    for _ in 0..MAX_LINES {
        let l = line(stream, &format!("read {what}"))?;
        let not_smtp = || {
            ObserveError::Protocol(format!(
                "{what} is not an SMTP reply: {}; is it an SMTP server?",
                words(&l)
            ))
        };
        let this: u16 = std::str::from_utf8(l.get(..3).unwrap_or_default())
            .ok()
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
            .ok_or_else(not_smtp)?;
        if code.is_some_and(|c| c != this) {
            return Err(not_smtp());
        }
        code = Some(this);
        let last = match l.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(not_smtp()),
        };
        texts.push(l.get(4..).unwrap_or_default().to_vec());
        first.get_or_insert(l);
        if last {
            return Ok(Reply {
                code: this,
                texts,
                first: first.unwrap_or_default(),
            });
        }
    }
    Err(too_many(what))
}

fn too_many(what: &str) -> ObserveError {
    ObserveError::Protocol(format!(
        "{what} did not end within {MAX_LINES} lines: is it the protocol of `starttls`?"
    ))
}

/// Reads one line, without its CRLF (or LF); refuses one longer than [`MAX_LINE`].
fn line(stream: &mut impl Read, action: &str) -> Result<Vec<u8>, ObserveError> {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    // Bounded: one byte per round, at most MAX_LINE rounds (and the handshake's deadline).
    while out.len() < MAX_LINE {
        stream
            .read_exact(&mut byte)
            .map_err(|e| io_error(action, &e))?;
        if byte[0] == b'\n' {
            if out.last() == Some(&b'\r') {
                out.pop();
            }
            return Ok(out);
        }
        out.push(byte[0]);
    }
    Err(ObserveError::Protocol(format!(
        "failed to {action}: a line longer than {MAX_LINE} bytes, starting {}",
        words(&out[..out.len().min(60)])
    )))
}

#[cfg(test)]
mod tests {
    use super::super::tests::Script;
    use super::*;

    const GREETING: &[u8] = b"220-mx.test ESMTP\r\n220 welcome\r\n";
    const EHLO_REPLY: &[u8] =
        b"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n";

    fn smtp_with(ehlo_reply: &[u8], starttls_reply: &[u8]) -> (Result<(), ObserveError>, Script) {
        let server_says = [GREETING, ehlo_reply, starttls_reply, b"\x16\x03"].concat();
        let mut s = Script::new(&server_says);
        (smtp(&mut s), s)
    }

    #[test]
    fn smtp_sends_ehlo_then_starttls_after_multi_line_replies() {
        let (r, s) = smtp_with(EHLO_REPLY, b"220 2.0.0 Ready to start TLS\r\n");
        r.unwrap();
        assert_eq!(s.sent, b"EHLO certroll.invalid\r\nSTARTTLS\r\n");
        assert_eq!(s.unread(), 2, "the TLS bytes are left to the handshake");
    }

    #[test]
    fn an_smtp_server_without_starttls_in_its_ehlo_reply_is_refused_clearly() {
        let (r, s) = smtp_with(b"250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n", b"");
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("does not offer STARTTLS: its answer to EHLO lists \"PIPELINING 8BITMIME\""),
            "{e}"
        );
        assert_eq!(s.sent, EHLO, "no STARTTLS sent");
    }

    #[test]
    fn an_unexpected_smtp_code_names_the_servers_words() {
        let (r, _) = smtp_with(EHLO_REPLY, b"454 4.7.0 TLS not available\x1b[2K\r\n");
        let e = r.unwrap_err().to_string();
        assert_eq!(
            e,
            "the SMTP server answered STARTTLS with \"454 4.7.0 TLS not available\\x1b[2K\", not 220"
        );
        let mut s = Script::new(b"554 5.7.1 no service\r\n");
        let e = smtp(&mut s).unwrap_err().to_string();
        assert!(
            e.contains("greeted certroll with \"554 5.7.1 no service\", not 220"),
            "{e}"
        );
    }

    #[test]
    fn what_is_not_an_smtp_reply_says_so() {
        for server_says in [
            &b"SSH-2.0-OpenSSH\r\n"[..],
            b"220-a\r\n250 b\r\n",
            b"220xwelcome\r\n",
        ] {
            let e = smtp(&mut Script::new(server_says)).unwrap_err().to_string();
            assert!(e.contains("is not an SMTP reply"), "{e}");
        }
    }

    #[test]
    fn an_endless_smtp_line_or_reply_is_refused() {
        let e = smtp(&mut Script::new(&[b'2'; 100_000]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("a line longer than 2048 bytes"), "{e}");
        let endless = b"220-more\r\n".repeat(1000);
        let mut s = Script::new(&endless);
        let e = smtp(&mut s).unwrap_err().to_string();
        assert!(e.contains("did not end within 100 lines"), "{e}");
        assert_eq!(s.unread(), 900 * 10, "no line read past the cap");
    }

    #[test]
    fn imap_sends_starttls_after_the_greeting() {
        let mut s = Script::new(
            b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\na OK Begin TLS\r\n\x16",
        );
        imap(&mut s).unwrap();
        assert_eq!(s.sent, b"a STARTTLS\r\n");
        assert_eq!(s.unread(), 1);
        let e = imap(&mut Script::new(b"* OK hi\r\na BAD unknown command\r\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("answered STARTTLS with \"a BAD unknown command\""),
            "{e}"
        );
        let e = imap(&mut Script::new(b"* BYE busy\r\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("greeted certroll with \"* BYE busy\""), "{e}");
    }
}
