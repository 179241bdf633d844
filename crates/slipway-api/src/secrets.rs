//! Secret values of a run, typed: what it keeps out of the database until it ends.

use serde::{Deserialize, Serialize};
pub use slipway_plan::Credential;
use std::collections::BTreeMap;

/// What a run keeps out of the database, until it ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSecrets {
    /// Secret values and secret build arguments, by name.
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Registry host → its credential, for pulls and pushes.
    #[serde(default)]
    pub registry: BTreeMap<String, Credential>,
    /// Git host (with port) → its credential, for fetching the source.
    #[serde(default)]
    pub git: BTreeMap<String, Credential>,
}

impl RunSecrets {
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.registry.is_empty() && self.git.is_empty()
    }

    /// Every value to mask in what the run prints: the secrets, and each credential,
    /// whole (`user:secret`) and its secret alone.
    pub fn masked(&self) -> Vec<String> {
        let credentials = self.registry.values().chain(self.git.values());
        self.values
            .values()
            .cloned()
            .chain(credentials.flat_map(|c| [c.text(), c.secret.clone()]))
            .collect()
    }
}

/// Compares a secret given with one kept, in time independent of where they differ
/// (only their lengths show).
pub fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= (*x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_mask_their_password_half() {
        let s = RunSecrets {
            values: BTreeMap::from([("TOKEN".into(), "t0k".into())]),
            registry: BTreeMap::from([("reg.io".into(), "user:pa55".into())]),
            git: BTreeMap::from([("git.io".into(), "bot:g1t".into())]),
        };
        let masked = s.masked();
        for v in ["t0k", "pa55", "g1t", "user:pa55"] {
            assert!(masked.iter().any(|m| m == v), "{v} in {masked:?}");
        }
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<RunSecrets>(&json).unwrap(), s);
    }
}
