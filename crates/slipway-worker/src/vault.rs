//! The vault: the one store of every secret the daemon keeps — a run's (until it ends),
//! a task's (its webhook secret, secret arguments and values, registry and git
//! credentials) and an outgoing webhook's. One API for all of them: keep, read,
//! replace, delete.
//!
//! On one machine a secret is a `0600` file under `<data dir>/secrets/`; in a fleet
//! (a `fleet_key`) it is sealed with the key into the database, so every node reads
//! it. A sealed value is bound to its owner's key, so it opens for that owner only. A
//! node without the key that finds sealed secrets refuses with the reason, never
//! answering "none". With `fleet_key_previous`, values sealed under the old key still
//! open, and [`Vault::reseal`] (run at start) seals everything under the new one.

use crate::sealed::FleetKey;
use serde::de::DeserializeOwned;
use serde::Serialize;
use slipway_api::tenant::DEFAULT_TENANT;
use slipway_store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Whose secrets: what a value is kept under, and what a sealed one is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    Run(String),
    Task { tenant: String, name: String },
    Webhook { tenant: String, name: String },
}

impl Owner {
    pub fn run(id: &str) -> Owner {
        Owner::Run(id.to_string())
    }

    pub fn task(tenant: &str, name: &str) -> Owner {
        Owner::Task {
            tenant: tenant.to_string(),
            name: name.to_string(),
        }
    }

    pub fn webhook(tenant: &str, name: &str) -> Owner {
        Owner::Webhook {
            tenant: tenant.to_string(),
            name: name.to_string(),
        }
    }

    /// The owner's key: a run's id; `task-NAME` / `webhook-NAME` for the default
    /// tenant's (as before tenants, so files written then are still read), and
    /// `task-TENANT.NAME` for others' (`.` is in neither name, so no two owners meet).
    pub fn key(&self) -> String {
        let named = |kind: &str, tenant: &str, name: &str| {
            if tenant == DEFAULT_TENANT {
                format!("{kind}-{name}")
            } else {
                format!("{kind}-{tenant}.{name}")
            }
        };
        match self {
            Owner::Run(id) => id.clone(),
            Owner::Task { tenant, name } => named("task", tenant, name),
            Owner::Webhook { tenant, name } => named("webhook", tenant, name),
        }
    }
}

/// Why the vault could not do what was asked. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the secrets of {owner} cannot be kept: {reason}")]
    Keep { owner: String, reason: String },
    #[error("the secrets of {owner} cannot be read: {reason}")]
    Read { owner: String, reason: String },
}

/// The fleet's keys: the one that seals, and the one it replaced (read only).
#[derive(Clone, Debug)]
pub struct FleetKeys {
    pub current: FleetKey,
    pub previous: Option<FleetKey>,
}

pub struct Vault {
    dir: PathBuf,
    store: Arc<dyn Store>,
    keys: Option<FleetKeys>,
}

impl Vault {
    /// A vault of files under `data_dir/secrets`, or sealed in `store` with `keys`.
    pub fn new(data_dir: &Path, store: Arc<dyn Store>, keys: Option<FleetKeys>) -> Vault {
        Vault {
            dir: data_dir.join("secrets"),
            store,
            keys,
        }
    }

    pub fn is_sealed(&self) -> bool {
        self.keys.is_some()
    }

    fn file(&self, owner: &Owner) -> PathBuf {
        self.dir.join(format!("{}.json", owner.key()))
    }

    /// Keeps `secrets` for `owner`, replacing what it had.
    pub async fn keep<T: Serialize>(&self, owner: &Owner, secrets: &T) -> Result<(), VaultError> {
        let key = owner.key();
        let fail = |reason: String| VaultError::Keep {
            owner: key.clone(),
            reason,
        };
        let plain = serde_json::to_vec(secrets).map_err(|e| fail(e.to_string()))?;
        match &self.keys {
            Some(keys) => self.seal_into_store(&keys.current, &key, &plain).await,
            None => write_private(&self.file(owner), &plain).map_err(|e| fail(e.to_string())),
        }
    }

