//! `slipway serve`'s settings, declared once: defaults, then the config file, then
//! `SLIPWAY_<NAME>` environment variables, then command-line flags (the caller applies
//! those last; [`Settings::keys`] lets it check it has one for every setting). Plain
//! values; the crates that act on them read what they need.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything `slipway serve` can be told. Field names are the config file's keys;
/// each is also read from `SLIPWAY_<NAME>` (upper case), e.g. `SLIPWAY_CONCURRENCY=4`:
/// lists as `a,b`, maps as `KEY=VALUE,KEY=VALUE` (`SLIPWAY_IMAGE_ALIASES=bash=busybox`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// Where uploads, contexts, logs and per-run secret files live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` (default `./slipway.db`); `postgres://…` is for the fleet mode.
    pub database: String,
    /// Runs executed at once by this daemon.
    pub concurrency: u32,
    /// Bearer tokens accepted by the API, for the default tenant. With no token at all
    /// (here, in `tenants` or in `admin_tokens`), the daemon only listens on loopback
    /// and asks for none.
    pub tokens: Vec<String>,
    /// Tenants: `[tenants.team-a]` with `tokens`, `admin_tokens` and the `repositories`
    /// of the daemon's registries it owns (`team-a/*`). A tenant sees only its own runs,
    /// tasks, webhooks and logs. Never printed.
    pub tenants: BTreeMap<String, TenantSettings>,
    /// Operators' tokens: they see and act on every tenant. Never printed.
    pub admin_tokens: Vec<String>,
    /// Images of the engine (not of a registry) that runs may use by name: the
    /// operator's, pinned for each run when it starts and never replaceable by one.
    /// The sandbox image and image aliases' images are such images too.
    pub local_images: Vec<String>,
    /// Dockerfile frontends (`# syntax=`, `BUILDKIT_SYNTAX`) runs may use, by
    /// repository (`docker.io/docker/dockerfile`) or by digest: a frontend builds
    /// whatever it likes of the engine's images and caches, past every check of the
    /// Dockerfile, so only the operator's choice runs. Docker's own by default.
    pub allowed_frontends: Vec<String>,
    /// Mount the data dir `nodev,nosuid` at start (needs root), so workspaces and run
    /// volumes carry no device files or set-uid programs out of a step.
    pub harden_data_dir: bool,
    /// Largest upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// Days to keep the contexts and logs of finished runs (0: purge at the next pass).
    pub retention_days: u64,
    /// Seconds between purges of expired files.
    pub purge_interval_seconds: u64,
    /// How long a worker's claim on a run lasts without renewal, in seconds.
    pub lease_seconds: u64,
    /// Re-queue a run once when its worker is lost, instead of ending it as Error.
    pub requeue_lost_runs: bool,
    /// Warn about unknown keys in task files instead of refusing them.
    pub allow_unknown_keys: bool,
    /// Steps may run privileged (root on the host).
    pub allow_privileged: bool,
    /// Steps and builds may use the host's network (`network: host`).
    pub allow_host_network: bool,
    /// Steps may publish ports on non-loopback addresses.
    pub allow_public_ports: bool,
    /// How steps reach the engine: `none`, `proxy` (a per-run API proxy that confines
    /// them to their own run) or `full` (the engine's socket: root on the host).
    pub engine_access: String,
    /// The builder of `build` steps: `buildkit` (used when the engine offers it) or
    /// `classic`. A step's `DOCKER_BUILDKIT=0|1` overrides it.
    pub builder: String,
    /// Largest expanded size of an uploaded or downloaded context, in bytes.
    pub max_context_bytes: u64,
    /// Most entries an uploaded or downloaded context may hold.
    pub max_context_entries: u64,
    /// Directories `file://` git sources may come from; none by default.
    pub file_source_dirs: Vec<PathBuf>,
    /// Hosts or networks (`10.0.0.0/8`, `git.internal`, `127.0.0.1`) that URL sources
    /// may reach although they are loopback, private, link-local or unspecified.
    pub allowed_source_hosts: Vec<String>,
    /// Hosts or networks outbound webhooks may reach although they are loopback,
    /// private, link-local or unspecified.
    pub allowed_webhook_hosts: Vec<String>,
    /// Seconds one webhook delivery attempt may take.
    pub webhook_timeout_seconds: u64,
    /// Seconds before a failed delivery is tried again; doubled each time, at most an hour.
    pub webhook_retry_seconds: u64,
    /// Seconds after an event during which its delivery is retried; then it is given up.
    pub webhook_retry_period_seconds: u64,
    /// The daemon's address as others reach it (`https://builds.example.com`), for the
    /// links in run events; the listen address when empty.
    pub public_url: String,
    /// Seconds to wait for a source server to accept a connection.
    pub fetch_connect_timeout_seconds: u64,
    /// Seconds a source server may stay silent during a fetch.
    pub fetch_read_timeout_seconds: u64,
    /// Seconds a client has to send a request's head; an idle keep-alive connection is
    /// closed after as long.
    pub http_header_timeout_seconds: u64,
    /// Connections one run's steps may hold open to its engine proxy (hijacked attach and
    /// exec streams count); more are answered 429.
    pub max_proxy_connections_per_run: u64,
    /// Connections every run's engine proxy together may hold open.
    pub max_proxy_connections: u64,
    /// Log follows (`?follow=true`) and dashboard live feeds one token may hold open.
    pub max_follows_per_token: u64,
    /// API requests one token may have in flight at once (a follow counts until its
    /// answer starts).
    pub max_requests_per_token: u64,
    /// Log follows and live feeds the daemon holds open in all.
    pub max_follows: u64,
    /// API connections one client address may hold open; more are closed at once.
    pub max_connections_per_client: u64,
    /// Bytes of a run's log kept; past them the log says "log truncated at N bytes" and the run goes on.
    pub max_log_bytes: u64,
    /// Uploaded contexts a tenant may keep at once.
    pub max_uploads_per_tenant: u64,
    /// Bytes of uploaded contexts a tenant may keep at once.
    pub max_upload_bytes_per_tenant: u64,
    /// Hours after which an upload no queued run and no task names is removed.
    pub unused_upload_hours: u64,
    /// Runs a tenant may have queued at once; more are refused (429), triggers' skipped.
    pub max_queued_runs_per_tenant: u64,
    /// Runs of one tenant running at once in the whole fleet (0: no cap beyond fair claims).
    pub max_running_runs_per_tenant: u64,
    /// Tasks a tenant may have.
    pub max_tasks_per_tenant: u64,
    /// Timer triggers a tenant's tasks may have in all.
    pub max_timers_per_tenant: u64,
    /// The shortest time between two firings of a timer that a tenant (not an operator) may set.
    pub min_timer_period_seconds: u64,
    /// Bytes a run's `/workspace` may hold; checked while steps run, then the run ends as Failed.
    pub max_workspace_bytes: u64,
    /// Memory of a step container that asks for none (`cmd: -m 2g …` asks).
    pub step_memory_bytes: u64,
    /// The most memory a step container may ask for.
    pub max_step_memory_bytes: u64,
    /// Processes a step container may run when it asks for no number (`--pids-limit`).
    pub step_pids: u64,
    /// The most processes a step container may ask for.
    pub max_step_pids: u64,
    /// `/dev/shm` of a step container that asks for no size (`--shm-size`).
    pub step_shm_bytes: u64,
    /// The largest `/dev/shm` a step container may ask for.
    pub max_step_shm_bytes: u64,
    /// Size of a tmpfs a container started through the proxy mounts without one.
    pub step_tmpfs_bytes: u64,
    /// The largest tmpfs a container started through the proxy may mount.
    pub max_step_tmpfs_bytes: u64,
    /// Seconds a shutdown waits for running runs before stopping them (as `Error`).
    pub shutdown_grace_seconds: u64,
    /// `cmd` image aliases, e.g. `bash = "busybox:latest"`.
    pub image_aliases: BTreeMap<String, String>,
    /// Registry credentials: registry host → `user:password`.
    pub registry_credentials: BTreeMap<String, String>,
    /// Git credentials for HTTP(S) sources: host (with port, if any) → `user:token`.
    pub git_credentials: BTreeMap<String, String>,
    /// Name of this machine in the fleet; worker names start with it.
    pub node: String,
    /// The image that holds a run's network namespace in shared network mode.
    pub sandbox_image: String,
    /// The registry runs build for (`{{.Run.Registry}}`, `$Registry`).
    pub registry: String,
    /// Seconds between polls of tracked base images (0: never poll).
    pub poll_interval_seconds: u64,
    /// The value registries send in `X-Slipway-Registry-Secret` with their notifications.
    pub registry_notification_secret: Option<String>,
    /// Where uploads and finished logs are kept: empty for the data dir (one machine),
    /// or an object store a fleet shares (`azure://CONTAINER`).
    pub blob_store: String,
    /// The blob store's options, `object_store`'s keys (`azure_storage_account_name`,
    /// `azure_storage_account_key`, `azure_storage_use_emulator`, …); never printed.
    pub blob_store_options: BTreeMap<String, String>,
    /// A fleet's key for run secrets (32 bytes, base64): with it, secret values are kept
    /// in the database encrypted (AES-256-GCM) so any node can run the run; never printed.
    pub fleet_key: Option<String>,
    /// The fleet key `fleet_key` replaced: read (never sealed with) while a rotation
    /// re-seals everything under the new key at start.
    pub fleet_key_previous: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./slipway-data"),
            database: "sqlite://./slipway.db".into(),
            concurrency: 2,
            tokens: Vec::new(),
            tenants: BTreeMap::new(),
            admin_tokens: Vec::new(),
            local_images: Vec::new(),
            allowed_frontends: vec!["docker.io/docker/dockerfile".into()],
            harden_data_dir: true,
            max_upload_bytes: 2 * 1024 * 1024 * 1024,
            retention_days: 7,
            purge_interval_seconds: 600,
            lease_seconds: 15,
            requeue_lost_runs: false,
            allow_unknown_keys: false,
            allow_privileged: false,
            allow_host_network: false,
            allow_public_ports: false,
            engine_access: "proxy".into(),
            builder: "buildkit".into(),
            max_context_bytes: 8 << 30,
            max_context_entries: 500_000,
            file_source_dirs: Vec::new(),
            allowed_source_hosts: Vec::new(),
            allowed_webhook_hosts: Vec::new(),
            webhook_timeout_seconds: 10,
            webhook_retry_seconds: 10,
            webhook_retry_period_seconds: 86_400,
            public_url: String::new(),
            fetch_connect_timeout_seconds: 10,
            fetch_read_timeout_seconds: 60,
            http_header_timeout_seconds: 30,
            shutdown_grace_seconds: 30,
            max_proxy_connections_per_run: 64,
            max_proxy_connections: 2048,
            max_follows_per_token: 32,
            max_requests_per_token: 32,
            max_follows: 1024,
            max_connections_per_client: 256,
            max_log_bytes: 100 << 20,
            max_uploads_per_tenant: 200,
            max_upload_bytes_per_tenant: 20 << 30,
            unused_upload_hours: 24,
            max_queued_runs_per_tenant: 500,
            max_running_runs_per_tenant: 0,
            max_tasks_per_tenant: 500,
            max_timers_per_tenant: 100,
            min_timer_period_seconds: 300,
            max_workspace_bytes: 10 << 30,
            step_memory_bytes: 4 << 30,
            max_step_memory_bytes: 16 << 30,
            step_pids: 1024,
            max_step_pids: 4096,
            step_shm_bytes: 64 << 20,
            max_step_shm_bytes: 1 << 30,
            step_tmpfs_bytes: 256 << 20,
            max_step_tmpfs_bytes: 2 << 30,
            image_aliases: BTreeMap::new(),
            registry_credentials: BTreeMap::new(),
            git_credentials: BTreeMap::new(),
            node: hostname(),
            sandbox_image: "busybox:latest".into(),
            registry: String::new(),
            poll_interval_seconds: 300,
            registry_notification_secret: None,
            blob_store: String::new(),
            blob_store_options: BTreeMap::new(),
            fleet_key: None,
            fleet_key_previous: None,
        }
    }
}

