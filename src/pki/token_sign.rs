//! Signing through a token key: [`TokenSigner`] is the rcgen [`SigningKey`] the issuing
//! code sees. It reads the key's public half from the token (EC point, Edwards key or RSA
//! modulus and exponent) and turns what the token returns into the DER X.509 wants (an
//! ECDSA `r‖s` into an `ECDSA-Sig-Value`, an RSA key into an `RSAPublicKey`).

use std::sync::{Arc, Mutex};

use cryptoki::error::Error as CkError;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectHandle};
use rcgen::{PublicKeyData, SignatureAlgorithm, SigningKey};
use sha2::Digest;

use super::super::key::TokenKeyRef;
use super::{Token, TokenError, ED25519_NAME, ED25519_OID, P256_OID, P384_OID};

impl Token {
    /// A signer for the key `reference` names, with its public key read from the token.
    pub fn signer(self: &Arc<Self>, reference: &TokenKeyRef) -> Result<TokenSigner, String> {
        self.signer_inner(reference).map_err(|e| e.to_string())
    }

    fn signer_inner(self: &Arc<Self>, reference: &TokenKeyRef) -> Result<TokenSigner, TokenError> {
        let handle = self.private_of(reference)?;
        let label = &reference.label;
        let key_type = self
            .attributes(
                handle,
                &[AttributeType::KeyType],
                &format!("read the type of key {label:?}"),
            )?
            .into_iter()
            .find_map(|a| match a {
                Attribute::KeyType(t) => Some(t),
                _ => None,
            })
            .ok_or_else(|| self.op(&format!("read key {label:?}"), "it has no key type"))?;
        let public = self.public_object(handle, label)?;
        let (kind, der) = if key_type == KeyType::EC || key_type == KeyType::EC_EDWARDS {
            self.ec_public(public, label)?
        } else if key_type == KeyType::RSA {
            (Kind::Rsa, self.rsa_public(public, label)?)
        } else {
            return Err(self.op(
                &format!("use key {label:?}"),
                "it is neither an EC, Edwards nor RSA key",
            ));
        };
        Ok(TokenSigner {
            token: Arc::clone(self),
            handle,
            kind,
            public: der,
            last_error: Mutex::new(None),
        })
    }

    /// The curve of the EC or Edwards public key object `public` and its point.
    fn ec_public(&self, public: ObjectHandle, label: &str) -> Result<(Kind, Vec<u8>), TokenError> {
        let [params, point] = self.public_parts(
            public,
            [AttributeType::EcParams, AttributeType::EcPoint],
            label,
        )?;
        let kind = match params.as_slice() {
            P256_OID => Kind::EcdsaP256,
            P384_OID => Kind::EcdsaP384,
            ED25519_OID | ED25519_NAME => Kind::Ed25519,
            _ => {
                return Err(self.op(
                    &format!("use key {label:?}"),
                    "its curve is not P-256, P-384 or Ed25519",
                ))
            }
        };
        Ok((kind, unwrap_octet_string(&point, kind.point_len())))
    }

    /// The DER `RSAPublicKey` of the RSA public key object `public`.
    fn rsa_public(&self, public: ObjectHandle, label: &str) -> Result<Vec<u8>, TokenError> {
        let [n, e] = self.public_parts(
            public,
            [AttributeType::Modulus, AttributeType::PublicExponent],
            label,
        )?;
        Ok(rsa_public_key_der(&n, &e))
    }

    /// The byte values of the attributes `types` of the public key object `public`, in
    /// that order (empty where the token returned none).
    fn public_parts(
        &self,
        public: ObjectHandle,
        types: [AttributeType; 2],
        label: &str,
    ) -> Result<[Vec<u8>; 2], TokenError> {
        let attrs =
            self.attributes(public, &types, &format!("read the public key of {label:?}"))?;
        let mut parts = [Vec::new(), Vec::new()];
        for a in attrs {
            let slot = types.iter().position(|t| *t == a.attribute_type());
            if let (
                Some(i),
                Attribute::EcParams(v)
                | Attribute::EcPoint(v)
                | Attribute::Modulus(v)
                | Attribute::PublicExponent(v),
            ) = (slot, a)
            {
                parts[i] = v;
            }
        }
        Ok(parts)
    }
}

