//! Tenants: who a token speaks for, what it may see, and which repositories of the
//! daemon's registries it owns.
//!
//! A token belongs to one tenant, as a member or as the tenant's admin; an operator's
//! token belongs to none and sees every tenant. Tokens are known only by their hashes
//! ([`token_hash`]), so the [`Directory`] can be written where a fleet shares it (the
//! database) without holding a token.
//!
//! ```
//! use slipway_api::tenant::{token_hash, Directory, Role, Tenant};
//! let dir = Directory {
//!     tenants: vec![Tenant {
//!         name: "team-a".into(),
//!         token_hashes: vec![token_hash("a-token")],
//!         admin_token_hashes: vec![],
//!         repositories: vec!["team-a/*".into()],
//!     }],
//!     operator_token_hashes: vec![token_hash("ops")],
//! };
//! let caller = dir.authenticate("a-token").unwrap();
//! assert_eq!((caller.tenant.as_str(), caller.role), ("team-a", Role::Member));
//! assert!(dir.repositories_of("team-a").allows("team-a/app"));
//! assert!(!dir.repositories_of("team-a").allows("team-b/app"));
//! assert_eq!(dir.authenticate("ops").unwrap().visible(), None);
//! ```

use serde::{Deserialize, Serialize};
use sha2::Digest;

/// The tenant of the flat `tokens` setting, and of everything made before tenants.
pub const DEFAULT_TENANT: &str = "default";

/// A tenant's name: 1 to 63 lowercase letters, digits, `-` or `_`, starting with a
/// letter or digit (it appears in cache namespaces, logs and the API).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tenant name {name:?} must be 1 to 63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
        ))
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// Sees and changes its tenant's runs, tasks and webhooks.
    Member,
    /// A member who may also keep a task's secrets when changing where its source comes from.
    Admin,
    /// The daemon's operator: sees every tenant, acts for any.
    Operator,
}

/// Who is asking: the tenant whose things a request sees and makes, and its role.
/// An operator acts for `tenant` (the default tenant, unless the request names one)
/// but sees every tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub tenant: String,
    pub role: Role,
    /// The hash of the token it came with (empty on a daemon without tokens): what is
    /// counted when one token's open streams are capped.
    pub token_hash: String,
}

impl Caller {
    /// An operator acting for `tenant`.
    pub fn operator(tenant: &str) -> Caller {
        Caller {
            tenant: tenant.to_string(),
            role: Role::Operator,
            token_hash: String::new(),
        }
    }

    /// The tenant whose things this caller may see; `None` when it sees every tenant.
    pub fn visible(&self) -> Option<&str> {
        match self.role {
            Role::Operator => None,
            Role::Member | Role::Admin => Some(&self.tenant),
        }
    }

    /// Whether this caller may see what belongs to `tenant`.
    pub fn sees(&self, tenant: &str) -> bool {
        self.visible().is_none_or(|t| t == tenant)
    }

    /// Whether this caller administers its tenant (an operator administers every one).
    pub fn is_admin(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Operator)
    }
}

/// Repositories of the daemon's registries, as patterns: `team-a/app` is that
/// repository, `team-a/*` every repository under `team-a/` (at any depth), `*` all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repositories(pub Vec<String>);

impl Repositories {
    /// Checks one pattern; the message names it.
    pub fn check_pattern(pattern: &str) -> Result<(), String> {
        let body = pattern.strip_suffix("/*").unwrap_or(pattern);
        let ok = pattern == "*"
            || (!body.is_empty()
                && body.split('/').all(|c| {
                    !c.is_empty()
                        && c.chars()
                            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                }));
        if ok {
            Ok(())
        } else {
            Err(format!(
                "repository pattern {pattern:?} must be a repository (team-a/app), one ending in /* (team-a/*), or *"
            ))
        }
    }

    pub fn allows(&self, repository: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix("/*") {
            _ if p == "*" => true,
            Some(prefix) => repository
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1),
            None => repository == p,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A tenant as the daemon knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    pub name: String,
    pub token_hashes: Vec<String>,
    pub admin_token_hashes: Vec<String>,
    /// Repository patterns ([`Repositories`]) of the daemon's registries it owns.
    pub repositories: Vec<String>,
}

/// Every tenant and the operators' tokens, by hash: what a token is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub tenants: Vec<Tenant>,
    pub operator_token_hashes: Vec<String>,
}

