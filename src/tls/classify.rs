//! Turning a rustls error into a [`FailureKind`] and a sentence an operator can act on.

use rustls::pki_types::UnixTime;
use rustls::{CertificateError, Error};

use super::{FailureKind, HandshakeError, Side};

/// Classifies the error raised by `side` while handshaking. An alert received from the
/// peer means the peer refused, so the blame goes to the other side.
pub(super) fn classify(side: Side, error: &Error) -> HandshakeError {
    let (me, peer) = names(side);
    let (side, kind, detail) = match error {
        Error::InvalidCertificate(cert_error) => {
            let (kind, why) = certificate(cert_error);
            (
                side,
                kind,
                format!("{me} rejected the {peer}'s certificate: {why}"),
            )
        }
        Error::NoCertificatesPresented => (
            side,
            FailureKind::MissingCertificate,
            format!("the {peer} presented no certificate"),
        ),
        Error::AlertReceived(alert) => {
            let other = other_side(side);
            (
                other,
                FailureKind::Other,
                format!("{peer} aborted the handshake with alert {alert:?}"),
            )
        }
        other => (
            side,
            FailureKind::Other,
            format!("{me} failed the handshake: {other}"),
        ),
    };
    HandshakeError { side, kind, detail }
}

fn other_side(side: Side) -> Side {
    match side {
        Side::Client => Side::Server,
        Side::Server => Side::Client,
    }
}

fn names(side: Side) -> (&'static str, &'static str) {
    match side {
        Side::Client => ("client", "server"),
        Side::Server => ("server", "client"),
    }
}

fn certificate(error: &CertificateError) -> (FailureKind, String) {
    use CertificateError as C;
    match error {
        C::UnknownIssuer => (
            FailureKind::UnknownIssuer,
            "issued by no CA of the trust bundle".into(),
        ),
        C::Expired => (FailureKind::Expired, "expired".into()),
        C::ExpiredContext { time, not_after } => (
            FailureKind::Expired,
            format!("expired at {} (checked at {})", show(not_after), show(time)),
        ),
        C::NotValidYet => (FailureKind::NotYetValid, "not valid yet".into()),
        C::NotValidYetContext { time, not_before } => (
            FailureKind::NotYetValid,
            format!(
                "valid only from {} (checked at {})",
                show(not_before),
                show(time)
            ),
        ),
        C::NotValidForName => (
            FailureKind::NameMismatch,
            "not valid for the server name".into(),
        ),
        C::NotValidForNameContext {
            expected,
            presented,
        } => (
            FailureKind::NameMismatch,
            format!(
                "valid for [{}], not for {}",
                presented.join(", "),
                expected.to_str()
            ),
        ),
        C::BadSignature => (
            FailureKind::BadSignature,
            "a signature in the chain does not verify".into(),
        ),
        C::BadEncoding => (
            FailureKind::BadPem,
            "a certificate of the chain is not valid X.509".into(),
        ),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => (
            FailureKind::Other,
            "not issued for TLS server/client authentication (extended key usage)".into(),
        ),
        other => (FailureKind::Other, format!("{other}")),
    }
}

/// A Unix time as RFC 3339, or as seconds if it is out of range.
fn show(t: &UnixTime) -> String {
    let secs = t.as_secs();
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{secs}s after the epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_blame_the_peer() {
        let alert = Error::AlertReceived(rustls::AlertDescription::BadCertificate);
        let e = classify(Side::Client, &alert);
        assert_eq!((e.side, e.kind), (Side::Server, FailureKind::Other));
    }

    #[test]
    fn certificate_errors_map_to_kinds() {
        let e = classify(
            Side::Client,
            &Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        assert_eq!((e.side, e.kind), (Side::Client, FailureKind::UnknownIssuer));
        let e = classify(
            Side::Server,
            &Error::InvalidCertificate(CertificateError::BadSignature),
        );
        assert_eq!((e.side, e.kind), (Side::Server, FailureKind::BadSignature));
        assert_eq!(
            show(&UnixTime::since_unix_epoch(std::time::Duration::ZERO)),
            "1970-01-01T00:00:00Z"
        );
    }
}
