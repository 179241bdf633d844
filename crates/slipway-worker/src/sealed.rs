//! A fleet's run secrets sealed with its key: AES-256-GCM (RustCrypto's `aes-gcm`), a
//! fresh 96-bit nonce per run, the run id as associated data (a sealed value moved to
//! another run does not open). The key is 32 bytes given as base64 in the settings and
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

    /// `nonce || ciphertext` of `plain`, bound to `run_id`.
    pub fn seal(&self, run_id: &str, plain: &[u8]) -> Result<Vec<u8>, String> {
        let nonce = Nonce::generate();
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: run_id.as_bytes(),
                },
            )
            .map_err(|_| "sealing the run's secrets failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain text of what [`FleetKey::seal`] made for `run_id`.
    pub fn open(&self, run_id: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
        if sealed.len() < NONCE_BYTES {
            return Err("the run's sealed secrets are cut short".into());
        }
        let (nonce, body) = sealed.split_at(NONCE_BYTES);
        let nonce = Nonce::try_from(nonce).map_err(|_| "bad nonce".to_string())?;
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: body,
                    aad: run_id.as_bytes(),
                },
            )
            .map_err(|_| "the run's secrets do not open with this node's fleet_key (is it the fleet's?)".to_string())
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
