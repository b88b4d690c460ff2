//! `tls_address` and `starttls`: where a node serves TLS, as reached from the node itself.
//!
//! With these keys certroll confirms a node's reload with a TLS handshake of its own
//! (docs/design.md#what-a-confirm-proves) instead of trusting a hand-written script. They are
//! parsed here, once, into a [`TlsTarget`] so that nothing downstream splits host and port
//! again.

use super::locate::ValuePath;
use super::validate::Problem;
use super::{CaSpec, Link, Node};

/// The protocol spoken before the TLS handshake (`starttls` node key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Starttls {
    /// TLS from the first byte.
    #[default]
    None,
    /// PostgreSQL: the 8-byte SSLRequest packet, the server answers `S`, then TLS.
    Postgres,
    /// MySQL and MariaDB: the server's handshake packet (it must offer CLIENT_SSL), the
    /// client's 32-byte SSL request packet, then TLS.
    Mysql,
    /// SMTP: the 220 greeting, `EHLO` (its 250 reply must list STARTTLS), `STARTTLS`,
    /// 220, then TLS.
    Smtp,
    /// IMAP: the `* OK` greeting, `a STARTTLS`, `a OK`, then TLS.
    Imap,
    /// LDAP: the StartTLS extended request (OID 1.3.6.1.4.1.1466.20037), a success
    /// result, then TLS.
    Ldap,
}

impl Starttls {
    /// Every value, in the order the docs list them.
    pub const ALL: [Starttls; 6] = [
        Starttls::None,
        Starttls::Postgres,
        Starttls::Mysql,
        Starttls::Smtp,
        Starttls::Imap,
        Starttls::Ldap,
    ];

    /// The inventory spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Starttls::None => "none",
            Starttls::Postgres => "postgres",
            Starttls::Mysql => "mysql",
            Starttls::Smtp => "smtp",
            Starttls::Imap => "imap",
            Starttls::Ldap => "ldap",
        }
    }
}

/// Where a node serves TLS: `host:port` as the node itself reaches it, and what precedes
/// the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// Host name or address, without brackets for IPv6.
    pub host: String,
    pub port: u16,
    pub starttls: Starttls,
}

impl TlsTarget {
    /// `host:port`, IPv6 hosts in brackets, for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Parses `"host:port"` (`"[::1]:443"` for IPv6) into host and port.
pub fn parse_address(text: &str) -> Result<(String, u16), String> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, port) = rest
                .split_once("]:")
                .ok_or_else(|| format!("{text:?} is not \"[ipv6]:port\""))?;
            (host, port)
        }
        None => text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} has no port; write \"host:port\""))?,
    };
    if host.is_empty() {
        return Err(format!("{text:?} has no host; write \"host:port\""));
    }
    if host.contains(':') && !text.starts_with('[') {
        return Err(format!(
            "{text:?}: write an IPv6 address as \"[addr]:port\""
        ));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(format!(
            "{text:?}: the host may not hold spaces, control characters or '/'"
        ));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{text:?}: port {port:?} is not a number from 1 to 65535"))?;
    if port == 0 {
        return Err(format!("{text:?}: port 0 is not a port"));
    }
    Ok((host.to_string(), port))
}

/// Parses a `starttls` value.
pub fn parse_starttls(text: &str) -> Result<Starttls, String> {
    Starttls::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| format!("unknown starttls {text:?}"))
}

/// The hint for an unknown `starttls` value: the closest known one, if any, and the list.
fn starttls_hint(unknown: &str) -> String {
    let names = Starttls::ALL.map(Starttls::as_str);
    let list = names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let accepted = format!("accepted values: {list} (\"none\": TLS from the first byte)");
    match super::validate::closest(unknown, names.into_iter()) {
        Some(near) => format!("did you mean {near:?}? ({accepted})"),
        None => accepted,
    }
}

