//! `slipway serve`: accepts work over HTTP, queues it durably, and runs it on a pool
//! of workers with the same runner as `slipway exec`.
//!
//! Requests become runs in the [`slipway_store`] queue; each worker claims one run at
//! a time under a lease it renews, fetches the run's source (an upload or a git
//! repository), turns the request into a task file (a quick build is a two-step task),
//! and hands the plan to [`slipway_runner`]. Logs go to one file per run, which the
//! API streams from any offset. Secret values live only in a per-run file in the data
//! directory (mode 0600) until the run ends, never in the database or the logs.

pub mod api;
mod images;
mod logs;
mod metrics;
mod netpool;
pub mod reach;
pub mod settings;
pub mod sources;
pub mod submit;
pub mod tasks;
pub mod timers;
pub mod uploads;
pub mod webhooks;
mod worker;

pub use settings::Settings;

use anyhow::Context as _;
use slipway_engine::Engine;
use slipway_store::{Clock, Store, SystemClock};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What every handler and worker shares.
pub struct Daemon {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub engine: Arc<dyn Engine>,
    pub clock: Arc<dyn Clock>,
    /// `node/instance-`: the prefix of this process's worker names.
    pub instance: String,
    wake: Notify,
    /// Bumped (and `tasks_changed` notified) whenever a task is saved or deleted.
    tasks_version: std::sync::atomic::AtomicU64,
    tasks_changed: Notify,
    pool: Arc<netpool::NetworkPool>,
    /// Notified whenever a run's log grows.
    log_appended: logs::Appended,
    metrics: metrics::Metrics,
    /// Cancel tokens of the runs this process is executing.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// What sources may make the daemon reach.
    pub reach: Arc<reach::Reach>,
    /// Why the engine cannot be used right now (`None` while it answers); workers claim
    /// nothing while it is set.
    engine_down: Mutex<Option<String>>,
    /// Runs that ended while the engine was unreachable: their leftovers are swept when
    /// it answers again.
    unswept: Mutex<Vec<String>>,
}

impl Daemon {
    pub fn data(&self, sub: &str) -> PathBuf {
        self.settings.data_dir.join(sub)
    }

    /// Tells the timer scheduler that tasks changed.
    pub(crate) fn tasks_touched(&self) {
        self.tasks_version.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.tasks_changed.notify_waiters();
    }

    /// How this daemon loads task files: its settings' policy, with these values and secrets.
    pub(crate) fn task_options(
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

    pub(crate) fn log_sink(&self, run_id: &str) -> std::io::Result<slipway_engine::LogSink> {
        logs::file_sink(&logs::log_path(&self.settings.data_dir, run_id), self.log_appended.clone())
    }
}

/// Starts the daemon and serves until Ctrl-C or SIGTERM; `ready` is told the address
/// once the daemon accepts requests.
pub async fn serve(mut settings: Settings, ready: impl FnOnce(std::net::SocketAddr)) -> anyhow::Result<()> {
    if settings.tokens.is_empty() && !settings.listens_on_loopback() {
        anyhow::bail!(
            "listening on {} needs at least one token (--token or SLIPWAY_TOKENS); without tokens the daemon only listens on loopback",
            settings.listen
        );
    }
    settings.host_access().map_err(|e| anyhow::anyhow!(e))?;
    // The data dir holds other runs' sources, logs and secrets: only the daemon reads it.
    create_private(&settings.data_dir)?;
    for sub in ["uploads", "contexts", "logs", "secrets", "scratch"] {
        create_private(&settings.data_dir.join(sub))?;
    }
    sources::set_git_timeouts(
        std::time::Duration::from_secs(settings.fetch_connect_timeout_seconds.max(1)),
        std::time::Duration::from_secs(settings.fetch_read_timeout_seconds.max(1)),
    );
    // Contexts are bind-mounted into containers, which needs absolute paths.
    settings.data_dir = settings
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", settings.data_dir.display()))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = slipway_store::open(&settings.database, clock.clone())
        .await
        .with_context(|| format!("cannot open the database {}", settings.database))?;
    let docker = slipway_engine::Docker::connect()?;
    docker.ping().await?;
    let engine: Arc<dyn Engine> = Arc::new(docker);
    let instance = format!(
        "{}/{}-{}-",
        settings.node,
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let pool = netpool::NetworkPool::new(engine.clone(), &instance, settings.concurrency as usize);
    let reach = Arc::new(reach::Reach {
        file_dirs: settings.file_source_dirs.clone(),
        allowed: settings.allowed_source_hosts.clone(),
    });
    let daemon = Arc::new(Daemon {
        reach,
        engine_down: Mutex::new(None),
        unswept: Mutex::new(Vec::new()),
        pool,
        settings,
        store,
        engine,
        clock,
        instance,
        wake: Notify::new(),
        tasks_version: std::sync::atomic::AtomicU64::new(0),
        tasks_changed: Notify::new(),
        log_appended: Arc::new(Notify::new()),
        metrics: metrics::Metrics::default(),
        running: Mutex::new(HashMap::new()),
    });
    // Runs this machine was executing before a restart have no worker any more.
    let node_prefix = format!("{}/", daemon.settings.node);
    daemon.store.expire_node_leases(&node_prefix, &daemon.instance).await?;
    worker::reap_once(&daemon).await;
    daemon.pool.clear_stale(&daemon.settings.node).await;
    daemon.pool.fill().await;
    let shutdown = CancellationToken::new();
    // Concurrency 0 is a node that serves the API and fires triggers but runs nothing.
    for i in 0..daemon.settings.concurrency {
        tokio::spawn(worker::work(daemon.clone(), format!("{}{i}", daemon.instance), shutdown.clone()));
    }
    tokio::spawn(worker::housekeeping(daemon.clone(), shutdown.clone()));
    tokio::spawn(worker::watch_engine(daemon.clone(), shutdown.clone()));
    tokio::spawn(timers::run(daemon.clone(), shutdown.clone()));
    tokio::spawn(images::poll(daemon.clone(), shutdown.clone()));
    tracing::info!(listen = %daemon.settings.listen, concurrency = daemon.settings.concurrency, "slipway daemon ready");
    ready(listener.local_addr()?);
    let app = api::router(daemon.clone());
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        stop.cancel();
    });
    let header_timeout = std::time::Duration::from_secs(daemon.settings.http_header_timeout_seconds.max(1));
    serve_http(listener, app, header_timeout, shutdown.clone()).await;
    // Stop the runs this process holds; their containers are removed by the runner.
    for token in daemon.running.lock().unwrap_or_else(|p| p.into_inner()).values() {
        token.cancel();
    }
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    daemon.pool.drain().await;
    Ok(())
}

/// Serves HTTP/1.1 until `shutdown`, then lets open requests finish for a few seconds.
/// A client must send a request's head within `header_timeout` and an idle keep-alive
/// connection is closed after as long, so slow or idle clients cannot hold connections.
async fn serve_http(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_timeout: std::time::Duration,
    shutdown: CancellationToken,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

/// Creates `dir` (and its parents) readable by the daemon's user alone.
fn create_private(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("cannot make {} private", dir.display()))
}
