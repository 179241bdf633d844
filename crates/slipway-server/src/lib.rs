//! `slipway serve`: the HTTP API (`routes`), with auth and errors in one JSON shape,
//! wired to this process's workers ([`slipway_worker`]) and triggers
//! ([`slipway_triggers`]); start-up, signals and graceful shutdown. The only crate that
//! knows all the parts of the daemon.

mod arm;
mod failure;
mod harden;
mod intake;
mod memory;
mod outgoing;
mod plain_text;
pub mod routes;
mod tasks;
mod tls;

pub use slipway_settings::Settings;

use anyhow::Context as _;
use slipway_engine::Engine;
use slipway_store::{Clock, SystemClock};
use slipway_triggers::Triggers;
use slipway_worker::Node;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What every route shares: the node's workers and queue, and its triggers.
pub struct Server {
    pub node: Arc<Node>,
    pub triggers: Arc<Triggers>,
    pub notifier: Arc<slipway_notify::Notifier>,
    /// API requests in flight, per token (`max_requests_per_token`).
    pub requests: Arc<slipway_limits::Gate>,
    /// Signs and checks the access tokens the Azure CLI is given.
    pub arm: arm::token::Signer,
    /// Where each log being read by `az` is in its CRLF view.
    pub(crate) arm_logs: arm::crlf::Indexes,
}

/// What every handler is given.
pub(crate) type Shared = axum::extract::State<Arc<Server>>;

