//! `dns_names`: the subject alternative names of a node's leaf, checked at load.
//!
//! Each entry is an IP address (v4 or v6) or a host name as RFC 1123 defines it: labels of
//! 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen, separated by
//! dots, 253 characters at most, no trailing dot. Wildcards (`*.example.com`) are refused:
//! certroll issues one leaf per node, naming that node, and the first entry is also the name
//! probes and handshakes use to reach it, which a wildcard cannot be. Checking here means a
//! bad name is refused before anything is written, instead of failing an apply mid-run,
//! and no name can carry shell syntax into a `probe` command.

use std::net::IpAddr;

/// Longest host name (RFC 1035 §2.3.4, as presented without the trailing dot).
const MAX_NAME: usize = 253;
/// Longest label.
const MAX_LABEL: usize = 63;

/// Why `name` is not a valid SAN, or `None` when it is.
pub fn problem(name: &str) -> Option<String> {
    if name.parse::<IpAddr>().is_ok() {
        return None;
    }
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.contains('*') {
        return Some("wildcards are not supported: each node gets a leaf of its own names".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    {
        return Some(format!(
            "it contains {bad:?}: a host name holds only ASCII letters, digits, '-' and '.'"
        ));
    }
    if name.len() > MAX_NAME {
        return Some(format!(
            "it is {} characters long, more than {MAX_NAME}",
            name.len()
        ));
    }
    if name.ends_with('.') {
        return Some("it ends with a dot: write the name without it".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > MAX_LABEL {
            return Some(format!(
                "its label {:?}… is {} characters long, more than {MAX_LABEL}",
                &label[..12],
                label.len()
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("its label {label:?} starts or ends with '-'"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_addresses_are_accepted() {
        for ok in [
            "app1.example.test",
            "localhost",
            "a-b.c1",
            "1app.example.test",
            "127.0.0.1",
            "::1",
            "fd00::10",
            &format!("{}.test", "a".repeat(63)),
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn dns_names_that_are_not_host_names_are_refused() {
        for (bad, why) in [
            ("app1.example.test$(touch /tmp/x)", "contains '$'"),
            ("app1; touch /tmp/x", "contains ';'"),
            ("", "empty"),
            ("*.example.test", "wildcards"),
            ("bücher.test", "contains 'ü'"),
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("a.", "ends with a dot"),
            ("-a.test", "starts or ends with '-'"),
            ("a-.test", "starts or ends with '-'"),
            ("a b", "contains ' '"),
        ] {
            let p = problem(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(p.contains(why), "{bad:?}: {p}");
        }
        let long_label = format!("{}.test", "a".repeat(300));
        assert!(problem(&long_label).unwrap().contains("more than 253"));
        let label = format!("{}.test", "a".repeat(64));
        assert!(problem(&label).unwrap().contains("more than 63"));
    }
}
