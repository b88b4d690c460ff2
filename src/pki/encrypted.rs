//! `key_store = "encrypted"`: a CA key at rest as PKCS#8 encrypted PEM.
//!
//! The format is the one `openssl pkey -passin` and every TLS library read (`ENCRYPTED
//! PRIVATE KEY`, PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC), so an operator can take
//! the key elsewhere, or unlock it by hand, without certroll. The plain key exists only in
//! memory, in zeroized buffers.

use pkcs8::der::pem::LineEnding;
use pkcs8::der::Decode;
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo};
use zeroize::Zeroizing;

/// The PEM label of an encrypted PKCS#8 key.
pub const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// PBKDF2 rounds: OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
const ITERATIONS: u32 = 600_000;

/// Why a key could not be encrypted or decrypted. Messages never hold key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    #[error("wrong passphrase (the key does not decrypt with it)")]
    WrongPassphrase,
    #[error("not a PKCS#8 encrypted PEM key ({0})")]
    NotEncrypted(String),
    #[error("{0}")]
    Other(String),
}

/// Whether `pem` holds an `ENCRYPTED PRIVATE KEY` block.
pub fn is_encrypted(pem: &str) -> bool {
    pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

/// Encrypts a plain PKCS#8 PEM key with `passphrase`: fresh salt and IV every time.
pub fn encrypt_pem(plain_pem: &str, passphrase: &[u8]) -> Result<Zeroizing<String>, CryptError> {
    let (label, der) = pkcs8::der::pem::decode_vec(plain_pem.as_bytes())
        .map_err(|e| CryptError::Other(format!("the key is not PEM: {e}")))?;
    let der = Zeroizing::new(der);
    if label != "PRIVATE KEY" {
        return Err(CryptError::Other(format!(
            "the key is a {label:?} block, not PKCS#8"
        )));
    }
    let info = PrivateKeyInfo::from_der(&der)
        .map_err(|e| CryptError::Other(format!("the key is not PKCS#8: {e}")))?;
    let salt: [u8; 16] = rand::random();
    let iv: [u8; 16] = rand::random();
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(ITERATIONS, &salt, &iv)
        .map_err(|e| CryptError::Other(format!("encryption parameters: {e}")))?;
    let document = info
        .encrypt_with_params(params, passphrase)
        .map_err(|e| CryptError::Other(format!("encryption: {e}")))?;
    document
        .to_pem(ENCRYPTED_LABEL, LineEnding::LF)
        .map_err(|e| CryptError::Other(format!("PEM encoding: {e}")))
}

/// Decrypts an encrypted PKCS#8 PEM key into plain PKCS#8 PEM (`PRIVATE KEY`).
pub fn decrypt_pem(
    encrypted_pem: &str,
    passphrase: &[u8],
) -> Result<Zeroizing<String>, CryptError> {
    let (label, der) = pkcs8::der::pem::decode_vec(encrypted_pem.as_bytes())
        .map_err(|e| CryptError::NotEncrypted(format!("not PEM: {e}")))?;
    if label != ENCRYPTED_LABEL {
        return Err(CryptError::NotEncrypted(format!("a {label:?} block")));
    }
    let info = EncryptedPrivateKeyInfo::from_der(&der)
        .map_err(|e| CryptError::NotEncrypted(e.to_string()))?;
    // A wrong passphrase shows as bad padding or as plaintext that is not PKCS#8.
    let document = info
        .decrypt(passphrase)
        .map_err(|_| CryptError::WrongPassphrase)?;
    if PrivateKeyInfo::from_der(document.as_bytes()).is_err() {
        return Err(CryptError::WrongPassphrase);
    }
    document
        .to_pem("PRIVATE KEY", LineEnding::LF)
        .map_err(|e| CryptError::Other(format!("PEM encoding: {e}")))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    use super::*;

    fn plain() -> String {
        rcgen::KeyPair::generate().unwrap().serialize_pem()
    }

    #[test]
    fn round_trip() {
        let key = plain();
        let enc = encrypt_pem(&key, b"correct horse").unwrap();
        assert!(is_encrypted(&enc) && !enc.contains("BEGIN PRIVATE KEY"));
        let back = decrypt_pem(&enc, b"correct horse").unwrap();
        assert_eq!(
            pem::parse(back.as_str()).unwrap(),
            pem::parse(key.as_str()).unwrap()
        );
        // Fresh salt and IV: the same key never encrypts to the same text.
        assert_ne!(*encrypt_pem(&key, b"correct horse").unwrap(), *enc);
    }

    #[test]
    fn wrong_passphrase_is_named() {
        let enc = encrypt_pem(&plain(), b"right").unwrap();
        assert_eq!(
            decrypt_pem(&enc, b"wrong").unwrap_err(),
            CryptError::WrongPassphrase
        );
        assert!(matches!(
            decrypt_pem(&plain(), b"x").unwrap_err(),
            CryptError::NotEncrypted(_)
        ));
    }

    /// openssl, the second implementation, reads what certroll writes and writes what
    /// certroll reads.
    #[test]
    fn openssl_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let key = plain();
        let enc = encrypt_pem(&key, b"s3cret pass").unwrap();
        let key_path = dir.path().join("ca.key");
        let pass_path = dir.path().join("pass");
        std::fs::write(&key_path, enc.as_bytes()).unwrap();
        std::fs::write(&pass_path, "s3cret pass\n").unwrap();
        std::fs::set_permissions(&pass_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = Command::new("openssl")
            .args(["pkey", "-in"])
            .arg(&key_path)
            .arg("-passin")
            .arg(format!("file:{}", pass_path.display()))
            .output()
            .expect("openssl must be installed (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            pem::parse(&out.stdout).unwrap(),
            pem::parse(key.as_str()).unwrap()
        );
        let wrong = Command::new("openssl")
            .args(["pkey", "-in"])
            .arg(&key_path)
            .args(["-passin", "pass:wrong"])
            .output()
            .unwrap();
        assert!(!wrong.status.success());

        // And the other way: openssl encrypts, certroll decrypts.
        std::fs::write(dir.path().join("plain.key"), key.as_bytes()).unwrap();
        let by_openssl = Command::new("openssl")
            .args([
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-256-cbc",
                "-v2prf",
                "hmacWithSHA256",
            ])
            .arg("-passout")
            .arg(format!("file:{}", pass_path.display()))
            .arg("-in")
            .arg(dir.path().join("plain.key"))
            .output()
            .unwrap();
        assert!(by_openssl.status.success());
        let text = String::from_utf8(by_openssl.stdout).unwrap();
        let back = decrypt_pem(&text, b"s3cret pass").unwrap();
        assert_eq!(
            pem::parse(back.as_str()).unwrap(),
            pem::parse(key.as_str()).unwrap()
        );
    }
}
