//! `starttls = "mysql"`: MySQL and MariaDB start TLS inside the connection's first
//! exchange.
//!
//! The server speaks first, with its handshake packet (protocol 10): its version, and its
//! capability flags, among which CLIENT_SSL says whether it offers TLS at all. The client
//! answers with a 32-byte SSL request packet (sequence id 1: its capability flags with
//! CLIENT_SSL set, its largest packet, its character set, 23 zero bytes) instead of its
//! login, and the TLS handshake follows at once; the login would come inside TLS, and
//! certroll never sends one (the server logs an aborted connection, as for any port
//! check). A server may instead send an error packet (too many connections, a blocked
//! host): its words are quoted in the error.
//!
//! The packet header's 3-byte length is capped at [`MAX_GREETING`] before anything is
//! read or allocated for it.

use std::io::{Read, Write};

use super::{read_exact, send, words, ObserveError};

/// The largest handshake packet read, in bytes; real ones are about 100.
pub const MAX_GREETING: usize = 4096;

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_LONG_FLAG: u32 = 0x4;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;
/// The capabilities certroll's SSL request asks for, of those the server offers.
const WANTED: u32 = CLIENT_LONG_PASSWORD
    | CLIENT_LONG_FLAG
    | CLIENT_PROTOCOL_41
    | CLIENT_SSL
    | CLIENT_TRANSACTIONS
    | CLIENT_SECURE_CONNECTION
    | CLIENT_PLUGIN_AUTH;
/// The largest packet certroll says it would accept (16 MiB, as the mysql client does).
const MAX_PACKET: u32 = 16 * 1024 * 1024;
/// utf8_general_ci, when an old server names no character set.
const DEFAULT_CHARSET: u8 = 33;

/// What the server's handshake packet says.
#[derive(Debug, PartialEq, Eq)]
struct Greeting {
    version: String,
    capabilities: u32,
    charset: u8,
}

/// Reads the server's handshake packet and answers with the SSL request packet.
pub fn ssl_request(stream: &mut (impl Read + Write)) -> Result<(), ObserveError> {
    let packet = read_packet(stream)?;
    let greeting = parse_greeting(&packet)?;
    if greeting.capabilities & CLIENT_SSL == 0 {
        return Err(ObserveError::Protocol(format!(
            "the MySQL server (version {}) does not offer TLS: its handshake lacks the \
             CLIENT_SSL capability (is ssl_cert set, and have_ssl YES?)",
            greeting.version
        )));
    }
    if greeting.capabilities & CLIENT_PROTOCOL_41 == 0 {
        return Err(ObserveError::Protocol(format!(
            "the MySQL server (version {}) does not speak protocol 4.1 (CLIENT_PROTOCOL_41): \
             too old for certroll's SSL request",
            greeting.version
        )));
    }
    send(
        stream,
        &request_packet(&greeting),
        "send the MySQL SSL request packet",
    )
}

/// The server's first packet (header: 3-byte length, sequence id), its length capped.
fn read_packet(stream: &mut impl Read) -> Result<Vec<u8>, ObserveError> {
    let mut header = [0u8; 4];
    read_exact(
        stream,
        &mut header,
        "read the MySQL server's handshake packet",
    )?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len == 0 || len > MAX_GREETING {
        return Err(ObserveError::Protocol(format!(
            "the server's first packet announces {len} bytes, not a MySQL handshake packet \
             (at most {MAX_GREETING}; it starts {}): is it MySQL or MariaDB?",
            words(&header)
        )));
    }
    let mut payload = vec![0u8; len];
    read_exact(
        stream,
        &mut payload,
        "read the MySQL server's handshake packet",
    )?;
    Ok(payload)
}

fn parse_greeting(p: &[u8]) -> Result<Greeting, ObserveError> {
    let not_mysql = |why: &str| {
        ObserveError::Protocol(format!(
            "the server's first packet is not a MySQL handshake ({why}): is it MySQL or MariaDB?"
        ))
    };
    match p.first() {
        Some(10) => {}
        Some(0xff) => return Err(error_packet(p)),
        Some(v) => return Err(not_mysql(&format!("protocol {v}, not 10"))),
        None => return Err(not_mysql("empty")),
    }
    let rest = &p[1..];
    let nul = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| not_mysql("its server version does not end"))?;
    let version = words(&rest[..nul]);
    // Connection id (4), first part of the scramble (8), filler (1), capabilities' low
    // half (2).
    let fixed = rest
        .get(nul + 1..nul + 16)
        .ok_or_else(|| not_mysql("cut short before its capability flags"))?;
    let low = u32::from(u16::from_le_bytes([fixed[13], fixed[14]]));
    // Then, since MySQL 4.1: character set (1), status (2), capabilities' high half (2).
    let (charset, high) = match rest.get(nul + 16..nul + 21) {
        Some(more) => (more[0], u32::from(u16::from_le_bytes([more[3], more[4]]))),
        None => (DEFAULT_CHARSET, 0),
    };
    Ok(Greeting {
        version,
        capabilities: low | high << 16,
        charset,
    })
}

