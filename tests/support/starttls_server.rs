//! The server side of the protocols spoken before TLS (`starttls`), just enough of each for
//! a test server of `hostile_tls` to hand the socket to its TLS server afterwards: MySQL's
//! handshake packet and SSL request, SMTP's greeting, EHLO and STARTTLS, IMAP's STARTTLS,
//! LDAP's StartTLS extended operation; and the hostile ones, a preamble dripped one byte
//! at a time and bytes sent as they are (a huge length field, a line that never ends).
//!
//! Each checks what certroll sends: a wrong request ends the connection before TLS, so a
//! test whose handshake completes proves that certroll spoke the protocol.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// At most this many bytes of a dripped preamble per connection.
const DRIP_BYTES: usize = 60;

/// What a server says before its TLS handshake.
#[derive(Debug, Clone)]
pub enum Preamble {
    /// TLS from the first byte.
    None,
    /// MySQL: the handshake packet (with CLIENT_SSL when `ssl`), then the SSL request.
    Mysql { ssl: bool },
    /// SMTP: greeting, EHLO (STARTTLS listed when `starttls`), STARTTLS, 220.
    Smtp { starttls: bool },
    /// IMAP: `* OK` greeting, `a STARTTLS`, `a OK`.
    Imap,
    /// LDAP: the StartTLS extended request, a success response.
    Ldap,
    /// Sends these bytes one at a time, one every `Duration` (at most 60), then closes.
    Drip(Vec<u8>, Duration),
    /// Sends these bytes, then waits for certroll to close the connection.
    Raw(Vec<u8>),
}

const CLIENT_SSL: u32 = 0x800;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const LDAP_START_TLS: &[u8] = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";
/// An ExtendedResponse to message 1: success, no matched DN, no message.
const LDAP_SUCCESS: &[u8] = b"\x30\x0c\x02\x01\x01\x78\x07\x0a\x01\x00\x04\x00\x04\x00";

/// Speaks `preamble` on `sock`; true when the TLS handshake should follow.
pub fn serve(sock: &mut TcpStream, preamble: &Preamble, stop: &AtomicBool) -> bool {
    match preamble {
        Preamble::None => true,
        Preamble::Mysql { ssl } => mysql(sock, *ssl).is_some(),
        Preamble::Smtp { starttls } => smtp(sock, *starttls).is_some(),
        Preamble::Imap => imap(sock).is_some(),
        Preamble::Ldap => ldap(sock).is_some(),
        Preamble::Drip(bytes, every) => {
            for &byte in bytes.iter().take(DRIP_BYTES) {
                if stop.load(Ordering::SeqCst) || sock.write_all(&[byte]).is_err() {
                    break;
                }
                thread::sleep(*every);
            }
            false
        }
        Preamble::Raw(bytes) => {
            let _ = sock.write_all(bytes);
            // Until certroll closes (or the socket's read timeout).
            let mut sink = [0u8; 512];
            while matches!(sock.read(&mut sink), Ok(n) if n > 0) {}
            false
        }
    }
}

fn mysql(sock: &mut TcpStream, ssl: bool) -> Option<()> {
    let capabilities: u32 = 0xf7fe | 0x8_0000 | if ssl { CLIENT_SSL } else { 0 };
    let mut p = vec![10u8];
    p.extend_from_slice(b"5.5.5-10.11.0-MariaDB-test\0");
    p.extend_from_slice(&42u32.to_le_bytes());
    p.extend_from_slice(b"01234567\0");
    p.extend_from_slice(&(capabilities as u16).to_le_bytes());
    p.push(45);
    p.extend_from_slice(&[2, 0]);
    p.extend_from_slice(&((capabilities >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"89abcdefghij\0mysql_native_password\0");
    let mut packet = vec![p.len() as u8, 0, 0, 0];
    packet.extend(p);
    sock.write_all(&packet).ok()?;
    let mut request = [0u8; 36];
    sock.read_exact(&mut request).ok()?;
    let caps = u32::from_le_bytes([request[4], request[5], request[6], request[7]]);
    let wanted = CLIENT_SSL | CLIENT_PROTOCOL_41;
    (request[..4] == [32, 0, 0, 1] && caps & wanted == wanted && request[13..] == [0; 23])
        .then_some(())
}

fn smtp(sock: &mut TcpStream, starttls: bool) -> Option<()> {
    sock.write_all(b"220-mx.test ESMTP test\r\n220 mx.test ready\r\n")
        .ok()?;
    line(sock)?.starts_with("EHLO ").then_some(())?;
    let keywords = if starttls {
        "250-PIPELINING\r\n250-STARTTLS\r\n"
    } else {
        "250-PIPELINING\r\n"
    };
    let reply = format!("250-mx.test\r\n{keywords}250 8BITMIME\r\n");
    sock.write_all(reply.as_bytes()).ok()?;
    (line(sock)? == "STARTTLS").then_some(())?;
    sock.write_all(b"220 2.0.0 Ready to start TLS\r\n").ok()
}

fn imap(sock: &mut TcpStream) -> Option<()> {
    sock.write_all(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")
        .ok()?;
    let tag = line(sock)?.strip_suffix(" STARTTLS")?.to_string();
    sock.write_all(format!("{tag} OK Begin TLS now\r\n").as_bytes())
        .ok()
}

fn ldap(sock: &mut TcpStream) -> Option<()> {
    let mut request = [0u8; LDAP_START_TLS.len()];
    sock.read_exact(&mut request).ok()?;
    (request == LDAP_START_TLS).then_some(())?;
    sock.write_all(LDAP_SUCCESS).ok()
}

/// One CRLF-ended line (at most 1000 bytes), without its CRLF.
fn line(sock: &mut TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while out.len() < 1000 {
        sock.read_exact(&mut byte).ok()?;
        if byte[0] == b'\n' {
            let text = String::from_utf8(out).ok()?;
            return text.strip_suffix('\r').map(str::to_string);
        }
        out.push(byte[0]);
    }
    None
}
