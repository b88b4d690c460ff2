//! The keys in a token: generating a CA generation's key pair (token object, sensitive,
//! not extractable, sign only), finding a key by label and `CKA_ID`, the public key object
//! beside it, and the attributes certroll checks.

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};

use super::super::key::TokenKeyRef;
use super::{Token, TokenError, ED25519_OID, P256_OID, P384_OID};
use crate::inventory::KeyAlgorithm;

impl Token {
    /// Generates a key pair labelled `label` in the token (token object, sensitive, not
    /// extractable, sign only). A key already labelled so (left by an interrupted run) is
    /// reused rather than doubled.
    pub fn generate(&self, alg: KeyAlgorithm, label: &str) -> Result<TokenKeyRef, TokenError> {
        if let Some(existing) = self.find_private(label, None)? {
            return self.reference(existing, label);
        }
        let id: [u8; 16] = rand::random();
        let (mechanism, public_extra) = keygen_mechanism(alg);
        let mut public = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        public.extend(public_extra);
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.to_vec()),
        ];
        self.session()
            .generate_key_pair(&mechanism, &public, &private)
            .map_err(|e| self.op(&format!("generate {} key {label:?}", alg.as_str()), e))?;
        Ok(self.key_ref(label, &id))
    }

    /// The reference of an existing private key labelled `label`.
    pub fn find(&self, label: &str) -> Result<TokenKeyRef, TokenError> {
        let handle = self
            .find_private(label, None)?
            .ok_or_else(|| self.no_key(label))?;
        self.reference(handle, label)
    }

    /// Whether the private key `reference` names may leave the token (a test of the
    /// attributes certroll sets: `CKA_EXTRACTABLE` false, `CKA_SENSITIVE` true).
    pub fn is_extractable(&self, reference: &TokenKeyRef) -> Result<bool, TokenError> {
        let handle = self.private_of(reference)?;
        let attrs = self.attributes(
            handle,
            &[AttributeType::Extractable, AttributeType::Sensitive],
            "read key attributes",
        )?;
        let mut extractable = true;
        let mut sensitive = false;
        for a in attrs {
            match a {
                Attribute::Extractable(x) => extractable = x,
                Attribute::Sensitive(s) => sensitive = s,
                _ => {}
            }
        }
        Ok(extractable || !sensitive)
    }

    /// The private key `reference` names: its label, and its `CKA_ID` when it has one.
    pub(super) fn private_of(&self, reference: &TokenKeyRef) -> Result<ObjectHandle, TokenError> {
        let id = hex::decode(&reference.id_hex).unwrap_or_default();
        self.find_private(&reference.label, Some(&id))?
            .ok_or_else(|| self.no_key(&reference.label))
    }

    /// The attributes `types` of `handle`; `action` names the read in an error.
    pub(super) fn attributes(
        &self,
        handle: ObjectHandle,
        types: &[AttributeType],
        action: &str,
    ) -> Result<Vec<Attribute>, TokenError> {
        self.session()
            .get_attributes(handle, types)
            .map_err(|e| self.op(action, e))
    }

    fn key_ref(&self, label: &str, id: &[u8]) -> TokenKeyRef {
        TokenKeyRef {
            token: self.label.clone(),
            label: label.to_string(),
            id_hex: hex::encode(id),
        }
    }

    fn reference(&self, handle: ObjectHandle, label: &str) -> Result<TokenKeyRef, TokenError> {
        let id = self.id_of(handle)?;
        Ok(self.key_ref(label, &id))
    }

    fn id_of(&self, handle: ObjectHandle) -> Result<Vec<u8>, TokenError> {
        let attrs = self.attributes(handle, &[AttributeType::Id], "read a key's id")?;
        Ok(attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::Id(id) => Some(id),
                _ => None,
            })
            .unwrap_or_default())
    }

    /// The one private key labelled `label` (and with `CKA_ID` `id`, when given and not
    /// empty); an error if several carry the label.
    fn find_private(
        &self,
        label: &str,
        id: Option<&[u8]>,
    ) -> Result<Option<ObjectHandle>, TokenError> {
        let mut template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        if let Some(id) = id.filter(|id| !id.is_empty()) {
            template.push(Attribute::Id(id.to_vec()));
        }
        let found = self
            .session()
            .find_objects(&template)
            .map_err(|e| self.op(&format!("look up key {label:?}"), e))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            more => Err(self.op(
                &format!("look up key {label:?}"),
                format!(
                    "{} private keys carry that label; label each key once",
                    more.len()
                ),
            )),
        }
    }

    /// The public key object matching a private key: same `CKA_ID`, else same label.
    pub(super) fn public_object(
        &self,
        private: ObjectHandle,
        label: &str,
    ) -> Result<ObjectHandle, TokenError> {
        let id = self.id_of(private)?;
        let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
        if id.is_empty() {
            template.push(Attribute::Label(label.as_bytes().to_vec()));
        } else {
            template.push(Attribute::Id(id));
        }
        let found = self
            .session()
            .find_objects(&template)
            .map_err(|e| self.op(&format!("look up the public key of {label:?}"), e))?;
        found.first().copied().ok_or_else(|| {
            self.op(
                &format!("use key {label:?}"),
                "the token holds no public key object with its CKA_ID",
            )
        })
    }
}

/// The key-pair mechanism for `alg` and the public key's extra attributes (curve, or
/// modulus size and exponent).
fn keygen_mechanism(alg: KeyAlgorithm) -> (Mechanism<'static>, Vec<Attribute>) {
    match alg {
        KeyAlgorithm::EcdsaP256 => (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(P256_OID.to_vec())],
        ),
        KeyAlgorithm::EcdsaP384 => (
            Mechanism::EccKeyPairGen,
            vec![Attribute::EcParams(P384_OID.to_vec())],
        ),
        KeyAlgorithm::Ed25519 => (
            Mechanism::EccEdwardsKeyPairGen,
            vec![Attribute::EcParams(ED25519_OID.to_vec())],
        ),
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            let bits = alg.rsa_bits().unwrap_or(2048) as u64;
            (
                Mechanism::RsaPkcsKeyPairGen,
                vec![
                    Attribute::ModulusBits(bits.into()),
                    Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
                ],
            )
        }
    }
}
