//! A fleet's secrets sealed with its key: AES-256-GCM (RustCrypto's `aes-gcm`), a
//! fresh 96-bit nonce each time, the owner's key (a run id, `task-…`, `webhook-…`) as
//! associated data (a sealed value moved to another owner does not open). The key is 32 bytes given as base64 in the settings and
//! never stored; the database holds only `nonce || ciphertext`.

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;

const NONCE_BYTES: usize = 12;

/// The fleet key.
#[derive(Clone)]
pub struct FleetKey(Aes256Gcm);

impl std::fmt::Debug for FleetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FleetKey(***)")
    }
}

impl FleetKey {
    /// Reads the key from base64; the error never shows the text.
    pub fn parse(text: &str) -> Result<FleetKey, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "fleet_key is not base64".to_string())?;
        Aes256Gcm::new_from_slice(&bytes).map(FleetKey).map_err(|_| {
            format!(
                "fleet_key must be 32 bytes (it is {}); make one with `openssl rand -base64 32`",
                bytes.len()
            )
        })
    }

    /// `nonce || ciphertext` of `plain`, bound to `owner`.
    pub fn seal(&self, owner: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
        let nonce = Nonce::generate();
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| "sealing the secrets failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain text of what [`FleetKey::seal`] made for `owner`.
    pub fn open(&self, owner: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < NONCE_BYTES {
            return Err(format!("the sealed secrets of {owner} are cut short"));
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        let nonce = Nonce::try_from(nonce).map_err(|_| "bad nonce".to_string())?;
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: body,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| format!("the secrets of {owner} do not open with this node's fleet_key (is it the fleet's?)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> FleetKey {
        FleetKey::parse(&base64::engine::general_purpose::STANDARD.encode([byte; 32])).unwrap()
    }

    #[test]
    fn sealed_secrets_open_for_their_run_and_key_only() {
        let k = key(1);
        let sealed = k.seal("run1", b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(k.open("run1", &sealed).unwrap(), b"hunter2");
        assert!(k.open("run2", &sealed).is_err(), "bound to its run");
        assert!(key(2).open("run1", &sealed).is_err(), "and to its key");
        assert_ne!(k.seal("run1", b"hunter2").unwrap(), sealed, "a fresh nonce each time");
    }

    #[test]
    fn bad_keys_are_named_not_shown() {
        let e = FleetKey::parse("c2hvcnQ=").unwrap_err();
        assert!(e.contains("32 bytes") && !e.contains("c2hvcnQ"), "{e}");
        assert!(FleetKey::parse("not base64!").unwrap_err().contains("base64"));
    }
}
