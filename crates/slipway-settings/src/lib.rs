//! `slipway serve`'s settings, each declared once below ([`DECLARED`] and the
//! [`Settings`] struct come from the same lines): its key in the config file, its
//! `SLIPWAY_<KEY>` variable, its flag, its help, its default and the bounds or choices
//! it must keep, checked once when the settings are loaded. Defaults, then the file,
//! then the environment, then the flags (which the binary reads from [`DECLARED`] and
//! applies with [`Settings::apply`]). Plain values; the crates that act on them read
//! what they need.
//!
//! Why not `figment`: it layers a file and variables well, but knows nothing of flags,
//! help or bounds, so each setting would still be named again for clap and checked
//! apart; one `macro_rules!` table gives every part from one line, with no new crate.

use serde::Deserialize;
pub use slipway_plan::{Builder, Credential, EngineAccess};
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// How a setting's text (a variable, a flag) is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number.
    Number,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`); a flag alone means `true`.
    Switch,
    /// One text (a name, an address, a path).
    Text,
    /// Several texts: `a,b` in a variable, a repeated flag.
    List,
    /// `KEY=VALUE` entries: `a=1,b=2` in a variable, a repeated flag; an entry replaces
    /// the entry of the same key.
    Map,
    /// `NAME:KIND=VALUE` entries of tenants.
    Tenants,
}

/// What else a setting declares: whether it is secret (never printed), the choices or
/// the range it must keep, and a map's entry shape (`REGISTRY=USER:PASSWORD`) with
/// whether its values are `A:B` credentials.
#[derive(Debug, Clone)]
pub struct Extra {
    pub secret: bool,
    pub choices: &'static [&'static str],
    pub range: Option<RangeInclusive<u64>>,
    pub map: Option<(&'static str, bool)>,
}

impl Extra {
    pub const NONE: Extra = Extra {
        secret: false,
        choices: &[],
        range: None,
        map: None,
    };
    /// A limit that would stop the daemon's work at 0 (every request refused, every log
    /// cut, every step out of memory): 0 is refused at load.
    pub const AT_LEAST_ONE: Extra = Extra {
        range: Some(1..=u64::MAX),
        ..Extra::NONE
    };
}

/// One setting as declared.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The config file's key; `SLIPWAY_<KEY>` in upper case is its variable.
    pub key: &'static str,
    /// The flag, without its `--`.
    pub flag: &'static str,
    /// The flag's value as help shows it (`N`, `ADDR`).
    pub value_name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub extra: Extra,
}

impl Declared {
    /// The environment variable.
    pub fn variable(&self) -> String {
        format!("SLIPWAY_{}", self.key.to_ascii_uppercase())
    }
}

/// A setting's value, read from text and checked against its declaration.
trait Value {
    /// Sets the value from `values` (one for a single value, each entry for a list or a
    /// map). The error never shows a secret's value.
    fn set(&mut self, values: &[&str], d: &Declared) -> Result<(), String>;
    /// Checks what a file, a variable or a flag gave against the declaration.
    fn check(&self, _d: &Declared) -> Result<(), String> {
        Ok(())
    }
    /// The default as help shows it (`None`: not shown).
    fn show(&self, _d: &Declared) -> Option<String>;
}

fn one<'v>(values: &[&'v str], d: &Declared) -> Result<&'v str, String> {
    match values {
        [v] => Ok(v),
        _ => Err(format!("{} takes one value", d.key)),
    }
}

fn shown(d: &Declared, v: &str) -> String {
    if d.extra.secret {
        "the value given".into()
    } else {
        format!("{v:?}")
    }
}

macro_rules! number {
    ($t:ty) => {
        impl Value for $t {
            fn set(&mut self, values: &[&str], d: &Declared) -> Result<(), String> {
                let v = one(values, d)?;
                *self = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("{} is not a whole number", shown(d, v)))?;
                Ok(())
            }
            fn check(&self, d: &Declared) -> Result<(), String> {
                match &d.extra.range {
                    Some(r) if !r.contains(&(*self as u64)) && *r.end() == u64::MAX => {
                        Err(format!("{} is {}; it must be at least {}", d.key, self, r.start()))
                    }
                    Some(r) if !r.contains(&(*self as u64)) => {
                        Err(format!("{} is {}; it must be from {} to {}", d.key, self, r.start(), r.end()))
                    }
                    _ => Ok(()),
                }
            }
            fn show(&self, d: &Declared) -> Option<String> {
                let n = *self as u64;
                Some(if d.key.ends_with("_bytes") && n >= 1024 {
                    format!("{n} ({})", slipway_limits::step::bytes(n))
                } else {
                    n.to_string()
                })
            }
        }
    };
}
number!(u64);
number!(u32);

impl Value for bool {
    fn set(&mut self, values: &[&str], d: &Declared) -> Result<(), String> {
        *self = match one(values, d)? {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            v => return Err(format!("{v:?} is not true or false")),
        };
        Ok(())
    }
    fn show(&self, _d: &Declared) -> Option<String> {
        Some(self.to_string())
    }
}

impl Value for String {
    fn set(&mut self, values: &[&str], d: &Declared) -> Result<(), String> {
        *self = one(values, d)?.to_string();
        Ok(())
    }
    fn check(&self, d: &Declared) -> Result<(), String> {
        if d.extra.choices.is_empty() || d.extra.choices.contains(&self.as_str()) {
            Ok(())
        } else {
            Err(format!("{} is {self:?}; it must be one of {}", d.key, d.extra.choices.join(", ")))
        }
    }
    fn show(&self, _d: &Declared) -> Option<String> {
        Some(self.clone()).filter(|s| !s.is_empty())
    }
}

/// A choice of words ([`EngineAccess`], [`Builder`]): refused when set, so it never
/// holds another word.
macro_rules! choice {
    ($t:ty) => {
        impl Value for $t {
            fn set(&mut self, values: &[&str], d: &Declared) -> Result<(), String> {
                let v = one(values, d)?;
                *self = v
                    .parse()
                    .map_err(|_| format!("{} is {v:?}; it must be one of {}", d.key, <$t>::NAMES.join(", ")))?;
                Ok(())
            }
            fn show(&self, _d: &Declared) -> Option<String> {
                Some(self.to_string())
            }
        }
    };
}
choice!(EngineAccess);
choice!(Builder);

impl Value for PathBuf {
    fn set(&mut self, values: &[&str], d: &Declared) -> Result<(), String> {
        *self = PathBuf::from(one(values, d)?);
        Ok(())
    }
    fn show(&self, _d: &Declared) -> Option<String> {
        Some(self.display().to_string())
    }
}

impl Value for Option<PathBuf> {
    fn set(&mut self, values: &[&str], d: &Declared) -> Result<(), String> {
        *self = Some(PathBuf::from(one(values, d)?));
        Ok(())
    }
    fn show(&self, _d: &Declared) -> Option<String> {
        None
    }
}

impl Value for Option<String> {
    fn set(&mut self, values: &[&str], d: &Declared) -> Result<(), String> {
        *self = Some(one(values, d)?.to_string());
        Ok(())
    }
    fn show(&self, _d: &Declared) -> Option<String> {
        None
    }
}

impl Value for Vec<String> {
    fn set(&mut self, values: &[&str], _d: &Declared) -> Result<(), String> {
        *self = values.iter().map(|v| v.to_string()).collect();
        Ok(())
    }
    fn show(&self, _d: &Declared) -> Option<String> {
        Some(self.join(", ")).filter(|s| !s.is_empty())
    }
}

impl Value for Vec<PathBuf> {
    fn set(&mut self, values: &[&str], _d: &Declared) -> Result<(), String> {
        *self = values.iter().map(PathBuf::from).collect();
        Ok(())
    }
    fn show(&self, _d: &Declared) -> Option<String> {
        None
    }
}

/// A map's `KEY=VALUE` entries, in order. A credential's value holds a `:`
/// (`USER:PASSWORD`); a secret map's entries are named by key at most.
fn entries<'v>(values: &[&'v str], d: &Declared) -> Result<Vec<(&'v str, &'v str)>, String> {
    let (shape, credential) = d.extra.map.unwrap_or(("KEY=VALUE", false));
    values
        .iter()
        .map(|entry| match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() && (!credential || v.contains(':')) => Ok((k, v)),
            Some((k, _)) => Err(format!("entry {k:?}: expected {shape}")),
            None if d.extra.secret => Err(format!("an entry has no '=': expected {shape}")),
            None => Err(format!("entry {entry:?}: expected {shape}")),
        })
        .collect()
}

impl Value for BTreeMap<String, String> {
    /// Entries are added, each replacing the entry of its key.
    fn set(&mut self, values: &[&str], d: &Declared) -> Result<(), String> {
        for (k, v) in entries(values, d)? {
            self.insert(k.to_string(), v.to_string());
        }
        Ok(())
    }
    fn show(&self, _d: &Declared) -> Option<String> {
        None
    }
}

impl Value for BTreeMap<String, Credential> {
    /// Entries are added, each replacing the entry of its key.
    fn set(&mut self, values: &[&str], d: &Declared) -> Result<(), String> {
        for (k, v) in entries(values, d)? {
            self.insert(k.to_string(), Credential::parse(v));
        }
        Ok(())
    }
    fn show(&self, _d: &Declared) -> Option<String> {
        None
    }
}

impl Value for BTreeMap<String, TenantSettings> {
    fn set(&mut self, values: &[&str], _d: &Declared) -> Result<(), String> {
        values.iter().try_for_each(|entry| add_tenant_entry(self, entry))
    }
    fn show(&self, _d: &Declared) -> Option<String> {
        None
    }
}

/// Declares every setting once: the struct's field (its doc the help), its default,
/// how it is read, its flag and value name, and what else it declares.
macro_rules! settings {
    ($( $(#[doc = $doc:expr])* $name:ident : $ty:ty = $default:expr => $kind:ident($flag:literal, $value:literal, $extra:expr); )*) => {
        /// Everything `slipway serve` can be told. Field names are the config file's keys;
        /// each is also read from `SLIPWAY_<NAME>` (upper case), e.g. `SLIPWAY_CONCURRENCY=4`:
        /// lists as `a,b`, maps as `KEY=VALUE,KEY=VALUE` (`SLIPWAY_IMAGE_ALIASES=bash=busybox`).
        #[derive(Debug, Clone, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings { $( $name: $default, )* }
            }
        }

        /// Every setting, in the order of the declaration.
        pub fn declared() -> Vec<Declared> {
            vec![$( Declared {
                key: stringify!($name),
                flag: $flag,
                value_name: $value,
                help: concat!($($doc, "\n"),*),
                kind: Kind::$kind,
                extra: $extra,
            }, )*]
        }

        impl Settings {
            /// Sets the setting `key` from `values`; `Ok(false)` when `key` is no setting.
            fn set_key(&mut self, key: &str, values: &[&str]) -> Result<bool, String> {
                let all = declared();
                match key {
                    $( stringify!($name) => {
                        let d = all.iter().find(|d| d.key == key).expect("declared");
                        Value::set(&mut self.$name, values, d)?;
                    } )*
                    _ => return Ok(false),
                }
                Ok(true)
            }

            /// Checks every setting against its declaration (bounds, choices).
            pub fn check(&self) -> Result<(), String> {
                let all = declared();
                let mut i = all.iter();
                $( Value::check(&self.$name, i.next().expect("declared"))?; )*
                Ok(())
            }

            /// Each setting's default as help shows it, by key.
            pub fn defaults_shown() -> BTreeMap<&'static str, String> {
                let s = Settings::default();
                let all = declared();
                let mut i = all.iter();
                let mut out = BTreeMap::new();
                $( {
                    let d = i.next().expect("declared");
                    if let Some(v) = Value::show(&s.$name, d) {
                        out.insert(stringify!($name), v);
                    }
                } )*
                out
            }
        }
    };
}

settings! {
    /// Address to listen on
    listen: String = "127.0.0.1:8080".into() => Text("listen", "ADDR", Extra::NONE);
    /// A PEM file of the certificate chain to serve HTTPS with (with `tls_key`); every
    /// route is then served over TLS on the listen address
    tls_cert: Option<PathBuf> = None => Text("tls-cert", "FILE", Extra::NONE);
    /// The PEM file of `tls_cert`'s private key
    tls_key: Option<PathBuf> = None => Text("tls-key", "FILE", Extra::NONE);
    /// Where uploads, contexts, logs and per-run secret files live
    data_dir: PathBuf = PathBuf::from("./slipway-data") => Text("data-dir", "DIR", Extra::NONE);
    /// The queue's database: `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`
    database: String = "sqlite://./slipway.db".into() => Text("database", "URL", Extra::NONE);
    /// Runs this daemon executes at once; 0 serves the API and fires triggers but runs
    /// nothing
    concurrency: u32 = 2 => Number("concurrency", "N", Extra::NONE);
    /// A bearer token clients must present (repeatable). Without any the daemon listens on
    /// loopback only and asks for none.
    tokens: Vec<String> = Vec::new() => List("token", "TOKEN", Extra { secret: true, ..Extra::NONE });
    /// A tenant's token, admin's token or repository of the daemon's registries it owns
    /// (`team-a:token=T`, `team-a:admin-token=T`, `team-a:repository=team-a/*`; repeatable;
    /// tokens never printed).
    tenants: BTreeMap<String, TenantSettings> = BTreeMap::new() => Tenants("tenant", "NAME:KIND=VALUE", Extra { secret: true, ..Extra::NONE });
    /// An operator's token: sees and acts on every tenant (repeatable; never printed).
    admin_tokens: Vec<String> = Vec::new() => List("admin-token", "TOKEN", Extra { secret: true, ..Extra::NONE });
    /// An image of the engine (not of a registry) runs may use by name, pinned for each run
    /// at its start (repeatable).
    local_images: Vec<String> = Vec::new() => List("local-image", "IMAGE", Extra::NONE);
    /// A Dockerfile frontend (`# syntax=`) runs may use, by repository or digest
    /// (repeatable)
    allowed_frontends: Vec<String> = vec!["docker.io/docker/dockerfile".into()] => List("allowed-frontend", "IMAGE", Extra::NONE);
    /// Mount the data dir nodev,nosuid at start, so steps leave no device files or set-uid
    /// programs (needs root)
    harden_data_dir: bool = true => Switch("harden-data-dir", "BOOL", Extra::NONE);
    /// Largest upload accepted, in bytes
    max_upload_bytes: u64 = 2 * 1024 * 1024 * 1024 => Number("max-upload-bytes", "BYTES", Extra::AT_LEAST_ONE);
    /// Days to keep the contexts and logs of finished runs; 0 purges them at the next pass
    retention_days: u64 = 7 => Number("retention-days", "DAYS", Extra { range: Some(0..=100000), ..Extra::NONE });
    /// Seconds between purges of expired files
    purge_interval_seconds: u64 = 600 => Number("purge-interval-seconds", "SECONDS", Extra { range: Some(1..=31536000), ..Extra::NONE });
    /// How long a worker's claim on a run lasts without renewal, in seconds
    lease_seconds: u64 = 15 => Number("lease-seconds", "SECONDS", Extra { range: Some(3..=3600), ..Extra::NONE });
    /// Re-queue a run once when its worker is lost instead of ending it as Error.
    requeue_lost_runs: bool = false => Switch("requeue-lost-runs", "BOOL", Extra::NONE);
    /// Warn about unknown keys in task files instead of refusing them.
    allow_unknown_keys: bool = false => Switch("allow-unknown-keys", "BOOL", Extra::NONE);
    /// Let steps run privileged (root on the host).
    allow_privileged: bool = false => Switch("allow-privileged", "BOOL", Extra::NONE);
    /// Let steps and builds use the host's network (`network: host`).
    allow_host_network: bool = false => Switch("allow-host-network", "BOOL", Extra::NONE);
    /// Let steps publish ports on non-loopback addresses.
    allow_public_ports: bool = false => Switch("allow-public-ports", "BOOL", Extra::NONE);
    /// How steps reach the engine: `proxy` (a per-run API proxy confined to the run),
    /// `full` (the engine's own socket: root on the host) or `none`
    engine_access: EngineAccess = EngineAccess::Proxy => Text("engine-access", "ACCESS", Extra { choices: EngineAccess::NAMES, ..Extra::NONE });
    /// The builder of `build` steps: `buildkit` (when the engine offers it) or `classic`; a
    /// step's `DOCKER_BUILDKIT=0|1` overrides it
    builder: Builder = Builder::BuildKit => Text("builder", "BUILDER", Extra { choices: Builder::NAMES, ..Extra::NONE });
    /// Largest expanded size of an uploaded or downloaded context, in bytes
    max_context_bytes: u64 = 8 << 30 => Number("max-context-bytes", "BYTES", Extra::AT_LEAST_ONE);
    /// Most entries an uploaded or downloaded context may hold
    max_context_entries: u64 = 500_000 => Number("max-context-entries", "N", Extra::AT_LEAST_ONE);
    /// A directory `file://` git sources may come from (repeatable; none by default).
    file_source_dirs: Vec<PathBuf> = Vec::new() => List("file-source-dir", "DIR", Extra::NONE);
    /// A host or network (`git.internal`, `10.0.0.0/8`, `127.0.0.1`) URL sources may reach
    /// although it is loopback, private, link-local or unspecified (repeatable).
    allowed_source_hosts: Vec<String> = Vec::new() => List("allowed-source-host", "HOST", Extra::NONE);
    /// A host or network outbound webhooks may reach although it is loopback, private,
    /// link-local or unspecified (repeatable).
    allowed_webhook_hosts: Vec<String> = Vec::new() => List("allowed-webhook-host", "HOST", Extra::NONE);
    /// Seconds one webhook delivery attempt may take
    webhook_timeout_seconds: u64 = 10 => Number("webhook-timeout-seconds", "SECONDS", Extra { range: Some(1..=3600), ..Extra::NONE });
    /// Seconds before a failed webhook delivery is tried again, doubled each time up to an
    /// hour
    webhook_retry_seconds: u64 = 10 => Number("webhook-retry-seconds", "SECONDS", Extra { range: Some(1..=3600), ..Extra::NONE });
    /// Seconds during which a webhook delivery is retried before it is given up
    webhook_retry_period_seconds: u64 = 86_400 => Number("webhook-retry-period-seconds", "SECONDS", Extra { range: Some(0..=315360000), ..Extra::NONE });
    /// The daemon's address as others reach it, for links in run events
    public_url: String = String::new() => Text("public-url", "URL", Extra::NONE);
    /// Seconds to wait for a source server to accept a connection
    fetch_connect_timeout_seconds: u64 = 10 => Number("fetch-connect-timeout-seconds", "SECONDS", Extra { range: Some(1..=86400), ..Extra::NONE });
    /// Seconds a source server may stay silent during a fetch
    fetch_read_timeout_seconds: u64 = 60 => Number("fetch-read-timeout-seconds", "SECONDS", Extra { range: Some(1..=86400), ..Extra::NONE });
    /// Seconds a client has to send a request's head; idle keep-alive connections close
    /// after as long
    http_header_timeout_seconds: u64 = 30 => Number("http-header-timeout-seconds", "SECONDS", Extra { range: Some(1..=86400), ..Extra::NONE });
    /// Connections one run's steps may hold open to its engine proxy (hijacked attach and
    /// exec streams count); more are answered 429.
    max_proxy_connections_per_run: u64 = 64 => Number("max-proxy-connections-per-run", "N", Extra::AT_LEAST_ONE);
    /// Connections every run's engine proxy together may hold open.
    max_proxy_connections: u64 = 2048 => Number("max-proxy-connections", "N", Extra::AT_LEAST_ONE);
    /// Log follows (`?follow=true`) and dashboard live feeds one token may hold open.
    max_follows_per_token: u64 = 32 => Number("max-follows-per-token", "N", Extra::AT_LEAST_ONE);
    /// API requests one token may have in flight at once.
    max_requests_per_token: u64 = 32 => Number("max-requests-per-token", "N", Extra::AT_LEAST_ONE);
    /// Log follows and live feeds the daemon holds open in all.
    max_follows: u64 = 1024 => Number("max-follows", "N", Extra::AT_LEAST_ONE);
    /// API connections one client address may hold open; more are closed at once.
    max_connections_per_client: u64 = 256 => Number("max-connections-per-client", "N", Extra::AT_LEAST_ONE);
    /// Bytes of a run's log kept; past them the log says "log truncated at N bytes" and the
    /// run goes on.
    max_log_bytes: u64 = 100 << 20 => Number("max-log-bytes", "N", Extra::AT_LEAST_ONE);
    /// Uploaded contexts a tenant may keep at once (0: none).
    max_uploads_per_tenant: u64 = 200 => Number("max-uploads-per-tenant", "N", Extra::NONE);
    /// Bytes of uploaded contexts a tenant may keep at once (0: none).
    max_upload_bytes_per_tenant: u64 = 20 << 30 => Number("max-upload-bytes-per-tenant", "N", Extra::NONE);
    /// Hours after which an upload no queued run and no task names is removed.
    unused_upload_hours: u64 = 24 => Number("unused-upload-hours", "N", Extra::AT_LEAST_ONE);
    /// Runs a tenant may have queued at once; more are refused (429), triggers' skipped.
    max_queued_runs_per_tenant: u64 = 500 => Number("max-queued-runs-per-tenant", "N", Extra::AT_LEAST_ONE);
    /// Runs of one tenant running at once in the whole fleet (0: no cap beyond fair
    /// claims).
    max_running_runs_per_tenant: u64 = 0 => Number("max-running-runs-per-tenant", "N", Extra::NONE);
    /// Tasks a tenant may have (0: none).
    max_tasks_per_tenant: u64 = 500 => Number("max-tasks-per-tenant", "N", Extra::NONE);
    /// Timer triggers a tenant's tasks may have in all (0: none).
    max_timers_per_tenant: u64 = 100 => Number("max-timers-per-tenant", "N", Extra::NONE);
    /// The shortest time between two firings of a timer that a tenant (not an operator) may
    /// set (0: any).
    min_timer_period_seconds: u64 = 300 => Number("min-timer-period-seconds", "N", Extra::NONE);
    /// Bytes a run's `/workspace` may hold; checked while steps run, then the run ends as
    /// Failed (0: no limit).
    max_workspace_bytes: u64 = 10 << 30 => Number("max-workspace-bytes", "N", Extra::NONE);
    /// Memory of a step container that asks for none (`cmd: -m 2g …` asks).
    step_memory_bytes: u64 = 4 << 30 => Number("step-memory-bytes", "N", Extra::AT_LEAST_ONE);
    /// The most memory a step container may ask for.
    max_step_memory_bytes: u64 = 16 << 30 => Number("max-step-memory-bytes", "N", Extra::AT_LEAST_ONE);
    /// Processes a step container may run when it asks for no number (`--pids-limit`).
    step_pids: u64 = 1024 => Number("step-pids", "N", Extra::AT_LEAST_ONE);
    /// The most processes a step container may ask for.
    max_step_pids: u64 = 4096 => Number("max-step-pids", "N", Extra::AT_LEAST_ONE);
    /// `/dev/shm` of a step container that asks for no size (`--shm-size`).
    step_shm_bytes: u64 = 64 << 20 => Number("step-shm-bytes", "N", Extra::AT_LEAST_ONE);
    /// The largest `/dev/shm` a step container may ask for.
    max_step_shm_bytes: u64 = 1 << 30 => Number("max-step-shm-bytes", "N", Extra::AT_LEAST_ONE);
    /// Size of a tmpfs a container started through the proxy mounts without one.
    step_tmpfs_bytes: u64 = 256 << 20 => Number("step-tmpfs-bytes", "N", Extra::AT_LEAST_ONE);
    /// The largest tmpfs a container started through the proxy may mount.
    max_step_tmpfs_bytes: u64 = 2 << 30 => Number("max-step-tmpfs-bytes", "N", Extra::AT_LEAST_ONE);
    /// Seconds a shutdown waits for running runs before stopping them as Error
    shutdown_grace_seconds: u64 = 30 => Number("shutdown-grace-seconds", "SECONDS", Extra { range: Some(0..=86400), ..Extra::NONE });
    /// Map a `cmd` image alias to an image, e.g. `bash=busybox:latest` (repeatable).
    image_aliases: BTreeMap<String, String> = BTreeMap::new() => Map("image-alias", "ALIAS=IMAGE", Extra { map: Some(("ALIAS=IMAGE", false)), ..Extra::NONE });
    /// Credentials for a registry runs pull from and push to (repeatable; never printed).
    registry_credentials: BTreeMap<String, Credential> = BTreeMap::new() => Map("registry-credential", "REGISTRY=USER:PASSWORD", Extra { secret: true, map: Some(("REGISTRY=USER:PASSWORD", true)), ..Extra::NONE });
    /// Credentials for HTTP(S) git sources on HOST (with its port, if any; repeatable;
    /// never printed).
    git_credentials: BTreeMap<String, Credential> = BTreeMap::new() => Map("git-credential", "HOST=USER:TOKEN", Extra { secret: true, map: Some(("HOST=USER:TOKEN", true)), ..Extra::NONE });
    /// This machine's name in a fleet; worker names start with it
    node: String = hostname() => Text("node", "NAME", Extra::NONE);
    /// The image that holds a run's network namespace in shared network mode (needs
    /// `sleep`)
    sandbox_image: String = "busybox:latest".into() => Text("sandbox-image", "IMAGE", Extra::NONE);
    /// The subscription the Azure CLI sees this daemon in (one per daemon).
    arm_subscription: String = "slipway".into() => Text("arm-subscription", "NAME", Extra::NONE);
    /// The resource group the Azure CLI sees this daemon's registry in.
    arm_resource_group: String = "slipway".into() => Text("arm-resource-group", "NAME", Extra::NONE);
    /// The registry's name as the Azure CLI gives it (`az acr build -r NAME`; 5 to 50
    /// letters, digits or '-'); its login server is `registry`.
    arm_registry_name: String = "slipway".into() => Text("arm-registry-name", "NAME", Extra::NONE);
    /// The registry runs build for (`{{.Run.Registry}}`, `$Registry`).
    registry: String = String::new() => Text("registry", "HOST", Extra::NONE);
    /// Seconds between polls of tracked base images; 0 never polls
    poll_interval_seconds: u64 = 300 => Number("poll-interval-seconds", "SECONDS", Extra::NONE);
    /// The value registries send in `X-Slipway-Registry-Secret` with their notifications
    /// (never printed).
    registry_notification_secret: Option<String> = None => Text("registry-notification-secret", "SECRET", Extra { secret: true, ..Extra::NONE });
    /// Where uploads and finished logs are kept: an object store a fleet shares
    /// (`azure://CONTAINER`)
    blob_store: String = String::new() => Text("blob-store", "URL", Extra::NONE);
    /// An option of the blob store, `object_store`'s key and a value, e.g.
    /// `azure_storage_account_name=ACCOUNT` (repeatable; never printed).
    blob_store_options: BTreeMap<String, String> = BTreeMap::new() => Map("blob-store-option", "KEY=VALUE", Extra { secret: true, map: Some(("KEY=VALUE", false)), ..Extra::NONE });
    /// The fleet's key for every secret it keeps, 32 bytes in base64 (never printed).
    fleet_key: Option<String> = None => Text("fleet-key", "KEY", Extra { secret: true, ..Extra::NONE });
    /// The fleet key `--fleet-key` replaces: secrets it sealed still open, and are sealed
    /// again under the new key at start (never printed).
    fleet_key_previous: Option<String> = None => Text("fleet-key-previous", "KEY", Extra { secret: true, ..Extra::NONE });
}

/// A comma-separated list, blanks dropped.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Adds one tenant entry; an error never shows the value: it may be a token.
fn add_tenant_entry(tenants: &mut BTreeMap<String, TenantSettings>, entry: &str) -> Result<(), String> {
    const SHAPE: &str = "expected NAME:token=TOKEN, NAME:admin-token=TOKEN or NAME:repository=PATTERN";
    let (name, rest) = entry.split_once(':').ok_or_else(|| format!("an entry has no ':': {SHAPE}"))?;
    let (kind, value) = rest
        .split_once('=')
        .ok_or_else(|| format!("the entry for tenant {name:?} has no '=': {SHAPE}"))?;
    if name.is_empty() || value.is_empty() {
        return Err(format!("an entry has an empty tenant name or value: {SHAPE}"));
    }
    let tenant = tenants.entry(name.to_string()).or_default();
    match kind {
        "token" => tenant.tokens.push(value.to_string()),
        "admin-token" | "admin_token" => tenant.admin_tokens.push(value.to_string()),
        "repository" => tenant.repositories.push(value.to_string()),
        other => return Err(format!("the entry for tenant {name:?} sets {other:?}: {SHAPE}")),
    }
    Ok(())
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
    #[error("--{flag}: {message}")]
    Flag { flag: String, message: String },
    #[error("setting {message}")]
    Check { message: String },
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

    /// The config file's keys, one per setting, in the order of the declaration.
    pub fn keys() -> Vec<&'static str> {
        declared().iter().map(|d| d.key).collect()
    }

    /// Applies `SLIPWAY_<KEY>` (`name`) to the setting `key`; `Ok(false)` when `key` is
    /// no setting (other `SLIPWAY_*` variables belong to the client, tests and scripts).
    /// Lists and maps are comma-separated; a map's entries add to the file's.
    fn apply_env(&mut self, name: &str, key: &str, value: &str) -> Result<bool, SettingsError> {
        let key = if key == "token" { "tokens" } else { key };
        let kind = declared().into_iter().find(|d| d.key == key).map(|d| d.kind);
        let values: Vec<&str> = match kind {
            Some(Kind::List | Kind::Map | Kind::Tenants) => list(value).collect(),
            _ => vec![value],
        };
        self.set_key(key, &values).map_err(|message| SettingsError::Env {
            name: name.to_string(),
            message,
        })
    }

    /// Applies a flag's values (each occurrence one) to its setting: a list given
    /// replaces the list, a map's entries add to it, entry by entry.
    pub fn apply(&mut self, d: &Declared, values: &[&str]) -> Result<(), SettingsError> {
        self.set_key(d.key, values).map(|_| ()).map_err(|message| SettingsError::Flag {
            flag: d.flag.to_string(),
            message,
        })
    }

    /// Every setting checked against its bounds and choices, once, when all are read.
    pub fn checked(self) -> Result<Settings, SettingsError> {
        self.check().map_err(|message| SettingsError::Check { message })?;
        self.check_arm_names().map_err(|message| SettingsError::Check { message })?;
        Ok(self)
    }

    /// The names the Azure CLI sees, as ARM allows them.
    fn check_arm_names(&self) -> Result<(), String> {
        let ok = |s: &str, more: &str| !s.is_empty() && s.len() <= 90 && s.chars().all(|c| c.is_ascii_alphanumeric() || more.contains(c));
        if !(5..=50).contains(&self.arm_registry_name.len()) || !ok(&self.arm_registry_name, "-") {
            return Err(format!(
                "arm_registry_name is {:?}; it must be 5 to 50 letters, digits or '-'",
                self.arm_registry_name
            ));
        }
        for (key, value) in [
            ("arm_subscription", &self.arm_subscription),
            ("arm_resource_group", &self.arm_resource_group),
        ] {
            if !ok(value, "-_.()") {
                return Err(format!("{key} is {value:?}; it must be 1 to 90 letters, digits or -_.()"));
            }
        }
        Ok(())
    }

    /// Adds one `NAME:token=TOKEN`, `NAME:admin-token=TOKEN` or `NAME:repository=PATTERN`
    /// entry (the form of `--tenant` and `SLIPWAY_TENANTS`) to `tenants`.
    pub fn add_tenant_entry(&mut self, entry: &str) -> Result<(), String> {
        add_tenant_entry(&mut self.tenants, entry)
    }

    /// The daemon's address for links others follow: `public_url`, else the listen address.
    pub fn public_base(&self) -> String {
        if self.public_url.is_empty() {
            // Listening on every interface: the machine's name is the address to give.
            let listen = match self.listen.rsplit_once(':') {
                Some(("0.0.0.0" | "[::]", port)) => format!("{}:{port}", self.node),
                _ => self.listen.clone(),
            };
            let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
            format!("{scheme}://{listen}")
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
        assert_eq!(s.registry_credentials["reg.io"].text(), "user:p=w");
        assert_eq!(s.git_credentials["git.internal:8443"].text(), "builder:tok");
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
