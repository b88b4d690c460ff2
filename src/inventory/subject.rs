//! A CA's `subject`: `CN=Example CA,O=Example,C=DE`, parsed and checked at load.
//!
//! Attributes: CN, O, OU, C, L, ST (case-insensitive keys), comma separated; a literal
//! comma inside a value is written `\,`. Each attribute may appear once, CN is required,
//! and C must be printable ASCII. The PKI builds the certificate's name from
//! [`parse`]'s result, so a subject accepted here is one that can be issued.

/// An attribute of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    CommonName,
    Organization,
    OrganizationalUnit,
    Country,
    Locality,
    StateOrProvince,
}

impl Attr {
    fn from_key(key: &str) -> Option<Attr> {
        Some(match key.to_ascii_uppercase().as_str() {
            "CN" => Attr::CommonName,
            "O" => Attr::Organization,
            "OU" => Attr::OrganizationalUnit,
            "C" => Attr::Country,
            "L" => Attr::Locality,
            "ST" => Attr::StateOrProvince,
            _ => return None,
        })
    }
}

/// The attributes of `subject` in order, values unescaped and trimmed; an error says why
/// the subject cannot be a certificate name.
pub fn parse(subject: &str) -> Result<Vec<(Attr, String)>, String> {
    let mut out: Vec<(Attr, String)> = Vec::new();
    for part in split_unescaped(subject) {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!("empty attribute in subject {subject:?}"));
        }
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("attribute {part:?} in subject {subject:?} has no '='"))?;
        let value = value.trim();
        if value.is_empty() {
            return Err(format!(
                "attribute {key:?} in subject {subject:?} has an empty value"
            ));
        }
        let attr = Attr::from_key(key.trim()).ok_or_else(|| {
            format!(
                "unsupported attribute {:?} in subject {subject:?} (use CN, O, OU, C, L, ST)",
                key.trim()
            )
        })?;
        if out.iter().any(|(a, _)| *a == attr) {
            return Err(format!(
                "attribute {key:?} appears twice in subject {subject:?}"
            ));
        }
        if attr == Attr::Country && !value.chars().all(printable) {
            return Err(format!(
                "country {value:?} in subject {subject:?} is not printable ASCII"
            ));
        }
        out.push((attr, value.to_string()));
    }
    if !out.iter().any(|(a, _)| *a == Attr::CommonName) {
        return Err(format!("subject {subject:?} has no CN attribute"));
    }
    Ok(out)
}

/// The characters of an X.520 PrintableString.
fn printable(c: char) -> bool {
    c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c)
}

/// Splits on commas not preceded by a backslash, and removes the escapes.
fn split_unescaped(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(last)) = (chars.next(), parts.last_mut()) {
                    last.push(next);
                }
            }
            ',' => parts.push(String::new()),
            _ => {
                if let Some(last) = parts.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_attribute() {
        let attrs =
            parse("CN=Example CA, O=Example\\, Inc, OU=Ops, C=DE, L=Berlin, ST=Berlin").unwrap();
        assert_eq!(attrs.len(), 6);
        assert_eq!(attrs[0], (Attr::CommonName, "Example CA".into()));
        assert_eq!(attrs[1], (Attr::Organization, "Example, Inc".into()));
    }

    #[test]
    fn subjects_that_cannot_be_issued_are_refused() {
        for (bad, why) in [
            ("O=Example", "has no CN"),
            ("CN=x,XX=y", "unsupported attribute \"XX\""),
            ("CN=A,CN=B", "appears twice"),
            ("CN=A,,O=b", "empty attribute"),
            ("CN=", "empty value"),
            ("CN A", "has no '='"),
            ("CN=A,C=Ü", "not printable"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
