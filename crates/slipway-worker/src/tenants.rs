//! The tenants a node knows: the directory its settings declare, shared with a fleet
//! through the database, and what a tenant may push where.

use crate::Node;
use slipway_api::tenant::{token_hash, Directory, Tenant, DEFAULT_TENANT};
use slipway_reference::registry_key;
use slipway_settings::Settings;
use std::sync::Arc;

/// The directory `settings` declare: every tenant with its tokens' hashes and its
/// repositories, the flat `tokens` as the default tenant's, and the operators'.
/// The default tenant owns every repository (`*`) unless `[tenants.default]` names its
/// own or other tenants are declared: then it owns only what it names.
pub fn directory_of(settings: &Settings) -> Result<Directory, String> {
    let hashes = |tokens: &[String]| tokens.iter().map(|t| token_hash(t)).collect::<Vec<_>>();
    let mut tenants: Vec<Tenant> = settings
        .tenants
        .iter()
        .map(|(name, t)| Tenant {
            name: name.clone(),
            token_hashes: hashes(&t.tokens),
            admin_token_hashes: hashes(&t.admin_tokens),
            repositories: t.repositories.clone(),
        })
        .collect();
    let others = tenants.iter().any(|t| t.name != DEFAULT_TENANT);
    let default = match tenants.iter_mut().find(|t| t.name == DEFAULT_TENANT) {
        Some(t) => t,
        None => {
            tenants.push(Tenant {
                name: DEFAULT_TENANT.into(),
                token_hashes: Vec::new(),
                admin_token_hashes: Vec::new(),
                repositories: Vec::new(),
            });
            tenants.last_mut().expect("just pushed")
        }
    };
    default.token_hashes.extend(hashes(&settings.tokens));
    let named_own = settings.tenants.get(DEFAULT_TENANT).is_some_and(|t| !t.repositories.is_empty());
    if !named_own && !others {
        default.repositories = vec!["*".into()];
    }
    let directory = Directory {
        tenants,
        operator_token_hashes: hashes(&settings.admin_tokens),
    };
    directory.check().map_err(|e| format!("tenants: {e}"))?;
    Ok(directory)
}

/// Whether the database is one several nodes share (PostgreSQL): then a node that
/// declares no token takes the fleet's directory from it.
fn shared_database(settings: &Settings) -> bool {
    settings.database.starts_with("postgres")
}

impl Node {
    /// The tenant directory in force on this node.
    pub fn directory(&self) -> Arc<Directory> {
        self.directory.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// At start: a node whose settings declare tokens (or any node of one machine)
    /// writes its directory for the fleet; one that declares none reads the fleet's.
    pub async fn publish_directory(&self) -> Result<(), String> {
        let own = directory_of(&self.settings)?;
        if !own.is_open() || !shared_database(&self.settings) {
            self.store.put_directory(&own).await.map_err(|e| e.to_string())?;
            self.set_directory(own);
            return Ok(());
        }
        self.refresh_directory().await;
        Ok(())
    }

    /// Reads the fleet's directory again (a node that declares no token of its own
    /// follows what another node wrote).
    pub async fn refresh_directory(&self) {
        if !shared_database(&self.settings) {
            return;
        }
        match self.store.directory().await {
            Ok(Some(d)) => self.set_directory(d),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "reading the tenant directory failed; keeping the last one"),
        }
    }

    fn set_directory(&self, d: Directory) {
        *self.directory.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(d);
    }

    /// The registries whose repositories tenants own: the daemon's own (`registry`)
    /// and those it has credentials for.
    pub fn own_registries(&self) -> Vec<String> {
        let mut out: Vec<String> = self.settings.registry_credentials.keys().cloned().collect();
        if !self.settings.registry.is_empty() && !out.contains(&self.settings.registry) {
            out.push(self.settings.registry.clone());
        }
        out
    }
}

