//! Distinguished names: the inventory's `CN=...,O=...` text turned into an rcgen name
//! with the generation suffix, and an existing certificate's subject copied exactly
//! (a cross certificate must carry its root's subject byte for byte, or no path builds).

use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{DistinguishedName, DnType, DnValue};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::X509Name;

use super::generation_suffix;

/// Parses `CN=Example CA,O=Example,C=DE` and appends ` G<generation>` to the CN.
///
/// Attributes: CN, O, OU, C, L, ST (case-insensitive keys), comma separated; a literal
/// comma inside a value is written `\,`. Each attribute may appear once and CN is required.
pub(crate) fn ca_subject(subject: &str, generation: u32) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    let mut has_cn = false;
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
        let ty = attribute_type(key.trim()).ok_or_else(|| {
            format!(
                "unsupported attribute {key:?} in subject {subject:?} (use CN, O, OU, C, L, ST)"
            )
        })?;
        if dn.get(&ty).is_some() {
            return Err(format!(
                "attribute {key:?} appears twice in subject {subject:?}"
            ));
        }
        if ty == DnType::CommonName {
            has_cn = true;
            dn.push(ty, format!("{value}{}", generation_suffix(generation)));
        } else if ty == DnType::CountryName {
            let country = PrintableString::try_from(value).map_err(|_| {
                format!("country {value:?} in subject {subject:?} is not printable ASCII")
            })?;
            dn.push(ty, DnValue::PrintableString(country));
        } else {
            dn.push(ty, value.to_string());
        }
    }
    if !has_cn {
        return Err(format!("subject {subject:?} has no CN attribute"));
    }
    Ok(dn)
}

/// A leaf's subject: `CN=<node>`.
pub(crate) fn leaf_subject(node: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node.to_string());
    dn
}

fn attribute_type(key: &str) -> Option<DnType> {
    Some(match key.to_ascii_uppercase().as_str() {
        "CN" => DnType::CommonName,
        "O" => DnType::OrganizationName,
        "OU" => DnType::OrganizationalUnitName,
        "C" => DnType::CountryName,
        "L" => DnType::LocalityName,
        "ST" => DnType::StateOrProvinceName,
        _ => return None,
    })
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

/// Copies a parsed certificate name into an rcgen name, keeping every string type, so
/// that rcgen re-encodes exactly the same bytes.
pub(crate) fn copy_name(name: &X509Name<'_>) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err("a name component holds several attributes".into());
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| "a name attribute type is not a valid OID".to_string())?
            .collect();
        let data = attr.attr_value().data;
        let text = || {
            std::str::from_utf8(data).map_err(|_| "a name attribute is not valid text".to_string())
        };
        let bad = |e: rcgen::Error| format!("a name attribute is malformed: {e}");
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_string()),
            Tag::PrintableString => {
                DnValue::PrintableString(PrintableString::try_from(text()?).map_err(bad)?)
            }
            Tag::Ia5String => DnValue::Ia5String(Ia5String::try_from(text()?).map_err(bad)?),
            Tag::T61String => {
                DnValue::TeletexString(TeletexString::try_from(text()?).map_err(bad)?)
            }
            Tag::BmpString => {
                DnValue::BmpString(BmpString::from_utf16be(data.to_vec()).map_err(bad)?)
            }
            Tag::UniversalString => {
                DnValue::UniversalString(UniversalString::from_utf32be(data.to_vec()).map_err(bad)?)
            }
            other => {
                return Err(format!(
                    "a name attribute has unsupported string type {other}"
                ))
            }
        };
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err("a name repeats an attribute type".into());
        }
        dn.push(ty, value);
    }
    Ok(dn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_attributes_and_appends_generation() {
        let dn = ca_subject(
            "CN=Example CA, O=Example\\, Inc, OU=Ops, C=DE, L=Berlin, ST=Berlin",
            3,
        )
        .unwrap();
        assert_eq!(
            dn.get(&DnType::CommonName),
            Some(&DnValue::Utf8String("Example CA G3".into()))
        );
        assert_eq!(
            dn.get(&DnType::OrganizationName),
            Some(&DnValue::Utf8String("Example, Inc".into()))
        );
        assert_eq!(dn.iter().count(), 6);
    }

    #[test]
    fn refuses_bad_subjects() {
        for bad in [
            "O=Example",
            "CN=A,CN=B",
            "CN=A,XX=b",
            "CN=A,,O=b",
            "CN=",
            "CN A",
        ] {
            assert!(ca_subject(bad, 1).is_err(), "{bad} accepted");
        }
    }
}
