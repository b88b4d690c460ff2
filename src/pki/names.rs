//! Distinguished names: the inventory's `CN=...,O=...` text turned into an rcgen name
//! with the generation suffix, and an existing certificate's subject copied exactly
//! (a cross certificate must carry its root's subject byte for byte, or no path builds).

use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{DistinguishedName, DnType, DnValue};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::X509Name;

use super::generation_suffix;
use crate::inventory::subject::{self, Attr};

/// Parses `CN=Example CA,O=Example,C=DE` (see [`crate::inventory::subject`], which checks it
/// at load) and appends ` G<generation>` to the CN.
pub(crate) fn ca_subject(subject: &str, generation: u32) -> Result<DistinguishedName, String> {
    let mut dn = DistinguishedName::new();
    for (attr, value) in subject::parse(subject)? {
        let ty = match attr {
            Attr::CommonName => {
                let cn = format!("{value}{}", generation_suffix(generation));
                dn.push(DnType::CommonName, cn);
                continue;
            }
            Attr::Country => {
                let country = PrintableString::try_from(value.as_str()).map_err(|_| {
                    format!("country {value:?} in subject {subject:?} is not printable ASCII")
                })?;
                dn.push(DnType::CountryName, DnValue::PrintableString(country));
                continue;
            }
            Attr::Organization => DnType::OrganizationName,
            Attr::OrganizationalUnit => DnType::OrganizationalUnitName,
            Attr::Locality => DnType::LocalityName,
            Attr::StateOrProvince => DnType::StateOrProvinceName,
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// A leaf's subject: `CN=<node>`.
pub(crate) fn leaf_subject(node: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, node.to_string());
    dn
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