impl std::ops::Deref for Server {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

/// Starts the daemon and serves until Ctrl-C or SIGTERM; `ready` is told the address
/// once the daemon accepts requests.
pub async fn serve(mut settings: Settings, ready: impl FnOnce(std::net::SocketAddr)) -> anyhow::Result<()> {
    let (blobs, fleet_keys) = checked_fleet(&settings)?;
    let tls = tls::acceptor(settings.tls_cert.as_deref(), settings.tls_key.as_deref())?;
    let _hardened = prepare_data_dir(&mut settings)?;
    let arm = arm::signer(&settings)?;
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
    let node = Arc::new(Node::new(settings, store, engine, clock, instance).with_fleet(blobs, fleet_keys));
    join_fleet(&node).await?;
    let triggers = Arc::new(Triggers::new(node.clone()));
    let notifier = slipway_notify::Notifier::new(node.clone()).map_err(|e| anyhow::anyhow!(e))?;
    notifier.listen();
    let daemon = Arc::new(Server {
        node: node.clone(),
        triggers: triggers.clone(),
        notifier: notifier.clone(),
        requests: slipway_limits::Gate::new(usize::MAX, node.settings.max_requests_per_token as usize),
        arm,
        arm_logs: Default::default(),
    });
    // Runs this machine was executing before a restart have no worker any more.
    let node_prefix = format!("{}/", daemon.settings.node);
    daemon.store.expire_node_leases(&node_prefix, &daemon.instance).await?;
    slipway_worker::reap_once(&node).await;
    node.prepare_pool().await;
    let shutdown = CancellationToken::new();
    start_background(&node, &triggers, &notifier, &shutdown);
    tracing::info!(listen = %daemon.settings.listen, concurrency = daemon.settings.concurrency, "slipway daemon ready");
    ready(listener.local_addr()?);
    let app = routes::router(daemon.clone(), shutdown.clone());
    let signals = count_signals(&shutdown);
    let header_timeout = std::time::Duration::from_secs(daemon.settings.http_header_timeout_seconds);
    let per_client = slipway_limits::Gate::new(usize::MAX, node.settings.max_connections_per_client as usize);
    serve_http(listener, tls, app, header_timeout, per_client, shutdown.clone()).await;
    drain(&node, &signals).await;
    node.drain_pool().await;
    Ok(())
}

/// Refuses settings that would serve strangers without tokens, and opens a fleet's
/// blob store and keys, before anything starts.
fn checked_fleet(settings: &Settings) -> anyhow::Result<(Option<slipway_blobs::Blobs>, Option<slipway_worker::vault::FleetKeys>)> {
    let own_directory = slipway_worker::tenants::directory_of(settings).map_err(|e| anyhow::anyhow!(e))?;
    if own_directory.is_open() && !settings.listens_on_loopback() {
        anyhow::bail!(
            "listening on {} needs at least one token (--token, --tenant NAME:token=T or --admin-token); without tokens the daemon only listens on loopback",
            settings.listen
        );
    }
    let blobs = match settings.blob_store.as_str() {
        "" => None,
        url => Some(slipway_blobs::Blobs::open(url, &settings.blob_store_options)?),
    };
    let parse = |text: &Option<String>, setting: &str| {
        text.as_deref()
            .map(slipway_worker::sealed::FleetKey::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{setting}: {}", e.replace("fleet_key", setting)))
    };
    let fleet_keys = match (
        parse(&settings.fleet_key, "fleet_key")?,
        parse(&settings.fleet_key_previous, "fleet_key_previous")?,
    ) {
        (Some(current), previous) => Some(slipway_worker::vault::FleetKeys { current, previous }),
        (None, Some(_)) => anyhow::bail!("fleet_key_previous is set without fleet_key: give the new key as fleet_key"),
        (None, None) => None,
    };
    Ok((blobs, fleet_keys))
}

/// Makes the data dir the daemon's alone (it holds other runs' sources, logs and
/// secrets), absolute (contexts are bind-mounted into containers) and, unless the
/// operator turned it off, hardened for as long as the guard returned lives.
fn prepare_data_dir(settings: &mut Settings) -> anyhow::Result<Option<harden::Hardened>> {
    create_private(&settings.data_dir)?;
    for sub in ["uploads", "contexts", "logs", "secrets", "scratch"] {
        create_private(&settings.data_dir.join(sub))?;
    }
    slipway_sources::set_git_timeouts(
        std::time::Duration::from_secs(settings.fetch_connect_timeout_seconds),
        std::time::Duration::from_secs(settings.fetch_read_timeout_seconds),
    );
    settings.data_dir = settings
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", settings.data_dir.display()))?;
    if let Some(limit) = harden::open_files() {
        tracing::info!(limit, "open files allowed");
    }
    if settings.harden_data_dir {
        Ok(Some(harden::data_dir(&settings.data_dir)?))
    } else {
        tracing::warn!("harden_data_dir is off: steps can leave device files and set-uid programs in the data dir");
        Ok(None)
    }
}

/// Joins the fleet: listens to it, publishes this node's tenants, seals under the
/// current key everything the previous fleet key sealed (and this node's secrets files
/// from before it joined), and refuses to serve strangers if nobody declares tokens.
async fn join_fleet(node: &Arc<Node>) -> anyhow::Result<()> {
    node.listen_to_fleet().await.map_err(|e| anyhow::anyhow!(e))?;
    node.publish_directory().await.map_err(|e| anyhow::anyhow!(e))?;
    match node.vault.reseal().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sealed = n, "secrets sealed under the current fleet key"),
        Err(e) => anyhow::bail!("{e}"),
    }
    if node.directory().is_open() && !node.settings.listens_on_loopback() {
        anyhow::bail!(
            "listening on {} needs tokens, and neither this node nor its fleet declares any",
            node.settings.listen
        );
    }
    Ok(())
}

/// The workers (none at concurrency 0: a node that serves the API and fires triggers
/// but runs nothing), housekeeping, the engine watch, the triggers and the notifier.
fn start_background(node: &Arc<Node>, triggers: &Arc<Triggers>, notifier: &Arc<slipway_notify::Notifier>, shutdown: &CancellationToken) {
    for i in 0..node.settings.concurrency {
        tokio::spawn(slipway_worker::work(
            node.clone(),
            format!("{}{i}", node.instance),
            shutdown.clone(),
        ));
    }
    tokio::spawn(slipway_worker::housekeeping(node.clone(), shutdown.clone()));
    tokio::spawn(memory::trim_periodically(shutdown.clone()));
    tokio::spawn(slipway_worker::watch_engine(node.clone(), shutdown.clone()));
    tokio::spawn(slipway_triggers::timers::run(triggers.clone(), shutdown.clone()));
    tokio::spawn(slipway_triggers::images::poll(triggers.clone(), shutdown.clone()));
    tokio::spawn(slipway_notify::deliver(notifier.clone(), shutdown.clone()));
}