    /// `owner`'s secrets; the type's default when it has none kept.
    pub async fn read<T: DeserializeOwned + Default>(&self, owner: &Owner) -> Result<T, VaultError> {
        let key = owner.key();
        match self.read_bytes(owner).await? {
            Some(plain) => serde_json::from_slice(&plain).map_err(|e| VaultError::Read {
                owner: key,
                reason: format!("they are not what was kept ({e})"),
            }),
            None => Ok(T::default()),
        }
    }

    async fn read_bytes(&self, owner: &Owner) -> Result<Option<Vec<u8>>, VaultError> {
        let key = owner.key();
        let fail = |reason: String| VaultError::Read {
            owner: key.clone(),
            reason,
        };
        match &self.keys {
            Some(keys) => match self.store.sealed_secrets(&key).await.map_err(|e| fail(e.to_string()))? {
                Some(sealed) => open(keys, &key, &sealed).map(Some).map_err(fail),
                // A file from before the fleet: still this owner's.
                None => Ok(read_file(&self.file(owner)).map_err(fail)?),
            },
            None => match read_file(&self.file(owner)).map_err(fail)? {
                Some(plain) => Ok(Some(plain)),
                None => match self.store.sealed_secrets(&key).await {
                    Ok(Some(_)) => Err(fail(
                        "they are sealed with a fleet key and this node has none (set fleet_key as the fleet's other nodes do)".into(),
                    )),
                    _ => Ok(None),
                },
            },
        }
    }

    /// Reads `owner`'s secrets, lets `change` make the new ones from them, and keeps
    /// those: what `change` leaves as it was stays kept.
    pub async fn replace<T, F>(&self, owner: &Owner, change: F) -> Result<T, VaultError>
    where
        T: Serialize + DeserializeOwned + Default,
        F: FnOnce(T) -> T,
    {
        let new = change(self.read(owner).await?);
        self.keep(owner, &new).await?;
        Ok(new)
    }

    /// Forgets `owner`'s secrets, wherever they are.
    pub async fn delete(&self, owner: &Owner) {
        let key = owner.key();
        let _ = std::fs::remove_file(self.file(owner));
        if let Err(e) = self.store.delete_sealed_secrets(&key).await {
            tracing::warn!(owner = %key, error = %e, "removing sealed secrets failed");
        }
    }

    /// In a fleet: seals under the current key every value the previous key sealed,
    /// and moves every secrets file of this node (kept before it joined a fleet) into
    /// the database. Returns how many values it sealed anew.
    pub async fn reseal(&self) -> Result<usize, VaultError> {
        let Some(keys) = &self.keys else { return Ok(0) };
        let mut moved = 0;
        let fail = |owner: &str, reason: String| VaultError::Keep {
            owner: owner.to_string(),
            reason,
        };
        if keys.previous.is_some() {
            let owners = self.store.sealed_owners().await.map_err(|e| fail("the fleet", e.to_string()))?;
            for owner in owners {
                let Some(sealed) = self.store.sealed_secrets(&owner).await.map_err(|e| fail(&owner, e.to_string()))? else {
                    continue;
                };
                if keys.current.open(&owner, &sealed).is_ok() {
                    continue;
                }
                let plain = open(keys, &owner, &sealed).map_err(|e| fail(&owner, e))?;
                self.seal_into_store(&keys.current, &owner, &plain).await?;
                moved += 1;
            }
        }
        let files = std::fs::read_dir(&self.dir).into_iter().flatten().flatten();
        for entry in files {
            let path = entry.path();
            let Some(owner) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .map(str::to_string)
            else {
                continue;
            };
            let Ok(Some(plain)) = read_file(&path) else { continue };
            if self.store.sealed_secrets(&owner).await.ok().flatten().is_none() {
                self.seal_into_store(&keys.current, &owner, &plain).await?;
                moved += 1;
            }
            let _ = std::fs::remove_file(&path);
        }
        Ok(moved)
    }
}

