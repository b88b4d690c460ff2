//! Filling `{placeholder}`s of the inventory's shell commands (`reload`, `confirm`,
//! `probe`), every value quoted for POSIX `sh`.
//!
//! Values come from the inventory (node, CA and DNS names), which validation already
//! restricts to harmless characters; quoting here is the second wall, so that a value
//! can never become shell syntax whatever slips through. A value made only of characters
//! that mean nothing to `sh` (letters, digits, `@%+=:,./_-`) is substituted as is, so
//! `nodes/{node}/reloaded` stays readable and keeps working; anything else is single-quoted
//! (`'it'\''s'`). Placeholders are substituted in one pass: a value that itself contains
//! `{name}` is not substituted again. Unknown `{…}` text is left as written.

use std::borrow::Cow;

/// `s` quoted for POSIX `sh` if it needs quoting (the empty string becomes `''`).
pub fn quote(s: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("'{}'", s.replace('\'', "'\\''")))
    }
}

/// `template` with each `{key}` of `values` replaced by its quoted value.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let hit = values.iter().find(|(key, _)| {
            tail.strip_prefix('{')
                .and_then(|t| t.strip_prefix(key))
                .is_some_and(|t| t.starts_with('}'))
        });
        match hit {
            Some((key, value)) => {
                out.push_str(&quote(value));
                rest = &tail[key.len() + 2..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `s` quoted for POSIX `sh` always: single quotes, with embedded quotes as `'\''`. What
/// every argument of a remote command is, whatever it holds.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh` makes of `printf '%s\n' <arg>`: the argument it received.
    fn through_sh(arg: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {arg}"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn plain_values_are_left_readable() {
        assert_eq!(quote("app1.example.test"), "app1.example.test");
        assert_eq!(quote("10.0.0.1"), "10.0.0.1");
        assert_eq!(quote("::1"), "::1");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn shell_metacharacters_in_names_are_quoted() {
        for hostile in [
            "app1.example.test$(touch /tmp/x)",
            "app1; touch /tmp/x",
            "a`id`b",
            "it's",
            "a b\tc\nd",
            "*",
            "$HOME",
            "\"x\"",
            "",
        ] {
            assert_eq!(through_sh(&quote(hostile)), hostile, "{hostile:?}");
        }
    }

    #[test]
    fn fill_substitutes_once_and_quotes() {
        let values = [("node", "a;b"), ("ca", "{node}")];
        assert_eq!(
            fill("reload {node} --ca {ca} {other} {", &values),
            "reload 'a;b' --ca '{node}' {other} {"
        );
        assert_eq!(fill("nodes/{node}/x", &[("node", "app1")]), "nodes/app1/x");
        assert_eq!(fill("{nodes}{node", &[("node", "x")]), "{nodes}{node");
    }

    #[test]
    fn shell_quote_survives_the_shell() {
        for s in [
            "plain",
            "with space",
            "it's",
            "$(rm -rf /)",
            "a'b\"c\\d",
            "",
            "--",
            "*",
        ] {
            assert_eq!(through_sh(&shell_quote(s)), s, "{s:?}");
        }
    }
}