/// The kind of a token key, from its key type and curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa,
}

impl Kind {
    fn point_len(self) -> usize {
        match self {
            Kind::EcdsaP256 => 65,
            Kind::EcdsaP384 => 97,
            Kind::Ed25519 => 32,
            Kind::Rsa => 0,
        }
    }
}

/// Signs through a token key; rcgen sees an ordinary [`SigningKey`].
pub struct TokenSigner {
    token: Arc<Token>,
    handle: ObjectHandle,
    kind: Kind,
    /// `der_bytes`: the EC point, the raw Ed25519 key, or the DER `RSAPublicKey`.
    public: Vec<u8>,
    /// The token's message for the last failed signature (rcgen's error carries none).
    last_error: Mutex<Option<String>>,
}

impl TokenSigner {
    /// The token's reason for the last failed signature, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let session = self.token.session();
        let fail = |e: CkError| format!("the token refused to sign: {e}");
        // ECDSA: the token signs the digest and returns the raw `r‖s`, `half` bytes each.
        let ecdsa = |digest: &[u8], half: usize| {
            let raw = session
                .sign(&Mechanism::Ecdsa, self.handle, digest)
                .map_err(fail)?;
            ecdsa_der(&raw, half)
        };
        match self.kind {
            Kind::EcdsaP256 => ecdsa(&sha2::Sha256::digest(msg), 32),
            Kind::EcdsaP384 => ecdsa(&sha2::Sha384::digest(msg), 48),
            Kind::Ed25519 => {
                let params = EddsaParams::new(EddsaSignatureScheme::Pure);
                session
                    .sign(&Mechanism::Eddsa(params), self.handle, msg)
                    .map_err(fail)
            }
            Kind::Rsa => session
                .sign(&Mechanism::Sha256RsaPkcs, self.handle, msg)
                .map_err(fail),
        }
    }
}

impl PublicKeyData for TokenSigner {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.kind {
            Kind::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Kind::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Kind::Ed25519 => &rcgen::PKCS_ED25519,
            Kind::Rsa => &rcgen::PKCS_RSA_SHA256,
        }
    }
}

impl SigningKey for TokenSigner {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.try_sign(msg).map_err(|message| {
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
            rcgen::Error::RemoteKeyError
        })
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the point on most tokens, bare on a few.
fn unwrap_octet_string(value: &[u8], point_len: usize) -> Vec<u8> {
    match value {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && rest.len() == point_len => {
            rest.to_vec()
        }
        _ => value.to_vec(),
    }
}

/// The DER `ECDSA-Sig-Value` (SEQUENCE of two INTEGERs) of a raw `r‖s` signature.
fn ecdsa_der(raw: &[u8], half: usize) -> Result<Vec<u8>, String> {
    if raw.len() != 2 * half {
        return Err(format!(
            "the token returned a {}-byte ECDSA signature, expected {}",
            raw.len(),
            2 * half
        ));
    }
    let (r, s) = raw.split_at(half);
    let mut body = der_integer(r);
    body.extend(der_integer(s));
    Ok(der_tlv(0x30, &body))
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut body = der_integer(n);
    body.extend(der_integer(e));
    der_tlv(0x30, &body)
}

/// A non-negative DER INTEGER from big-endian bytes.
fn der_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = match bytes.iter().position(|b| *b != 0) {
        Some(i) => bytes[i..].to_vec(),
        None => vec![0],
    };
    let mut content = Vec::with_capacity(trimmed.len() + 1);
    if trimmed[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend(trimmed);
    der_tlv(0x02, &content)
}

/// A DER tag-length-value, with the definite length form DER requires.
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signatures_become_der() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80; // r needs a leading zero byte
        raw[63] = 1; // s is 1
        let der = ecdsa_der(&raw, 32).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..5], &[0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 1, 1]);
        assert!(ecdsa_der(&raw[..63], 32).is_err());
    }

    #[test]
    fn ec_points_are_unwrapped_once() {
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend(&point);
        assert_eq!(unwrap_octet_string(&wrapped, 65), point);
        assert_eq!(unwrap_octet_string(&point, 65), point);
    }
}
