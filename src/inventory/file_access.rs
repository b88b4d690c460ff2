//! Who may touch the files certroll writes for a node: `owner`, `group` and the modes
//! `key_mode`, `cert_mode`, `bundle_mode`, checked when the inventory is loaded.
//!
//! A key mode is refused when it would let others at the private key: any bit for other
//! users (read, write or execute) or group write. Such a mode would make every apply
//! write an exposed key (and `verify` report it CRITICAL ever after), so it is stopped
//! before anything is written, at the line and column of the value like every other
//! inventory mistake.

use super::nodes::key_at;
use super::validate::Problem;

/// Bits a private key's mode may never carry: group write and anything for others.
const KEY_FORBIDDEN: u32 = 0o027;

/// An `owner` or `group`: a user or group name, or a numeric id.
pub(super) fn account(
    name: &str,
    key: &str,
    value: Option<String>,
) -> Result<Option<String>, Problem> {
    let Some(v) = value else { return Ok(None) };
    let ok = !v.is_empty()
        && !v.starts_with('-')
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        return Ok(Some(v));
    }
    Err(Problem {
        message: format!("invalid {key} {v:?} for node {name}"),
        ..key_at(name, &[key])
    }
    .hint("a user or group name (letters, digits, '.', '_', '-') or a numeric id"))
}

/// A file mode written as octal digits, e.g. `"0640"`.
pub(super) fn mode(name: &str, key: &str, value: Option<String>) -> Result<Option<u32>, Problem> {
    let Some(v) = value else { return Ok(None) };
    match u32::from_str_radix(&v, 8) {
        Ok(m) if !v.is_empty() && v.len() <= 4 && m <= 0o777 => Ok(Some(m)),
        _ => Err(Problem {
            message: format!("invalid {key} {v:?} for node {name}"),
            ..key_at(name, &[key])
        }
        .hint("permission bits as an octal string, e.g. \"0600\" or \"0640\"")),
    }
}

/// `key_mode`: a mode ([`mode`]) that keeps the private key from other users and keeps
/// the group from replacing it.
pub(super) fn key_mode(name: &str, value: Option<String>) -> Result<Option<u32>, Problem> {
    let text = value.clone();
    let Some(m) = mode(name, "key_mode", value)? else {
        return Ok(None);
    };
    if m & KEY_FORBIDDEN == 0 {
        return Ok(Some(m));
    }
    let who = match (m & 0o007 != 0, m & 0o020 != 0) {
        (true, true) => "lets other users at the private key and lets its group write it",
        (true, false) => "lets other users at the private key",
        _ => "lets its group write the private key",
    };
    Err(Problem {
        message: format!(
            "key_mode {:?} of node {name} {who}",
            text.unwrap_or_default()
        ),
        ..key_at(name, &["key_mode"])
    }
    .hint(format!(
        "a private key is for its owner (\"0600\") and at most readable by its group \
         (\"0640\"); {:04o} would be written to the node at every run",
        m
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: &str) -> Result<Option<u32>, Problem> {
        key_mode("db1", Some(v.to_string()))
    }

    #[test]
    fn key_modes_that_expose_the_key_are_refused() {
        for (v, says) in [
            (
                "0666",
                "lets other users at the private key and lets its group write it",
            ),
            ("0644", "lets other users at the private key"),
            ("0604", "lets other users at the private key"),
            ("0602", "lets other users at the private key"),
            ("0601", "lets other users at the private key"),
            ("0660", "lets its group write the private key"),
            ("0620", "lets its group write the private key"),
        ] {
            let e = key(v).expect_err(v);
            assert!(e.message.contains(says), "{v}: {}", e.message);
            assert!(e.message.contains(&format!("{v:?}")), "{}", e.message);
            assert_eq!(e.at[0].to_string(), "nodes.db1.key_mode");
            assert_eq!(e.at[1].to_string(), "defaults.key_mode");
        }
    }

    #[test]
    fn key_modes_for_the_owner_and_a_reading_group_are_accepted() {
        for (v, m) in [
            ("0600", 0o600),
            ("0640", 0o640),
            ("0400", 0o400),
            ("440", 0o440),
        ] {
            assert_eq!(key(v).expect(v), Some(m));
        }
        assert_eq!(key_mode("db1", None).unwrap(), None);
        // Not a mode at all: the plain mode error, not the exposure one.
        let e = key("0888").unwrap_err();
        assert_eq!(e.message, "invalid key_mode \"0888\" for node db1");
    }

    #[test]
    fn other_modes_may_be_readable_by_all() {
        assert_eq!(
            mode("db1", "cert_mode", Some("0644".into())).unwrap(),
            Some(0o644)
        );
        assert_eq!(
            mode("db1", "bundle_mode", Some("0666".into())).unwrap(),
            Some(0o666)
        );
        assert!(mode("db1", "cert_mode", Some("10644".into())).is_err());
        assert!(mode("db1", "cert_mode", Some(String::new())).is_err());
    }

    #[test]
    fn accounts_are_names_or_ids() {
        assert_eq!(
            account("db1", "owner", Some("postgres".into())).unwrap(),
            Some("postgres".into())
        );
        assert!(account("db1", "owner", Some("999".into())).is_ok());
        for bad in ["pg sql", "-rf", "", "a;b"] {
            assert!(account("db1", "owner", Some(bad.into())).is_err(), "{bad}");
        }
    }
}