/// A comma-separated list, blanks dropped.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// A comma-separated list of `KEY=VALUE` entries (the form of a map in the environment),
/// each value checked to be `A:B` when `credential`. An error names the key at most,
/// never a value: the maps hold passwords.
/// A map setting's `KEY=VALUE` entries. A credential's value holds a `:`
/// (`USER:PASSWORD`); a secret map's entries are never shown in errors, only their keys.
fn map(value: &str, shape: &str, credential: bool, secret: bool) -> Result<Vec<(String, String)>, String> {
    list(value)
        .map(|entry| match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() && (!credential || v.contains(':')) => Ok((k.to_string(), v.to_string())),
            Some((k, _)) => Err(format!("entry {k:?}: expected {shape}")),
            None if secret => Err(format!("an entry has no '=': expected {shape}")),
            None => Err(format!("entry {entry:?}: expected {shape}")),
        })
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// One tenant's settings (`[tenants.NAME]`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// Its members' tokens.
    pub tokens: Vec<String>,
    /// Its admins' tokens: members who may also keep a task's secrets when moving its source.
    pub admin_tokens: Vec<String>,
    /// Repositories of the daemon's registries it owns: `team-a/app`, `team-a/*`, `*`.
    pub repositories: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
}

impl Settings {
    /// Defaults, overlaid by `file` when given, then by `SLIPWAY_*` variables.
    pub fn load(file: Option<&Path>, env: impl Iterator<Item = (String, String)>) -> Result<Settings, SettingsError> {
        let mut s = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| SettingsError::Parse {
                    path: path.to_path_buf(),
                    // The line and toml's message, never the text: it may hold a token.
                    message: match e.span() {
                        Some(span) => format!(
                            "line {}: {}",
                            text.as_bytes()[..span.start.min(text.len())]
                                .iter()
                                .filter(|b| **b == b'\n')
                                .count()
                                + 1,
                            e.message()
                        ),
                        None => e.message().to_string(),
                    },
                })?
            }
            None => Settings::default(),
        };
        for (name, value) in env {
            let Some(key) = name.strip_prefix("SLIPWAY_") else { continue };
            s.apply_env(&name, &key.to_ascii_lowercase(), &value)?;
        }
        Ok(s)
    }

    /// The config file's keys, one per field of [`Settings`], as serde declares them.
    pub fn keys() -> &'static [&'static str] {
        use serde::de::{self, Visitor};
        /// A deserializer that only records the field names `Settings` asks for.
        struct Fields(&'static [&'static str]);
        impl<'de> de::Deserializer<'de> for &mut Fields {
            type Error = de::value::Error;
            fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
                Err(de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0 = fields;
                Err(de::Error::custom("fields recorded"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
                option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
                ignored_any
            }
        }
        let mut fields = Fields(&[]);
        let _ = Settings::deserialize(&mut fields);
        fields.0
    }

    /// Applies `SLIPWAY_<KEY>` (`name`) to the setting `key`; `Ok(false)` when `key` is
    /// no setting (other `SLIPWAY_*` variables belong to the client, tests and scripts).
    fn apply_env(&mut self, name: &str, key: &str, value: &str) -> Result<bool, SettingsError> {
        let bad = |message: String| SettingsError::Env {
            name: name.to_string(),
            message,
        };
        let num = |v: &str| v.parse::<u64>().map_err(|_| bad(format!("{v:?} is not a whole number")));
        let flag = |v: &str| match v {
            "1" | "true" | "yes" => Ok(true),
            "0" | "false" | "no" => Ok(false),
            _ => Err(bad(format!("{v:?} is not true or false"))),
        };
        match key {
            "listen" => self.listen = value.into(),
            "data_dir" => self.data_dir = value.into(),
            "database" => self.database = value.into(),
            "concurrency" => self.concurrency = num(value)? as u32,
            "tokens" | "token" => self.tokens = list(value).map(String::from).collect(),
            "admin_tokens" => self.admin_tokens = list(value).map(String::from).collect(),
            "local_images" => self.local_images = list(value).map(String::from).collect(),
            "allowed_frontends" => self.allowed_frontends = list(value).map(String::from).collect(),
            "harden_data_dir" => self.harden_data_dir = flag(value)?,
            "tenants" => {
                for entry in list(value) {
                    self.add_tenant_entry(entry).map_err(bad)?;
                }
            }
            "max_upload_bytes" => self.max_upload_bytes = num(value)?,
            "retention_days" => self.retention_days = num(value)?,
            "purge_interval_seconds" => self.purge_interval_seconds = num(value)?,
            "lease_seconds" => self.lease_seconds = num(value)?,
            "requeue_lost_runs" => self.requeue_lost_runs = flag(value)?,
            "allow_unknown_keys" => self.allow_unknown_keys = flag(value)?,
            "allow_privileged" => self.allow_privileged = flag(value)?,
            "allow_host_network" => self.allow_host_network = flag(value)?,
            "allow_public_ports" => self.allow_public_ports = flag(value)?,
            "engine_access" => self.engine_access = value.into(),
            "builder" => self.builder = value.into(),
            "max_context_bytes" => self.max_context_bytes = num(value)?,
            "max_context_entries" => self.max_context_entries = num(value)?,
            "file_source_dirs" => self.file_source_dirs = list(value).map(PathBuf::from).collect(),
            "allowed_source_hosts" => self.allowed_source_hosts = list(value).map(String::from).collect(),
            "allowed_webhook_hosts" => self.allowed_webhook_hosts = list(value).map(String::from).collect(),
            "webhook_timeout_seconds" => self.webhook_timeout_seconds = num(value)?,
            "webhook_retry_seconds" => self.webhook_retry_seconds = num(value)?,
            "webhook_retry_period_seconds" => self.webhook_retry_period_seconds = num(value)?,
            "public_url" => self.public_url = value.into(),
            "fetch_connect_timeout_seconds" => self.fetch_connect_timeout_seconds = num(value)?,
            "fetch_read_timeout_seconds" => self.fetch_read_timeout_seconds = num(value)?,
            "http_header_timeout_seconds" => self.http_header_timeout_seconds = num(value)?,
            "shutdown_grace_seconds" => self.shutdown_grace_seconds = num(value)?,
            "max_proxy_connections_per_run" => self.max_proxy_connections_per_run = num(value)?,
            "max_proxy_connections" => self.max_proxy_connections = num(value)?,
            "max_follows_per_token" => self.max_follows_per_token = num(value)?,
            "max_requests_per_token" => self.max_requests_per_token = num(value)?,
            "max_follows" => self.max_follows = num(value)?,
            "max_connections_per_client" => self.max_connections_per_client = num(value)?,
            "max_log_bytes" => self.max_log_bytes = num(value)?,
            "max_uploads_per_tenant" => self.max_uploads_per_tenant = num(value)?,
            "max_upload_bytes_per_tenant" => self.max_upload_bytes_per_tenant = num(value)?,
            "unused_upload_hours" => self.unused_upload_hours = num(value)?,
            "max_queued_runs_per_tenant" => self.max_queued_runs_per_tenant = num(value)?,
            "max_running_runs_per_tenant" => self.max_running_runs_per_tenant = num(value)?,
            "max_tasks_per_tenant" => self.max_tasks_per_tenant = num(value)?,
            "max_timers_per_tenant" => self.max_timers_per_tenant = num(value)?,
            "min_timer_period_seconds" => self.min_timer_period_seconds = num(value)?,
            "max_workspace_bytes" => self.max_workspace_bytes = num(value)?,
            "step_memory_bytes" => self.step_memory_bytes = num(value)?,
            "max_step_memory_bytes" => self.max_step_memory_bytes = num(value)?,
            "step_pids" => self.step_pids = num(value)?,
            "max_step_pids" => self.max_step_pids = num(value)?,
            "step_shm_bytes" => self.step_shm_bytes = num(value)?,
            "max_step_shm_bytes" => self.max_step_shm_bytes = num(value)?,
            "step_tmpfs_bytes" => self.step_tmpfs_bytes = num(value)?,
            "max_step_tmpfs_bytes" => self.max_step_tmpfs_bytes = num(value)?,
            "node" => self.node = value.into(),
            "sandbox_image" => self.sandbox_image = value.into(),
            "registry" => self.registry = value.into(),
            "poll_interval_seconds" => self.poll_interval_seconds = num(value)?,
            "registry_notification_secret" => self.registry_notification_secret = Some(value.into()),
            "blob_store" => self.blob_store = value.into(),
            "fleet_key" => self.fleet_key = Some(value.into()),
            "fleet_key_previous" => self.fleet_key_previous = Some(value.into()),
            "blob_store_options" => self.blob_store_options.extend(map(value, "KEY=VALUE", false, true).map_err(bad)?),
            // A map in the environment adds to the file's, winning key by key.
            "image_aliases" => self.image_aliases.extend(map(value, "ALIAS=IMAGE", false, false).map_err(bad)?),
            "registry_credentials" => self
                .registry_credentials
                .extend(map(value, "REGISTRY=USER:PASSWORD", true, true).map_err(bad)?),
            "git_credentials" => self.git_credentials.extend(map(value, "HOST=USER:TOKEN", true, true).map_err(bad)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Adds one `NAME:token=TOKEN`, `NAME:admin-token=TOKEN` or `NAME:repository=PATTERN`
    /// entry (the form of `--tenant` and `SLIPWAY_TENANTS`) to `tenants`. An error never
    /// shows the value: it may be a token.
    pub fn add_tenant_entry(&mut self, entry: &str) -> Result<(), String> {
        const SHAPE: &str = "expected NAME:token=TOKEN, NAME:admin-token=TOKEN or NAME:repository=PATTERN";
        let (name, rest) = entry.split_once(':').ok_or_else(|| format!("an entry has no ':': {SHAPE}"))?;
        let (kind, value) = rest
            .split_once('=')
            .ok_or_else(|| format!("the entry for tenant {name:?} has no '=': {SHAPE}"))?;
        if name.is_empty() || value.is_empty() {
            return Err(format!("an entry has an empty tenant name or value: {SHAPE}"));
        }
        let tenant = self.tenants.entry(name.to_string()).or_default();
        match kind {
            "token" => tenant.tokens.push(value.to_string()),
            "admin-token" | "admin_token" => tenant.admin_tokens.push(value.to_string()),
            "repository" => tenant.repositories.push(value.to_string()),
            other => return Err(format!("the entry for tenant {name:?} sets {other:?}: {SHAPE}")),
        }
        Ok(())
    }

    /// The daemon's address for links others follow: `public_url`, else the listen address.
    pub fn public_base(&self) -> String {
        if self.public_url.is_empty() {
            // Listening on every interface: the machine's name is the address to give.
            let listen = match self.listen.rsplit_once(':') {
                Some(("0.0.0.0" | "[::]", port)) => format!("{}:{port}", self.node),
                _ => self.listen.clone(),
            };
            format!("http://{listen}")
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }

    /// The sizes step containers get, as the runner and the engine proxy take them.
    pub fn step_limits(&self) -> slipway_limits::StepLimits {
        use slipway_limits::Bound;
        let bound = |default: u64, max: u64| Bound { default, max };
        slipway_limits::StepLimits {
            memory: bound(self.step_memory_bytes, self.max_step_memory_bytes),
            pids: bound(self.step_pids, self.max_step_pids),
            shm: bound(self.step_shm_bytes, self.max_step_shm_bytes),
            tmpfs: bound(self.step_tmpfs_bytes, self.max_step_tmpfs_bytes),
            engine_log: self.max_log_bytes,
        }
    }

    /// Whether the listen address is loopback only.
    pub fn listens_on_loopback(&self) -> bool {
        slipway_reference::host::is_loopback(slipway_reference::host::without_port(&self.listen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let dir = std::env::temp_dir().join(format!("slipway-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("slipway.toml");
        std::fs::write(&file, "concurrency = 5\ntokens = [\"a\"]\n[image_aliases]\nbash = \"busybox\"\n").unwrap();
        let env = vec![
            ("SLIPWAY_CONCURRENCY".to_string(), "7".to_string()),
            ("SLIPWAY_LISTEN".to_string(), "127.0.0.1:9".to_string()),
        ];
        let s = Settings::load(Some(&file), env.into_iter()).unwrap();
        assert_eq!((s.concurrency, s.listen.as_str(), s.tokens.len()), (7, "127.0.0.1:9", 1));
        assert_eq!(s.image_aliases["bash"], "busybox");
        std::fs::write(&file, "concurency = 5\n").unwrap();
        let e = Settings::load(Some(&file), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains("concurency"), "{e}");
        let e = Settings::load(None, vec![("SLIPWAY_CONCURRENCY".to_string(), "many".to_string())].into_iter())
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLIPWAY_CONCURRENCY"), "{e}");
    }

    #[test]
    fn every_key_is_read_from_the_environment() {
        let keys = Settings::keys();
        assert!(
            keys.contains(&"listen") && keys.contains(&"registry_notification_secret"),
            "{keys:?}"
        );
        for key in keys {
            let name = format!("SLIPWAY_{}", key.to_ascii_uppercase());
            // A value is either taken or refused with the variable's name; never ignored.
            let handled = Settings::default().apply_env(&name, key, "1");
            assert!(!matches!(handled, Ok(false)), "{key} has no {name}: add it to Settings::apply_env");
        }
        assert!(!Settings::default().apply_env("SLIPWAY_SERVER", "server", "x").unwrap());
    }

    #[test]
    fn the_shared_farm_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tenants/slipway.toml");
        let s = Settings::load(Some(&path), std::iter::empty()).unwrap();
        assert_eq!(s.tenants["team-b"].repositories, ["team-b/*", "shared/base-images"]);
        assert_eq!(s.allowed_frontends, ["docker.io/docker/dockerfile"]);
        assert!(!s.admin_tokens.is_empty() && !s.local_images.is_empty());
    }

    #[test]
    fn tenants_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("slipway.toml");
        std::fs::write(
            &file,
            "admin_tokens = [\"ops\"]\n[tenants.team-a]\ntokens = [\"a1\"]\nrepositories = [\"team-a/*\"]\n",
        )
        .unwrap();
        let env = vec![(
            "SLIPWAY_TENANTS".to_string(),
            "team-a:token=a2,team-b:admin-token=b1,team-b:repository=team-b/app".to_string(),
        )];
        let s = Settings::load(Some(&file), env.into_iter()).unwrap();
        assert_eq!(s.admin_tokens, ["ops"]);
        assert_eq!(s.tenants["team-a"].tokens, ["a1", "a2"]);
        assert_eq!(s.tenants["team-a"].repositories, ["team-a/*"]);
        assert_eq!(s.tenants["team-b"].admin_tokens, ["b1"]);
        assert_eq!(s.tenants["team-b"].repositories, ["team-b/app"]);
        for bad in ["team-a=hunter2", "team-a:tokn=hunter2", ":token=hunter2"] {
            let e = Settings::load(None, vec![("SLIPWAY_TENANTS".to_string(), bad.to_string())].into_iter())
                .unwrap_err()
                .to_string();
            assert!(e.contains("SLIPWAY_TENANTS") && !e.contains("hunter2"), "{e}");
        }
        std::fs::write(&file, "[tenants.x]\ntoken = [\"t\"]\n").unwrap();
        let e = Settings::load(Some(&file), std::iter::empty()).unwrap_err().to_string();
        assert!(e.contains("token"), "{e}");
    }

    #[test]
    fn maps_from_the_environment() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
                .into_iter()
        };
        let s = Settings::load(
            None,
            env(&[
                ("SLIPWAY_IMAGE_ALIASES", "bash=busybox:latest, az=mcr.microsoft.com/azure-cli"),
                ("SLIPWAY_REGISTRY_CREDENTIALS", "reg.io=user:p=w"),
                ("SLIPWAY_GIT_CREDENTIALS", "git.internal:8443=builder:tok,github.com=me:x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.image_aliases["bash"], "busybox:latest");
        assert_eq!(s.image_aliases["az"], "mcr.microsoft.com/azure-cli");
        assert_eq!(s.registry_credentials["reg.io"], "user:p=w");
        assert_eq!(s.git_credentials["git.internal:8443"], "builder:tok");
        assert_eq!(s.git_credentials.len(), 2);
        // Refused by the variable's name and the entry's key, the secret never shown.
        for (name, value, shown) in [
            ("SLIPWAY_REGISTRY_CREDENTIALS", "reg.io=hunter2", "\"reg.io\""),
            ("SLIPWAY_GIT_CREDENTIALS", "hunter2", "HOST=USER:TOKEN"),
            ("SLIPWAY_IMAGE_ALIASES", "bash", "\"bash\""),
        ] {
            let e = Settings::load(None, env(&[(name, value)])).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(shown) && !e.contains("hunter2"), "{e}");
        }
    }
}
