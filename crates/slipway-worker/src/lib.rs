//! The workers of `slipway serve`, and the queue's front door: [`submit::submit`] puts a
//! run and its secrets in the queue; each worker claims one run at a time under a lease
//! it renews, fetches its source, turns the request into a task and hands the plan to
//! [`slipway_runner`], records how it ended, and reaps runs whose worker was lost. Logs
//! go to one file per run. Also: the warm pool of networks, step metrics, and what to
//! do while the engine is down. Knows nothing of HTTP routes or of triggers.

pub mod events;
pub mod fleet;
pub mod logs;
pub mod metrics;
mod netpool;
pub mod sealed;
mod steps;
pub mod submit;
pub mod tenants;
pub mod vault;
mod worker;

pub use worker::{housekeeping, reap_once, watch_engine, work};

use slipway_engine::Engine;
use slipway_settings::Settings;
use slipway_store::{Clock, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What this process's workers, and everything that queues runs, share.
pub struct Node {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn Engine>,
    pub clock: Arc<dyn Clock>,
    /// `node/instance-`: the prefix of this process's worker names.
    pub instance: String,
    /// Woken when a run is queued.
    pub wake: Notify,
    pool: Arc<netpool::NetworkPool>,
    /// Notified whenever a run this process knows of is queued, starts, ends or has a
    /// step start or end (the dashboard's live list; other nodes' runs it polls for).
    pub changed: Arc<Notify>,
    /// Who is told of runs queued, started, finished and images pushed.
    events: events::Listeners,
    /// Notified whenever a run's log grows.
    pub log_appended: logs::Appended,
    pub metrics: metrics::Metrics,
    /// Cancel tokens of the runs this process is executing.
    pub running: Mutex<HashMap<String, CancellationToken>>,
    /// What sources may make the daemon reach.
    pub reach: Arc<slipway_sources::Reach>,
    /// Why the engine cannot be used right now (`None` while it answers); workers claim
    /// nothing while it is set.
    engine_down: Mutex<Option<String>>,
    /// Runs that ended while the engine was unreachable: their leftovers are swept when
    /// it answers again.
    unswept: Mutex<Vec<String>>,
    /// Set when the daemon stops its own runs (shutdown): the reason they end `Error`.
    stopping: Mutex<Option<String>>,
    /// The blob store a fleet shares; `None` keeps uploads and logs in the data dir.
    pub blobs: Option<slipway_blobs::Blobs>,
    /// Every secret the node keeps (`vault.rs`): files in the data dir, or sealed in
    /// the database with the fleet's key.
    pub vault: vault::Vault,
    /// Connections runs' steps hold to their engine proxies, counted per run.
    pub proxy_connections: Arc<slipway_limits::Gate>,
    /// Log follows and live feeds held open, counted per token.
    pub follows: Arc<slipway_limits::Gate>,
    /// The tenants in force (`tenants.rs`): read by every request and every run.
    directory: std::sync::RwLock<Arc<slipway_api::tenant::Directory>>,
}

impl Node {
    /// A node of `settings` on this store and engine. `instance` names its workers.
    pub fn new(settings: Settings, store: Arc<dyn Store>, engine: Arc<dyn Engine>, clock: Arc<dyn Clock>, instance: String) -> Node {
        let pool = netpool::NetworkPool::new(engine.clone(), &instance, settings.concurrency as usize);
        let settings_copy = settings.clone();
        let store_copy = store.clone();
        let reach = Arc::new(slipway_sources::Reach {
            file_dirs: settings.file_source_dirs.clone(),
            allowed: settings.allowed_source_hosts.clone(),
            setting: "allowed_source_hosts",
            ..Default::default()
        });
        Node {
            settings,
            store,
            engine,
            clock,
            instance,
            wake: Notify::new(),
            pool,
            log_appended: Arc::new(Notify::new()),
            changed: Arc::new(Notify::new()),
            events: Default::default(),
            metrics: metrics::Metrics::default(),
            running: Mutex::new(HashMap::new()),
            reach,
            engine_down: Mutex::new(None),
            unswept: Mutex::new(Vec::new()),
            stopping: Mutex::new(None),
            blobs: None,
            vault: vault::Vault::new(&settings_copy.data_dir, store_copy, None),
            proxy_connections: slipway_limits::Gate::new(
                settings_copy.max_proxy_connections as usize,
                settings_copy.max_proxy_connections_per_run as usize,
            ),
            follows: slipway_limits::Gate::new(settings_copy.max_follows as usize, settings_copy.max_follows_per_token as usize),
            // Settings that do not make a directory make one nothing opens, never an open
            // one; `publish_directory` then fails the start with the reason.
            directory: std::sync::RwLock::new(Arc::new(tenants::directory_of(&settings_copy).unwrap_or_else(|_| {
                slipway_api::tenant::Directory {
                    operator_token_hashes: vec!["no token hashes to this".into()],
                    ..Default::default()
                }
            }))),
        }
    }

    /// The node shares uploads and logs through `blobs` and seals secrets with `keys`.
    pub fn with_fleet(mut self, blobs: Option<slipway_blobs::Blobs>, keys: Option<vault::FleetKeys>) -> Node {
        self.blobs = blobs.filter(|b| b.is_shared());
        self.vault = vault::Vault::new(&self.settings.data_dir, self.store.clone(), keys);
        self
    }

    /// The time, from the node's clock (which tests control).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(self.clock.now_ms()).unwrap_or_default()
    }

    pub fn data(&self, sub: &str) -> PathBuf {
        self.settings.data_dir.join(sub)
    }

    /// How this node loads task files: its settings' policy, with these values and secrets.
    pub fn task_options(
        &self,
        run: slipway_taskfile::RunVars,
        values: serde_json::Value,
        secrets: std::collections::BTreeMap<String, String>,
    ) -> slipway_taskfile::Options {
        let mut opts = slipway_taskfile::Options::new(run);
        opts.values = values;
        opts.secrets = secrets;
        opts.allow_unknown_keys = self.settings.allow_unknown_keys;
        opts.allow_privileged = self.settings.allow_privileged;
        opts.allow_host_network = self.settings.allow_host_network;
        opts.allow_public_ports = self.settings.allow_public_ports;
        opts.image_aliases = self.settings.image_aliases.clone();
        opts
    }

    pub fn log_sink(&self, run_id: &str) -> std::io::Result<slipway_engine::LogSink> {
        logs::file_sink(&logs::log_path(&self.settings.data_dir, run_id), self.log_appended.clone())
    }

    /// Sets who is told of this node's run events (once; false if one was set).
    pub fn listen_to_runs(&self, listener: Arc<dyn events::RunEvents>) -> bool {
        self.events.set(listener)
    }

    pub(crate) fn tell(&self, run_id: &str, event: events::RunEvent) {
        self.events.tell(run_id, event);
    }

    /// Cancels a run wherever it is: a queued run at once, a running one on whichever
    /// node runs it (told now, and it also notices within half a second). `None` when
    /// there is no such run, or (with `tenant`) it is not that tenant's.
    pub async fn cancel(&self, tenant: Option<&str>, run_id: &str) -> Result<Option<slipway_store::RunRecord>, slipway_store::StoreError> {
        // A queued run ends here (once, whoever else cancels it); a running one ends
        // when its worker stops it.
        if self.store.cancel_queued(tenant, run_id).await? {
            self.tell(run_id, events::RunEvent::Finished);
        }
        let record = self.store.request_cancel(tenant, run_id).await?;
        if record.is_some() {
            self.cancel_local(run_id);
            let _ = self.store.notify(fleet::CANCEL_CHANNEL, run_id).await;
            self.changed.notify_waiters();
        }
        Ok(record)
    }

    /// Cancels a run this process is executing (a no-op for others).
    pub fn cancel_local(&self, run_id: &str) {
        if let Some(token) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(run_id) {
            token.cancel();
        }
    }

    /// How many runs this process is executing.
    pub fn running_count(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Stops every run this process executes, which then ends `Error` with `why` (not
    /// `Canceled`: nobody asked); their containers are removed by the runner.
    pub fn stop_runs(&self, why: &str) {
        *self.stopping.lock().unwrap_or_else(|p| p.into_inner()) = Some(why.to_string());
        for token in self.running.lock().unwrap_or_else(|p| p.into_inner()).values() {
            token.cancel();
        }
    }

    /// Why runs are being stopped by the daemon itself, if they are.
    pub(crate) fn stopping(&self) -> Option<String> {
        self.stopping.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Prepares the network pool: removes dead daemons' pools, fills this one.
    pub async fn prepare_pool(&self) {
        self.pool.clear_stale(&self.settings.node).await;
        self.pool.fill().await;
    }

    pub async fn drain_pool(&self) {
        self.pool.drain().await;
    }
}

/// What a run of `settings`' daemon may reach of its host.
pub fn host_access(settings: &Settings) -> slipway_runner::HostAccess {
    let mut host = slipway_runner::HostAccess::untrusted();
    host.engine = settings.engine_access;
    host.public_ports = settings.allow_public_ports;
    host.privileged = settings.allow_privileged;
    host.host_network = settings.allow_host_network;
    host
}
