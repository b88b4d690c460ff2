//! `starttls = "ldap"`: the StartTLS extended operation (RFC 4511 §4.14, OID
//! 1.3.6.1.4.1.1466.20037).
//!
//! certroll sends the ExtendedRequest as message 1 and reads one LDAPMessage back: an
//! ExtendedResponse whose resultCode is success (0) means the next bytes are TLS; any
//! other code is refused with the server's diagnostic message. The message's BER length
//! is capped at [`MAX_MESSAGE`] before anything is read or allocated for it (a length
//! field may announce gigabytes).

use std::io::{Read, Write};

use super::{read_exact, send, words, ObserveError};

/// The largest response read, in bytes; a real one is a few dozen.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// LDAPMessage { messageID 1, ExtendedRequest { requestName "1.3.6.1.4.1.1466.20037" } }.
const START_TLS: &[u8] = b"\x30\x1d\x02\x01\x01\x77\x18\x80\x161.3.6.1.4.1.1466.20037";

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const ENUMERATED: u8 = 0x0a;
const OCTET_STRING: u8 = 0x04;
/// [APPLICATION 24], constructed: ExtendedResponse.
const EXTENDED_RESPONSE: u8 = 0x78;

/// Sends StartTLS and reads its response (see the module header).
pub fn start_tls(stream: &mut (impl Read + Write)) -> Result<(), ObserveError> {
    send(stream, START_TLS, "send the LDAP StartTLS request")?;
    let action = "read the LDAP server's answer to StartTLS";
    let mut head = [0u8; 2];
    read_exact(stream, &mut head, action)?;
    if head[0] != SEQUENCE {
        return Err(not_ldap(&head));
    }
    let len = match head[1] {
        short @ 0..=0x7f => usize::from(short),
        long @ 0x81..=0x84 => {
            let mut bytes = [0u8; 4];
            let n = usize::from(long & 0x7f);
            read_exact(stream, &mut bytes[4 - n..], action)?;
            usize::try_from(u32::from_be_bytes(bytes)).unwrap_or(usize::MAX)
        }
        _ => return Err(not_ldap(&head)),
    };
    if len > MAX_MESSAGE {
        return Err(ObserveError::Protocol(format!(
            "the LDAP server's answer to StartTLS announces {len} bytes (at most {MAX_MESSAGE}): \
             is it an LDAP server?"
        )));
    }
    let mut body = vec![0u8; len];
    read_exact(stream, &mut body, action)?;
    result(&body)
}

/// The resultCode of the ExtendedResponse in `body` (an LDAPMessage's contents).
fn result(body: &[u8]) -> Result<(), ObserveError> {
    let malformed = || {
        ObserveError::Protocol(format!(
            "the LDAP server's answer to StartTLS is not an ExtendedResponse (it starts {}): \
             is it an LDAP server?",
            words(&body[..body.len().min(16)])
        ))
    };
    let (_id, rest) = tlv(body, INTEGER).ok_or_else(malformed)?;
    let (response, _controls) = tlv(rest, EXTENDED_RESPONSE).ok_or_else(malformed)?;
    let (code, rest) = tlv(response, ENUMERATED).ok_or_else(malformed)?;
    if code.is_empty() || code.len() > 4 {
        return Err(malformed());
    }
    let code = code.iter().fold(0u32, |n, &b| n << 8 | u32::from(b));
    if code == 0 {
        return Ok(());
    }
    let (_matched, rest) = tlv(rest, OCTET_STRING).unwrap_or((&[], rest));
    let (message, _) = tlv(rest, OCTET_STRING).unwrap_or((&[], rest));
    Err(ObserveError::Protocol(format!(
        "the LDAP server refused StartTLS: result {code}{}: {}",
        match code {
            1 => " (operationsError)",
            2 => " (protocolError)",
            52 => " (unavailable)",
            53 => " (unwillingToPerform)",
            _ => "",
        },
        words(message)
    )))
}

/// Splits `der` into the value of its first element, which must have `tag`, and the rest.
fn tlv(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = der.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let bytes = rest.get(..n)?;
            let len = bytes.iter().fold(0usize, |l, &b| l << 8 | usize::from(b));
            (len, &rest[n..])
        }
        _ => return None,
    };
    Some((rest.get(..len)?, rest.get(len..)?))
}

fn not_ldap(head: &[u8]) -> ObserveError {
    ObserveError::Protocol(format!(
        "the server's answer to an LDAP StartTLS request is not an LDAP message (it starts \
         {}): is it an LDAP server?",
        words(head)
    ))
}

#[cfg(test)]
mod tests {
    use super::super::tests::Script;
    use super::*;

    /// An ExtendedResponse to message 1 with `code` and `message`, as OpenLDAP sends it.
    fn response(code: u8, message: &[u8]) -> Vec<u8> {
        let mut op = vec![ENUMERATED, 1, code, OCTET_STRING, 0, OCTET_STRING];
        op.push(message.len() as u8);
        op.extend_from_slice(message);
        let mut body = vec![INTEGER, 1, 1, EXTENDED_RESPONSE, op.len() as u8];
        body.extend(op);
        let mut out = vec![SEQUENCE, 0x81, body.len() as u8];
        out.extend(body);
        out
    }

    #[test]
    fn the_start_tls_request_is_the_extended_operation() {
        assert_eq!(START_TLS.len(), 31);
        assert_eq!(
            tlv(START_TLS, SEQUENCE).map(|(v, r)| (v.len(), r)),
            Some((29, &[][..]))
        );
        let mut server_says = response(0, b"");
        server_says.push(0x16);
        let mut s = Script::new(&server_says);
        start_tls(&mut s).unwrap();
        assert_eq!(s.sent, START_TLS);
        assert_eq!(s.unread(), 1, "the TLS bytes are left to the handshake");
    }

    #[test]
    fn a_refused_ldap_start_tls_names_the_result_and_the_servers_words() {
        let e = start_tls(&mut Script::new(&response(52, b"TLS not configured\x1b")))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "the LDAP server refused StartTLS: result 52 (unavailable): \"TLS not configured\\x1b\""
        );
    }

    #[test]
    fn a_huge_ldap_length_field_is_refused_before_reading_it() {
        let mut s = Script::new(&[SEQUENCE, 0x84, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        let e = start_tls(&mut s).unwrap_err().to_string();
        assert!(e.contains("announces 4294967295 bytes"), "{e}");
        assert_eq!(s.unread(), 3, "nothing read past the length");
    }

    #[test]
    fn what_is_not_an_ldap_response_says_so() {
        for (server_says, why) in [
            (&b"220 mx ESMTP\r\n"[..], "not an LDAP message"),
            (b"\x30\x80", "not an LDAP message"),
            (b"\x30\x03\x02\x01\x01", "not an ExtendedResponse"),
            (b"\x30\x05\x02\x01\x01\x65\x00", "not an ExtendedResponse"),
            (b"\x30\x10\x02", "the server closed the connection"),
        ] {
            let e = start_tls(&mut Script::new(server_says))
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
    }
}