/// Counts SIGINT and SIGTERM, cancelling `shutdown` at the first. One listener for the
/// daemon's life: a listener made anew after each signal could see the same signal
/// twice (CI once stopped runs at the first SIGTERM).
fn count_signals(shutdown: &CancellationToken) -> Arc<SignalCount> {
    let signals = Arc::new(SignalCount::default());
    let (stop, counted) = (shutdown.clone(), signals.clone());
    tokio::spawn(async move {
        let mut signals_in = Signals::new();
        loop {
            signals_in.next().await;
            // Counted before anything is woken: the drain that starts at the first
            // signal must not take that same signal for a second one.
            counted.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            stop.cancel();
            counted.woken.notify_waiters();
        }
    });
    signals
}

/// Shutting down: nothing new is claimed (the workers saw `shutdown`); runs already
/// going may finish within `shutdown_grace_seconds`. Those still going then (or at a
/// second signal) are stopped, their containers removed, and they end `Error` as a
/// lost worker's runs do.
async fn drain(node: &Node, signals: &SignalCount) {
    let grace = std::time::Duration::from_secs(node.settings.shutdown_grace_seconds);
    if node.running_count() > 0 {
        tracing::info!(
            runs = node.running_count(),
            grace_seconds = grace.as_secs(),
            "shutting down: waiting for running runs (a second signal stops them now)"
        );
    }
    let deadline = tokio::time::Instant::now() + grace;
    while node.running_count() > 0 && tokio::time::Instant::now() < deadline {
        if signals.count.load(std::sync::atomic::Ordering::SeqCst) >= 2 {
            tracing::warn!("a second signal: stopping the running runs now");
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            _ = signals.woken.notified() => {}
        }
    }
    if node.running_count() > 0 {
        tracing::warn!(
            runs = node.running_count(),
            grace_seconds = grace.as_secs(),
            "stopping the runs still going"
        );
        node.stop_runs("the daemon shut down before the run finished");
        let stopped = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while node.running_count() > 0 && tokio::time::Instant::now() < stopped {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Signals received, and a wake-up at each.
#[derive(Default)]
struct SignalCount {
    count: std::sync::atomic::AtomicUsize,
    woken: tokio::sync::Notify,
}

/// Serves HTTP/1.1 until `shutdown`, then lets open requests finish for a few seconds.
/// A client must send a request's head within `header_timeout` and an idle keep-alive
/// connection is closed after as long, so slow or idle clients cannot hold connections;
/// and one client address holds at most `per_client`'s connections (more are closed at
/// once), so one client's flood leaves room for everyone else's.
async fn serve_http(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: axum::Router,
    header_timeout: std::time::Duration,
    per_client: std::sync::Arc<slipway_limits::Gate>,
    shutdown: CancellationToken,
) {
    let refusals = slipway_limits::Throttle::new(5, std::time::Duration::from_secs(10));
    use hyper_util::rt::{TokioIo, TokioTimer};
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if let Some(held_back) = refusals.admit() {
                        tracing::warn!(error = %e, held_back, "accepting a connection failed");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let pass = match per_client.enter(&peer.ip().to_string()) {
            Ok(pass) => pass,
            Err(full) => {
                if let Some(held_back) = refusals.admit() {
                    tracing::warn!(client = %peer.ip(), held_back, "closed a connection: {full}");
                }
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let (http, watcher) = (http.clone(), graceful.watcher());
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                // The handshake has as long as a request's head: a client that opens a
                // connection and says nothing holds it no longer over TLS than without.
                Some(tls) => match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "a TLS handshake failed");
                        Ok(())
                    }
                    Err(_) => Ok(()),
                },
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(pass);
        });
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
}

/// SIGTERM and SIGINT, each delivery once.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    async fn next(&mut self) {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.term) => {}
            _ = one(&mut self.int) => {}
        }
    }
}

/// Creates `dir` (and its parents) readable by the daemon's user alone.
fn create_private(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("cannot make {} private", dir.display()))
}