/// Builds a node's [`TlsTarget`] from its merged `tls_address` and `starttls`; `at` makes
/// the error's position (`key` is filled in by the caller's closure).
pub fn build(
    node: &str,
    address: Option<&str>,
    starttls: Option<&str>,
    at: impl Fn(&str) -> Problem,
) -> Result<Option<TlsTarget>, Problem> {
    let starttls = match starttls {
        None => Starttls::None,
        Some(s) => parse_starttls(s).map_err(|message| {
            Problem {
                message: format!("{message} for node {node}"),
                ..at("starttls")
            }
            .hint(starttls_hint(s))
        })?,
    };
    let Some(address) = address else {
        return Ok(None);
    };
    let (host, port) = parse_address(address).map_err(|message| Problem {
        message: format!("bad tls_address for node {node}: {message}"),
        ..at("tls_address")
    })?;
    Ok(Some(TlsTarget {
        host,
        port,
        starttls,
    }))
}

/// One address serves one certificate: a node with `tls_address` may take part in links
/// of one CA only (its confirm compares what it serves with that CA's files).
pub fn check_one_ca(nodes: &[Node], links: &[Link], cas: &[CaSpec]) -> Result<(), Problem> {
    if cas.len() < 2 {
        return Ok(());
    }
    let mut seen: Vec<Option<usize>> = vec![None; nodes.len()];
    for l in links {
        for n in [l.client, l.server] {
            if nodes[n].tls.is_none() {
                continue;
            }
            match seen[n] {
                Some(ca) if ca != l.ca => {
                    let node = &nodes[n].name;
                    let message = format!(
                        "node {node} has tls_address but takes part in links of CAs {} and {}: \
                         one address serves one certificate",
                        cas[ca].name, cas[l.ca].name
                    );
                    return Err(Problem::new(
                        ValuePath::keys(&["nodes", node, "tls_address"]),
                        message,
                    )
                    .or_at(ValuePath::keys(&["defaults", "tls_address"]))
                    .hint("remove tls_address from this node and give it a confirm command"));
                }
                _ => seen[n] = Some(l.ca),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            parse_address("127.0.0.1:5432").unwrap(),
            ("127.0.0.1".into(), 5432)
        );
        assert_eq!(
            parse_address("db.internal:443").unwrap(),
            ("db.internal".into(), 443)
        );
        assert_eq!(parse_address("[::1]:8443").unwrap(), ("::1".into(), 8443));
        let t = TlsTarget {
            host: "::1".into(),
            port: 8443,
            starttls: Starttls::None,
        };
        assert_eq!(t.address(), "[::1]:8443");
    }

    #[test]
    fn bad_addresses_say_why() {
        for (text, why) in [
            ("localhost", "no port"),
            (":443", "no host"),
            ("h:0", "port 0"),
            ("h:https", "not a number"),
            ("h:70000", "not a number"),
            ("::1:443", "IPv6"),
            ("a b:1", "spaces"),
            ("[::1]443", "[ipv6]:port"),
        ] {
            let e = parse_address(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn starttls_values() {
        for s in Starttls::ALL {
            assert_eq!(parse_starttls(s.as_str()).unwrap(), s);
        }
        assert_eq!(parse_starttls("mysql").unwrap(), Starttls::Mysql);
        assert_eq!(parse_starttls("smtp").unwrap(), Starttls::Smtp);
        assert!(parse_starttls("pop3").unwrap_err().contains("pop3"));
    }

    #[test]
    fn an_unknown_starttls_lists_the_accepted_values_and_the_closest() {
        let hint = starttls_hint("mariadb");
        assert!(
            hint.contains("\"postgres\", \"mysql\", \"smtp\", \"imap\", \"ldap\""),
            "{hint}"
        );
        assert!(starttls_hint("stmp").starts_with("did you mean \"smtp\"?"));
        assert!(!starttls_hint("xmpp-server-to-server").contains("did you mean"));
    }
}
