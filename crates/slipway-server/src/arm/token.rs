//! The access tokens the Azure CLI is given for a daemon's token: compact JWTs signed
//! with HMAC-SHA256 by a key of the daemon (derived from the fleet key in a fleet, so a
//! node accepts what another issued). `az` reads their claims without checking them and
//! needs `tid`; the daemon checks the signature, the expiry and, on every call, that the
//! token it was issued for still names a caller (a token taken away stops at once).
//!
//! Hand-written, not `jsonwebtoken`: one fixed algorithm over two base64url parts is a
//! few lines, and refusing every other header is the safest way to read one.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The only header a token may have.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// How long an issued token lasts, in seconds.
pub const LIFETIME_SECONDS: i64 = 3600;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The audience the client asked for (`scope` without `/.default`).
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The caller's tenant: `az` reads it as the Azure tenant.
    pub tid: String,
    /// The client id the service principal logged in with.
    pub appid: String,
    pub oid: String,
    /// The hash of the daemon token it was issued for.
    pub sub: String,
}

/// Signs and checks tokens with one key (and, while a fleet key rotates, checks with
/// the key it replaced too).
#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl Signer {
    pub fn new(key: Vec<u8>, previous: Option<Vec<u8>>) -> Signer {
        Signer { key, previous }
    }

    /// The signing key derived from a fleet key's bytes: the fleet key itself is never
    /// used for anything but sealing.
    pub fn derive(secret: &[u8]) -> Vec<u8> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(b"slipway-arm-token-v1");
        mac.finalize().into_bytes().to_vec()
    }

    pub fn issue(&self, claims: &Claims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let body = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
        let signature = sign(&self.key, body.as_bytes());
        format!("{body}.{}", B64.encode(signature))
    }

    /// The claims of `token` if this daemon (or its fleet) signed it and it is valid at
    /// `now` (seconds); why not, otherwise.
    pub fn check(&self, token: &str, now: i64) -> Result<Claims, &'static str> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("the token is not a JWT");
        };
        if B64.decode(header).ok().as_deref() != Some(HEADER.as_bytes()) {
            return Err("the token was not issued by this daemon");
        }
        let given = B64.decode(signature).map_err(|_| "the token's signature is not base64url")?;
        let body = format!("{header}.{payload}");
        let signed_by = |key: &Vec<u8>| verify(key, body.as_bytes(), &given);
        if !signed_by(&self.key) && !self.previous.as_ref().is_some_and(signed_by) {
            return Err("the token's signature does not match");
        }
        let claims: Claims = B64
            .decode(payload)
            .ok()
            .and_then(|p| serde_json::from_slice(&p).ok())
            .ok_or("the token's claims are unreadable")?;
        if now >= claims.exp {
            return Err("the token has expired; log in again");
        }
        if now + 300 < claims.nbf {
            return Err("the token is not valid yet");
        }
        Ok(claims)
    }
}

impl Signer {
    /// The query of a shared-access URL for `path`: `sp` (`r` read, `w` write), `se`
    /// (expiry, seconds) and `sig`, which binds both to the path. The query is the
    /// credential, as Azure Blob's SAS is.
    pub fn sas(&self, path: &str, permission: char, expires: i64) -> String {
        let sig = B64.encode(sign(&self.key, sas_body(path, permission, expires).as_bytes()));
        format!("sv=2021-08-06&sp={permission}&se={expires}&sig={sig}")
    }

    /// Whether `query` is a valid shared-access query for `path` and `permission` at `now`.
    pub fn check_sas(
        &self,
        path: &str,
        permission: char,
        query: &std::collections::HashMap<String, String>,
        now: i64,
    ) -> Result<(), &'static str> {
        let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
        if get("sp") != permission.to_string() {
            return Err("the URL does not allow this");
        }
        let expires: i64 = get("se").parse().map_err(|_| "the URL has no expiry")?;
        if now >= expires {
            return Err("the URL has expired");
        }
        let given = B64.decode(get("sig")).map_err(|_| "the URL's signature is not base64url")?;
        let body = sas_body(path, permission, expires);
        let signed_by = |key: &Vec<u8>| verify(key, body.as_bytes(), &given);
        if signed_by(&self.key) || self.previous.as_ref().is_some_and(signed_by) {
            Ok(())
        } else {
            Err("the URL's signature does not match")
        }
    }
}

/// What a shared-access signature signs: never a JWT's shape (`header.payload`).
fn sas_body(path: &str, permission: char, expires: i64) -> String {
    format!("sas\n{permission}\n{path}\n{expires}")
}

fn sign(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Compares in constant time.
fn verify(key: &[u8], body: &[u8], given: &[u8]) -> bool {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(body);
    mac.verify_slice(given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            aud: "https://slipway/".into(),
            iss: "https://slipway/adfs".into(),
            iat: 0,
            nbf: 0,
            exp,
            tid: "team-a".into(),
            appid: "slipway".into(),
            oid: "slipway".into(),
            sub: "hash".into(),
        }
    }

    #[test]
    fn a_token_checks_until_it_expires_and_only_under_its_key() {
        let signer = Signer::new(Signer::derive(b"k1"), None);
        let token = signer.issue(&claims(100));
        assert_eq!(signer.check(&token, 99).unwrap().tid, "team-a");
        assert!(signer.check(&token, 100).is_err(), "expired");
        let other = Signer::new(Signer::derive(b"k2"), None);
        assert!(other.check(&token, 1).is_err(), "another daemon's key");
        let rotating = Signer::new(Signer::derive(b"k2"), Some(Signer::derive(b"k1")));
        assert!(rotating.check(&token, 1).is_ok(), "the key being replaced still checks");
    }

    #[test]
    fn a_shared_access_url_is_bound_to_its_path_permission_and_expiry() {
        let signer = Signer::new(Signer::derive(b"k1"), None);
        let query = |q: &str| -> std::collections::HashMap<String, String> { form_urlencoded::parse(q.as_bytes()).into_owned().collect() };
        let q = query(&signer.sas("/arm-blobs/logs/r1", 'r', 100));
        assert!(signer.check_sas("/arm-blobs/logs/r1", 'r', &q, 99).is_ok());
        assert!(signer.check_sas("/arm-blobs/logs/r2", 'r', &q, 99).is_err(), "another path");
        assert!(signer.check_sas("/arm-blobs/logs/r1", 'w', &q, 99).is_err(), "another permission");
        assert!(signer.check_sas("/arm-blobs/logs/r1", 'r', &q, 100).is_err(), "expired");
        let mut later = q.clone();
        later.insert("se".into(), "200".into());
        assert!(signer.check_sas("/arm-blobs/logs/r1", 'r', &later, 150).is_err(), "a moved expiry");
    }

    #[test]
    fn forged_and_altered_tokens_are_refused() {
        let signer = Signer::new(Signer::derive(b"k1"), None);
        let token = signer.issue(&claims(100));
        let parts: Vec<&str> = token.split('.').collect();
        let mut raised = claims(100);
        raised.tid = "team-b".into();
        let altered = format!("{}.{}.{}", parts[0], B64.encode(serde_json::to_vec(&raised).unwrap()), parts[2]);
        assert!(signer.check(&altered, 1).is_err());
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        assert!(signer.check(&none, 1).is_err());
        assert!(signer.check("abc", 1).is_err());
        assert!(signer.check(&format!("{token}.x"), 1).is_err());
    }
}
