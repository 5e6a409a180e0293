//! Encryption at rest for private keys and ACME credentials.
//!
//! AES-256-GCM (RustCrypto's `aes-gcm`) under `LANDLORD_MASTER_KEY`. A sealed value is
//! `version (1) ‖ key id (8) ‖ nonce (12) ‖ ciphertext+tag`. The key id (first bytes of
//! SHA-256 of the key) lets a later release hold several keys and rotate. The
//! associated data binds a value to its place (e.g. the hostname of a certificate key),
//! so a sealed key copied into another row does not decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", hex::encode(self.id))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed with another master key (id {0}); is LANDLORD_MASTER_KEY the one used before?")]
    WrongKey(String),
    #[error("sealed value does not authenticate (corrupted, or moved from another row)")]
    Forged,
}

impl MasterKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self {
            cipher: Aes256Gcm::new(&bytes.into()),
            id,
        }
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER_LEN || sealed[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let id = &sealed[1..1 + KEY_ID_LEN];
        if id != self.id {
            return Err(SealError::WrongKey(hex::encode(id)));
        }
        let nonce: [u8; NONCE_LEN] = sealed[1 + KEY_ID_LEN..HEADER_LEN]
            .try_into()
            .map_err(|_| SealError::Malformed)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SealError::Forged)
    }
}

/// The associated data a certificate's private key is sealed with.
pub fn certificate_key_context(hostname: &str) -> String {
    format!("cert-key:{hostname}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = MasterKey::new([7; 32]);
        let sealed = key.seal(b"secret", "cert:a.example.com");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open(&sealed, "cert:a.example.com").unwrap(), b"secret");
        assert!(matches!(
            key.open(&sealed, "cert:b.example.com"),
            Err(SealError::Forged)
        ));
        let other = MasterKey::new([8; 32]);
        assert!(matches!(
            other.open(&sealed, "cert:a.example.com"),
            Err(SealError::WrongKey(_))
        ));
        assert!(matches!(
            key.open(&sealed[..5], "x"),
            Err(SealError::Malformed)
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            key.open(&flipped, "cert:a.example.com"),
            Err(SealError::Forged)
        ));
    }
}
