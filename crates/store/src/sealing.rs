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

/// One AES-256-GCM key and its id.
#[derive(Clone)]
struct Key {
    cipher: Aes256Gcm,
    id: [u8; KEY_ID_LEN],
}

impl Key {
    fn new(bytes: [u8; 32]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self {
            cipher: Aes256Gcm::new(&bytes.into()),
            id,
        }
    }
}

/// `LANDLORD_MASTER_KEY`, and during a rotation `LANDLORD_MASTER_KEY_PREVIOUS`: values are
/// sealed under the current key and opened under whichever of the two sealed them.
#[derive(Clone)]
pub struct MasterKey {
    current: Key,
    previous: Option<Key>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.previous {
            None => write!(f, "MasterKey({})", hex::encode(self.current.id)),
            Some(p) => write!(
                f,
                "MasterKey({}, previous {})",
                hex::encode(self.current.id),
                hex::encode(p.id)
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error(
        "sealed with another master key (id {0}); is LANDLORD_MASTER_KEY the one used before (or, during a rotation, LANDLORD_MASTER_KEY_PREVIOUS)?"
    )]
    WrongKey(String),
    #[error("sealed value does not authenticate (corrupted, or moved from another row)")]
    Forged,
}

impl MasterKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self {
            current: Key::new(bytes),
            previous: None,
        }
    }

    /// Also open values sealed under `bytes`, the key being rotated away from.
    pub fn with_previous(self, bytes: [u8; 32]) -> Self {
        Self {
            previous: Some(Key::new(bytes)),
            ..self
        }
    }

    /// The current key's id (hex), as written into every value it seals.
    pub fn id(&self) -> String {
        hex::encode(self.current.id)
    }

    /// The previous key's id (hex), during a rotation.
    pub fn previous_id(&self) -> Option<String> {
        self.previous.as_ref().map(|p| hex::encode(p.id))
    }

    /// The id bytes sealed values of the current key carry (for queries that find the
    /// values still sealed under another key).
    pub fn id_bytes(&self) -> [u8; KEY_ID_LEN] {
        self.current.id
    }

    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = self
            .current
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
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        if sealed.len() < HEADER_LEN || sealed[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let id = &sealed[1..1 + KEY_ID_LEN];
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::WrongKey(hex::encode(id)))?;
        let nonce: [u8; NONCE_LEN] = sealed[1 + KEY_ID_LEN..HEADER_LEN]
            .try_into()
            .map_err(|_| SealError::Malformed)?;
        key.cipher
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

/// The associated data the key of an order in flight is sealed with.
pub fn order_key_context(hostname: &str) -> String {
    format!("order-key:{hostname}")
}

/// The associated data an ACME account's credentials are sealed with.
pub fn acme_account_context(directory_url: &str) -> String {
    format!("acme-account:{directory_url}")
}

/// The associated data the local CA's key is sealed with.
pub const LOCAL_CA_CONTEXT: &str = "local-ca";

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

    #[test]
    fn a_rotating_key_opens_both_and_seals_under_the_new() {
        let old = MasterKey::new([7; 32]);
        let before = old.seal(b"secret", "ctx");
        let rotating = MasterKey::new([9; 32]).with_previous([7; 32]);
        assert_eq!(rotating.open(&before, "ctx").unwrap(), b"secret");
        let after = rotating.seal(b"secret", "ctx");
        assert_eq!(&after[1..9], &rotating.id_bytes());
        assert_eq!(rotating.previous_id(), Some(old.id()));
        let new_only = MasterKey::new([9; 32]);
        assert_eq!(new_only.open(&after, "ctx").unwrap(), b"secret");
        assert!(matches!(
            new_only.open(&before, "ctx"),
            Err(SealError::WrongKey(id)) if id == old.id()
        ));
    }
}