impl Vault {
    /// Seals `plain` for `owner` with `key` and keeps it in the database.
    async fn seal_into_store(&self, key: &FleetKey, owner: &str, plain: &[u8]) -> Result<(), VaultError> {
        let fail = |reason: String| VaultError::Keep {
            owner: owner.to_string(),
            reason,
        };
        let sealed = key.seal(owner, plain).map_err(fail)?;
        self.store.put_sealed_secrets(owner, &sealed).await.map_err(|e| fail(e.to_string()))
    }
}

/// Opens with the current key, else the previous one.
fn open(keys: &FleetKeys, owner: &str, sealed: &[u8]) -> Result<Vec<u8>, String> {
    keys.current.open(owner, sealed).or_else(|e| match &keys.previous {
        Some(previous) => previous.open(owner, sealed).map_err(|_| e),
        None => Err(e),
    })
}

fn read_file(path: &Path) -> Result<Option<Vec<u8>>, String> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes a file only the daemon's user can read, making its directory.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use slipway_api::task::TaskSecrets;

    fn key(byte: u8) -> FleetKey {
        FleetKey::parse(&base64::engine::general_purpose::STANDARD.encode([byte; 32])).unwrap()
    }

    async fn store(dir: &Path) -> Arc<dyn Store> {
        let url = format!("sqlite://{}", dir.join("vault.db").display());
        slipway_store::open(&url, Arc::new(slipway_store::SystemClock)).await.unwrap()
    }

    fn secrets(token: &str) -> TaskSecrets {
        let mut s = TaskSecrets::default();
        s.arguments.insert("TOKEN".into(), token.into());
        s.webhook_secret = Some(format!("hook-{token}"));
        s
    }

    async fn raw_db(dir: &Path) -> Vec<u8> {
        // The database and its write-ahead log, as a thief with the disk would read them.
        ["vault.db", "vault.db-wal"]
            .iter()
            .flat_map(|f| std::fs::read(dir.join(f)).unwrap_or_default())
            .collect()
    }

    #[tokio::test]
    async fn every_owner_keeps_reads_replaces_and_deletes_on_one_machine() {
        let dir = tempfile::tempdir().unwrap();
        let v = Vault::new(dir.path(), store(dir.path()).await, None);
        let owners = [
            Owner::run("r1"),
            Owner::task("default", "t"),
            Owner::task("team-a", "t"),
            Owner::webhook("team-a", "t"),
        ];
        for (i, o) in owners.iter().enumerate() {
            v.keep(o, &secrets(&format!("s3cret{i}"))).await.unwrap();
        }
        for (i, o) in owners.iter().enumerate() {
            let got: TaskSecrets = v.read(o).await.unwrap();
            assert_eq!(got, secrets(&format!("s3cret{i}")), "{o:?}");
        }
        // Files as before the vault: a default tenant's task is `task-NAME.json`, 0600.
        let file = dir.path().join("secrets/task-t.json");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let replaced: TaskSecrets = v
            .replace(&owners[1], |mut s: TaskSecrets| {
                s.values.insert("V".into(), "new".into());
                s
            })
            .await
            .unwrap();
        assert_eq!(replaced.arguments["TOKEN"], "s3cret1", "a replace keeps what it leaves out");
        v.delete(&owners[1]).await;
        assert_eq!(v.read::<TaskSecrets>(&owners[1]).await.unwrap(), TaskSecrets::default());
        assert!(!raw_db(dir.path()).await.windows(7).any(|w| w == b"s3cret2"));
    }

    #[tokio::test]
    async fn a_fleet_seals_in_the_database_and_a_keyless_node_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let db = store(dir.path()).await;
        let keys = FleetKeys {
            current: key(1),
            previous: None,
        };
        let sealed = Vault::new(dir.path(), db.clone(), Some(keys));
        let owner = Owner::task("team-a", "build");
        sealed.keep(&owner, &secrets("hunter2hunter2")).await.unwrap();
        assert!(
            !dir.path().join("secrets").join(format!("{}.json", owner.key())).exists(),
            "no file in a fleet"
        );
        assert!(
            !raw_db(dir.path()).await.windows(14).any(|w| w == b"hunter2hunter2"),
            "sealed, not in clear"
        );
        assert_eq!(sealed.read::<TaskSecrets>(&owner).await.unwrap(), secrets("hunter2hunter2"));
        // A value moved to another owner does not open.
        let blob = db.sealed_secrets(&owner.key()).await.unwrap().unwrap();
        db.put_sealed_secrets(&Owner::task("team-b", "build").key(), &blob).await.unwrap();
        assert!(sealed.read::<TaskSecrets>(&Owner::task("team-b", "build")).await.is_err());
        // A node of the fleet without the key says so, rather than answering "none".
        let keyless = Vault::new(dir.path(), db.clone(), None);
        let e = keyless.read::<TaskSecrets>(&owner).await.unwrap_err().to_string();
        assert!(e.contains("fleet_key") && !e.contains("hunter2"), "{e}");
        // A node with another key cannot open them either, and says which owner.
        let wrong = Vault::new(
            dir.path(),
            db,
            Some(FleetKeys {
                current: key(2),
                previous: None,
            }),
        );
        let e = wrong.read::<TaskSecrets>(&owner).await.unwrap_err().to_string();
        assert!(e.contains("task-team-a.build") && e.contains("fleet_key"), "{e}");
    }

    #[tokio::test]
    async fn a_rotation_reseals_everything_and_files_join_the_fleet() {
        let dir = tempfile::tempdir().unwrap();
        let db = store(dir.path()).await;
        // Before the fleet: a task's secrets in a file.
        Vault::new(dir.path(), db.clone(), None)
            .keep(&Owner::task("default", "old"), &secrets("fromfile"))
            .await
            .unwrap();
        let old = Vault::new(
            dir.path(),
            db.clone(),
            Some(FleetKeys {
                current: key(1),
                previous: None,
            }),
        );
        assert_eq!(
            old.read::<TaskSecrets>(&Owner::task("default", "old")).await.unwrap(),
            secrets("fromfile"),
            "files are read as before"
        );
        assert_eq!(old.reseal().await.unwrap(), 1, "the file is sealed into the database");
        assert!(!dir.path().join("secrets/task-old.json").exists());
        old.keep(&Owner::run("r1"), &secrets("run")).await.unwrap();
        old.keep(&Owner::webhook("default", "w"), &secrets("hook")).await.unwrap();
        // The new key with the old one as previous: everything opens, and is sealed again.
        let rotating = Vault::new(
            dir.path(),
            db.clone(),
            Some(FleetKeys {
                current: key(2),
                previous: Some(key(1)),
            }),
        );
        assert_eq!(rotating.read::<TaskSecrets>(&Owner::run("r1")).await.unwrap(), secrets("run"));
        assert_eq!(rotating.reseal().await.unwrap(), 3);
        assert_eq!(rotating.reseal().await.unwrap(), 0, "once");
        let new_only = Vault::new(
            dir.path(),
            db,
            Some(FleetKeys {
                current: key(2),
                previous: None,
            }),
        );
        for (o, s) in [
            (Owner::task("default", "old"), "fromfile"),
            (Owner::run("r1"), "run"),
            (Owner::webhook("default", "w"), "hook"),
        ] {
            assert_eq!(new_only.read::<TaskSecrets>(&o).await.unwrap(), secrets(s), "{o:?}");
        }
        assert!(
            old.read::<TaskSecrets>(&Owner::run("r1")).await.is_err(),
            "the old key alone no longer opens them"
        );
    }
}
