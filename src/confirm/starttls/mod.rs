//! The protocol a server speaks before its TLS handshake (the node's `starttls` key):
//! PostgreSQL's SSLRequest, MySQL's SSL request packet, SMTP's and IMAP's STARTTLS
//! command, LDAP's StartTLS extended operation.
//!
//! Everything read here comes from the node and may be hostile: every read goes through
//! the handshake's one deadline ([`super::deadline::Bounded`], so a server that drips its
//! greeting cannot hold the look longer), every length the server announces and every line
//! it sends is capped before anything is allocated for it, and its words reach a message
//! only quoted and escaped ([`words`]). Nothing is read past the server's last preamble
//! byte: what follows belongs to the TLS handshake.

use std::io::{Read, Write};

use super::deadline::{io_error, ObserveError};
use crate::inventory::Starttls;

mod ldap;
mod lines;
mod mysql;

/// PostgreSQL's SSLRequest: length 8, code 80877103.
const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// At most this many characters of a server's words go into a message.
const WORDS: usize = 200;

/// Runs the preamble of `starttls` on `stream`; when it returns `Ok`, the next bytes are
/// the TLS handshake's.
pub fn run(stream: &mut (impl Read + Write), starttls: Starttls) -> Result<(), ObserveError> {
    match starttls {
        Starttls::None => Ok(()),
        Starttls::Postgres => postgres(stream),
        Starttls::Mysql => mysql::ssl_request(stream),
        Starttls::Smtp => lines::smtp(stream),
        Starttls::Imap => lines::imap(stream),
        Starttls::Ldap => ldap::start_tls(stream),
    }
}

fn postgres(stream: &mut (impl Read + Write)) -> Result<(), ObserveError> {
    send(stream, &PG_SSL_REQUEST, "send the PostgreSQL SSLRequest")?;
    let mut answer = [0u8; 1];
    read_exact(
        stream,
        &mut answer,
        "read the answer to the PostgreSQL SSLRequest",
    )?;
    match answer[0] {
        b'S' => Ok(()),
        b'N' => Err(ObserveError::Protocol(
            "the PostgreSQL server refused SSL (answered 'N' to SSLRequest): is ssl = on?".into(),
        )),
        other => Err(ObserveError::Protocol(format!(
            "the server answered {:?} to a PostgreSQL SSLRequest: is it PostgreSQL?",
            char::from(other)
        ))),
    }
}

/// Writes all of `bytes` and flushes; `action` names it in the error ("send …").
fn send(stream: &mut impl Write, bytes: &[u8], action: &str) -> Result<(), ObserveError> {
    stream
        .write_all(bytes)
        .and_then(|()| stream.flush())
        .map_err(|e| io_error(action, &e))
}

/// Fills `buf`; `action` names it in the error ("read …").
fn read_exact(stream: &mut impl Read, buf: &mut [u8], action: &str) -> Result<(), ObserveError> {
    stream.read_exact(buf).map_err(|e| io_error(action, &e))
}

/// A server's words for a message: at most [`WORDS`] characters, quoted, every control
/// character escaped (they come from the node).
fn words(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut cut: String = text.chars().take(WORDS).collect();
    if text.chars().nth(WORDS).is_some() {
        cut.push('…');
    }
    format!("\"{}\"", crate::output::escape::line(&cut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A scripted server: what it sends, and what it was sent.
    pub(super) struct Script {
        input: Cursor<Vec<u8>>,
        pub(super) sent: Vec<u8>,
    }

    impl Script {
        pub(super) fn new(server_says: &[u8]) -> Script {
            Script {
                input: Cursor::new(server_says.to_vec()),
                sent: Vec::new(),
            }
        }

        /// Bytes the server sent that the preamble did not read.
        pub(super) fn unread(&self) -> usize {
            self.input.get_ref().len() - self.input.position() as usize
        }
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.sent.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn postgres_sends_the_ssl_request_and_reads_one_byte() {
        let mut s = Script::new(b"S\x16\x03");
        run(&mut s, Starttls::Postgres).unwrap();
        assert_eq!(s.sent, PG_SSL_REQUEST);
        assert_eq!(s.unread(), 2, "the TLS bytes are left to the handshake");
        let e = run(&mut Script::new(b"N"), Starttls::Postgres).unwrap_err();
        assert!(e.to_string().contains("refused SSL"), "{e}");
    }

    #[test]
    fn none_neither_reads_nor_writes() {
        let mut s = Script::new(b"\x16");
        run(&mut s, Starttls::None).unwrap();
        assert!(s.sent.is_empty());
        assert_eq!(s.unread(), 1);
    }

    #[test]
    fn words_of_a_server_are_quoted_escaped_and_cut() {
        assert_eq!(words(b"554 go away\x1b[2K\r"), r#""554 go away\x1b[2K\r""#);
        let long = words(&[b'a'; 1000]);
        assert!(long.len() < 210 && long.ends_with("…\""), "{long}");
        assert_eq!(words(b"\xff"), "\"\u{fffd}\"");
    }
}