/// The hash a token is known by. Tokens are random secrets, not passwords: one
/// SHA-256 in its own domain is enough, and any node computes the same.
pub fn token_hash(token: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(b"slipway-token-v1\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

impl Directory {
    /// A daemon without any token: it listens on loopback and everyone is its operator.
    pub fn is_open(&self) -> bool {
        self.operator_token_hashes.is_empty()
            && self
                .tenants
                .iter()
                .all(|t| t.token_hashes.is_empty() && t.admin_token_hashes.is_empty())
    }

    /// Who `token` speaks for, if anyone. Every hash is compared in constant time.
    pub fn authenticate(&self, token: &str) -> Option<Caller> {
        if token.is_empty() {
            return None;
        }
        self.caller_of_hash(&token_hash(token))
    }

    /// Who the token with this hash speaks for.
    pub fn caller_of_hash(&self, hash: &str) -> Option<Caller> {
        let hit = |hashes: &[String]| {
            hashes
                .iter()
                .fold(false, |found, h| found | crate::secrets::same(h.as_bytes(), hash.as_bytes()))
        };
        if hit(&self.operator_token_hashes) {
            return Some(Caller {
                token_hash: hash.to_string(),
                ..Caller::operator(DEFAULT_TENANT)
            });
        }
        self.tenants.iter().find_map(|t| {
            let role = if hit(&t.admin_token_hashes) {
                Role::Admin
            } else if hit(&t.token_hashes) {
                Role::Member
            } else {
                return None;
            };
            Some(Caller {
                tenant: t.name.clone(),
                role,
                token_hash: hash.to_string(),
            })
        })
    }

    /// Every token hash, for signing sessions with whichever one signed in.
    pub fn all_hashes(&self) -> impl Iterator<Item = &str> {
        self.operator_token_hashes
            .iter()
            .chain(self.tenants.iter().flat_map(|t| t.token_hashes.iter().chain(&t.admin_token_hashes)))
            .map(String::as_str)
    }

    pub fn tenant(&self, name: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.name == name)
    }

    /// The repositories `tenant` owns in the daemon's registries (none if unknown).
    pub fn repositories_of(&self, tenant: &str) -> Repositories {
        Repositories(self.tenant(tenant).map(|t| t.repositories.clone()).unwrap_or_default())
    }

    /// The tenants whose patterns take `repository` in the daemon's registries.
    pub fn owners_of(&self, repository: &str) -> Vec<&str> {
        self.tenants
            .iter()
            .filter(|t| Repositories(t.repositories.clone()).allows(repository))
            .map(|t| t.name.as_str())
            .collect()
    }

    /// Checks names, patterns, and that no token is two tenants'.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for t in &self.tenants {
            check_name(&t.name)?;
            for p in &t.repositories {
                Repositories::check_pattern(p).map_err(|e| format!("tenant {}: {e}", t.name))?;
            }
        }
        for h in self.all_hashes() {
            if !seen.insert(h) {
                return Err(
                    "a token is given twice (to two tenants, or as a tenant's and an operator's token); each token must be one caller's"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        Directory {
            tenants: vec![
                Tenant {
                    name: "team-a".into(),
                    token_hashes: vec![token_hash("a1"), token_hash("a2")],
                    admin_token_hashes: vec![token_hash("a-admin")],
                    repositories: vec!["team-a/*".into(), "shared/base".into()],
                },
                Tenant {
                    name: "team-b".into(),
                    token_hashes: vec![token_hash("b1")],
                    admin_token_hashes: vec![],
                    repositories: vec![],
                },
            ],
            operator_token_hashes: vec![token_hash("ops")],
        }
    }

    #[test]
    fn tokens_speak_for_their_tenant() {
        let d = dir();
        assert_eq!(
            d.authenticate("a2").unwrap(),
            Caller {
                tenant: "team-a".into(),
                role: Role::Member,
                token_hash: token_hash("a2"),
            }
        );
        assert_eq!(d.authenticate("a-admin").unwrap().role, Role::Admin);
        assert_eq!(d.authenticate("b1").unwrap().visible(), Some("team-b"));
        assert!(d.authenticate("ops").unwrap().sees("team-b"));
        assert!(!d.authenticate("a1").unwrap().sees("team-b"));
        assert_eq!(d.authenticate("nope"), None);
        assert_eq!(d.authenticate(""), None);
        assert!(!d.is_open() && Directory::default().is_open());
        assert!(d.check().is_ok());
    }

    #[test]
    fn repository_patterns() {
        let d = dir();
        let a = d.repositories_of("team-a");
        for (repo, allowed) in [
            ("team-a/app", true),
            ("team-a/x/y", true),
            ("team-a", false),
            ("team-ab/app", false),
            ("shared/base", true),
            ("shared/base2", false),
            ("team-b/app", false),
        ] {
            assert_eq!(a.allows(repo), allowed, "{repo}");
        }
        assert!(!d.repositories_of("team-b").allows("team-b/app"));
        assert!(!d.repositories_of("nobody").allows("x"));
        assert!(Repositories(vec!["*".into()]).allows("anything/at/all"));
        for bad in ["", "/x", "Team/x", "a//b", "a/*/b", "**"] {
            assert!(Repositories::check_pattern(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_token_is_one_callers() {
        let mut d = dir();
        d.tenants[1].token_hashes.push(token_hash("a1"));
        let e = d.check().unwrap_err();
        assert!(e.contains("twice") && !e.contains("a1"), "{e}");
        for bad in ["", "Team", "-x", "a b", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