/// Capabilities every step container loses in `slipway serve`: making device files
/// (which would be the host's devices on the data dir) and raw sockets.
pub const STEP_CAP_DROP: [&str; 2] = ["MKNOD", "NET_RAW"];

/// The operator's images a run may use by name: `local_images`, the images aliases
/// name, and the sandbox image.
pub fn operator_images(settings: &Settings) -> Vec<String> {
    let mut out: Vec<String> = settings.local_images.clone();
    out.extend(settings.image_aliases.values().cloned());
    out.push(settings.sandbox_image.clone());
    out.sort();
    out.dedup();
    out
}

impl Node {
    /// What `tenant`'s run may push: in the daemon's registries only the repositories the
    /// tenant owns, whatever credentials its task brings (on an open registry any would
    /// do); elsewhere the registry decides by the task's own credentials.
    pub fn push_check(&self, tenant: &str) -> slipway_engine_proxy::PushCheck {
        let guarded = self.guarded_registries();
        let repositories = self.directory().repositories_of(tenant);
        let tenant = tenant.to_string();
        Arc::new(move |registry: &str, repository: &str| {
            if !guarded.contains(&registry_key(registry)) || repositories.allows(repository) {
                return Ok(());
            }
            let owned = if repositories.is_empty() {
                "none".to_string()
            } else {
                repositories.0.join(", ")
            };
            Err(format!(
                "tenant {tenant} may not push to {registry}/{repository}: in the daemon's registries it owns {owned} (the operator's setting [tenants.{tenant}] repositories)"
            ))
        })
    }

    /// What `tenant`'s run may read: in the daemon's registries the repositories it owns
    /// and those no tenant owns (shared bases), never another tenant's, which the
    /// daemon's credentials (or an open registry) would otherwise hand it.
    pub fn read_check(&self, tenant: &str) -> slipway_engine_proxy::ReadCheck {
        let guarded = self.guarded_registries();
        let directory = self.directory();
        let tenant = tenant.to_string();
        Arc::new(move |registry: &str, repository: &str| {
            if !guarded.contains(&registry_key(registry)) {
                return Ok(());
            }
            let owners = directory.owners_of(repository);
            if owners.is_empty() || owners.contains(&tenant.as_str()) {
                return Ok(());
            }
            Err(format!(
                "tenant {tenant} may not read {registry}/{repository}: in the daemon's registries that repository is another tenant's"
            ))
        })
    }

    /// The daemon's registries as [`registry_key`] spells them.
    fn guarded_registries(&self) -> Vec<String> {
        self.own_registries().iter().map(|r| registry_key(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_api::tenant::Role;

    #[test]
    fn the_flat_tokens_are_the_default_tenants_and_own_everything_alone() {
        let mut s = Settings {
            tokens: vec!["t".into()],
            ..Settings::default()
        };
        let d = directory_of(&s).unwrap();
        assert_eq!(d.authenticate("t").unwrap().tenant, DEFAULT_TENANT);
        assert!(d.repositories_of(DEFAULT_TENANT).allows("any/thing"));
        // Once other tenants exist, the default tenant owns only what it names.
        s.add_tenant_entry("team-a:token=a").unwrap();
        s.add_tenant_entry("team-a:repository=team-a/*").unwrap();
        s.admin_tokens = vec!["ops".into()];
        let d = directory_of(&s).unwrap();
        assert!(!d.repositories_of(DEFAULT_TENANT).allows("team-a/app"));
        assert!(d.repositories_of("team-a").allows("team-a/app"));
        assert_eq!(d.authenticate("ops").unwrap().role, Role::Operator);
        // A daemon without tokens is open, and its one tenant owns everything.
        let d = directory_of(&Settings::default()).unwrap();
        assert!(d.is_open() && d.repositories_of(DEFAULT_TENANT).allows("x/y"));
        // A token in two places is refused without being shown.
        s.add_tenant_entry("team-b:token=a").unwrap();
        let e = directory_of(&s).unwrap_err();
        assert!(e.contains("twice") && !e.contains("=a"), "{e}");
    }
}