/// The server's refusal (an ERR packet: code, optional `#` and SQLSTATE, message).
fn error_packet(p: &[u8]) -> ObserveError {
    let code = match p.get(1..3) {
        Some(c) => u16::from_le_bytes([c[0], c[1]]).to_string(),
        None => "without a code".into(),
    };
    let mut message = p.get(3..).unwrap_or_default();
    if message.first() == Some(&b'#') {
        message = message.get(6..).unwrap_or_default();
    }
    ObserveError::Protocol(format!(
        "the MySQL server refused the connection before TLS: error {code}: {}",
        words(message)
    ))
}

/// The SSL request packet, header included (length 32, sequence id 1).
fn request_packet(g: &Greeting) -> [u8; 36] {
    let mut packet = [0u8; 36];
    packet[..4].copy_from_slice(&[32, 0, 0, 1]);
    packet[4..8].copy_from_slice(&(WANTED & g.capabilities).to_le_bytes());
    packet[8..12].copy_from_slice(&MAX_PACKET.to_le_bytes());
    packet[12] = g.charset;
    // The 23 bytes that follow stay zero.
    packet
}

#[cfg(test)]
mod tests {
    use super::super::tests::Script;
    use super::*;

    /// A MariaDB-like handshake packet with `capabilities`, header included.
    fn greeting(capabilities: u32) -> Vec<u8> {
        let mut p = vec![10u8];
        p.extend_from_slice(b"5.5.5-10.11.19-MariaDB\0");
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(b"abcdefgh\0");
        p.extend_from_slice(&(capabilities as u16).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&[2, 0]);
        p.extend_from_slice(&((capabilities >> 16) as u16).to_le_bytes());
        p.push(21);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"ijklmnopqrst\0mysql_native_password\0");
        let mut out = vec![p.len() as u8, 0, 0, 0];
        out.extend(p);
        out
    }

    const OFFERED: u32 = 0xf7fe | CLIENT_PLUGIN_AUTH | CLIENT_SSL;

    #[test]
    fn the_ssl_request_follows_the_servers_handshake() {
        let mut server_says = greeting(OFFERED);
        server_says.extend_from_slice(&[0x16, 0x03, 0x03]);
        let mut s = Script::new(&server_says);
        ssl_request(&mut s).unwrap();
        assert_eq!(s.unread(), 3, "the TLS bytes are left to the handshake");
        assert_eq!(s.sent.len(), 36);
        assert_eq!(&s.sent[..4], &[32, 0, 0, 1], "length 32, sequence id 1");
        let caps = u32::from_le_bytes([s.sent[4], s.sent[5], s.sent[6], s.sent[7]]);
        assert_eq!(caps & CLIENT_SSL, CLIENT_SSL);
        assert_eq!(caps & CLIENT_PROTOCOL_41, CLIENT_PROTOCOL_41);
        assert_eq!(caps & !OFFERED, 0, "nothing the server does not offer");
        assert_eq!(&s.sent[8..12], &MAX_PACKET.to_le_bytes());
        assert_eq!(s.sent[12], 45, "the server's character set");
        assert_eq!(&s.sent[13..], &[0; 23]);
    }

    #[test]
    fn a_mysql_server_without_client_ssl_does_not_offer_tls() {
        let mut s = Script::new(&greeting(OFFERED & !CLIENT_SSL));
        let e = ssl_request(&mut s).unwrap_err().to_string();
        assert!(
            e.contains("the MySQL server (version \"5.5.5-10.11.19-MariaDB\") does not offer TLS"),
            "{e}"
        );
        assert!(s.sent.is_empty(), "no SSL request to a server without TLS");
    }

    #[test]
    fn a_huge_mysql_length_field_is_refused_before_reading_it() {
        let mut server_says = vec![0xff, 0xff, 0xff, 0];
        server_says.extend_from_slice(&[10; 64]);
        let mut s = Script::new(&server_says);
        let e = ssl_request(&mut s).unwrap_err().to_string();
        assert!(e.contains("announces 16777215 bytes"), "{e}");
        assert_eq!(s.unread(), 64, "nothing read past the header");
    }

    #[test]
    fn a_mysql_error_packet_is_quoted() {
        let mut p = vec![0xff];
        p.extend_from_slice(&1040u16.to_le_bytes());
        p.extend_from_slice(b"#08004Too many connections\x1b[2K");
        let mut server_says = vec![p.len() as u8, 0, 0, 0];
        server_says.extend(p);
        let e = ssl_request(&mut Script::new(&server_says))
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("error 1040: \"Too many connections\\x1b[2K\""),
            "{e}"
        );
    }

    #[test]
    fn what_is_not_a_mysql_handshake_says_so() {
        for (server_says, why) in [
            (&b"\x05\0\0\0\x09abcd"[..], "protocol 9, not 10"),
            (b"\x05\0\0\0\x0aabcd", "does not end"),
            (b"\x05\0\0\0\x0aab\0d", "cut short"),
            (b"SSH-", "announces"),
            (b"\x05\0\0", "the server closed the connection"),
        ] {
            let e = ssl_request(&mut Script::new(server_says))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
    }
}
