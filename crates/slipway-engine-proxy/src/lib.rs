//! The engine socket a run's steps get: a Docker Engine API proxy scoped to one run.
//!
//! Mounting the engine's own socket into a step gives whoever wrote the task root on the
//! host (`docker run -v /:/host`, `--privileged`, other runs' containers). A [`Proxy`]
//! listens on a socket of its own, which the runner mounts at `/var/run/docker.sock`
//! instead: `docker build`, `run`, `logs`, `exec`, `push` and the like keep working, but
//! only on what belongs to the run ([`Scope`]), and whatever could reach the host is
//! refused with a message the docker CLI prints.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use slipway_engine_proxy::{Proxy, Scope};
//! use std::path::Path;
//!
//! let scope = Scope {
//!     run_id: "r1".into(),
//!     label: ("io.slipway.run".into(), "r1".into()),
//!     name_prefix: "slipway-r1-".into(),
//!     workspace: Some("/var/lib/slipway/runs/r1/context".into()),
//!     ..Scope::default()
//! };
//! let proxy = Proxy::start(scope, Default::default(), Path::new("/run/slipway/r1.sock"), Path::new("/var/run/docker.sock")).await?;
//! // … steps run with `proxy.socket()` mounted at /var/run/docker.sock …
//! proxy.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! This crate knows the Docker Engine API and nothing of tasks, steps or runs beyond the
//! names and label a [`Scope`] gives it. `policy` decides, as a pure function, what each
//! request may do and how it is rewritten; `forward` moves bytes (streams, upgrades);
//! `resolve` answers what the policy needs to know from the engine or the file system.

mod forward;
mod policy;
mod resolve;
mod tar_rewrite;
mod upstream;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use upstream::Shared;

/// Whether the run may push to a repository of a registry: `Err` says why not.
pub type PushCheck = Arc<dyn Fn(&str, &str) -> Result<(), String> + Send + Sync>;

/// Whether the run may read a repository of a registry (pull, build from, import a
/// cache, run a frontend): `Err` says why not. The daemon's registries hold every
/// tenant's repositories, and the engine that pulls from them could have anyone's.
pub type ReadCheck = PushCheck;

/// Looks up an image's digest in its registry (`image`, a `user`/`password`).
pub type DigestLookup =
    Arc<dyn Fn(String, Option<(String, String)>) -> std::pin::Pin<Box<dyn Future<Output = Result<String, String>> + Send>> + Send + Sync>;

/// Reads an image's `ONBUILD` triggers from its registry (`image`, a `user`/`password`).
pub type TriggerLookup = Arc<
    dyn Fn(String, Option<(String, String)>) -> std::pin::Pin<Box<dyn Future<Output = Result<Vec<String>, String>> + Send>> + Send + Sync,
>;

/// Holds an image name against every other push of it until the guard is dropped: a
/// push names the image only while it lasts, and two at once would send each other's.
pub type NameLock = Arc<dyn Fn(String) -> std::pin::Pin<Box<dyn Future<Output = NameGuard> + Send>> + Send + Sync>;

/// What [`NameLock`] gives: the name is held while it lives.
pub type NameGuard = Box<dyn Send + Sync>;

/// What keeps a run's images its own when runs share an engine (`slipway serve`).
#[derive(Clone)]
pub struct ImageRules {
    /// Registry digests, asked with the step's own credentials.
    pub digest: DigestLookup,
    /// A registry image's `ONBUILD` triggers: a build from it runs them unchecked.
    pub triggers: TriggerLookup,
    /// The operator's images: every run pins them by these names, so none pushes under them.
    pub operator_images: Vec<String>,
    pub may_push: PushCheck,
    /// Shared with the daemon's own pushes of the same engine.
    pub hold_name: NameLock,
}

impl std::fmt::Debug for ImageRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ImageRules")
    }
}

/// What one run's steps may do through their engine socket.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub run_id: String,
    /// Stamped on every container, network and volume created through the proxy,
    /// overwriting any value the client gave: ("io.slipway.run", run_id).
    pub label: (String, String),
    /// Engine names of the run's containers start with this ("slipway-<run_id>-"); a
    /// client name `foo` becomes `<prefix>foo`, and a reference `foo` resolves to
    /// `<prefix>foo`. So step ids work as container names within the run (`docker logs
    /// build`, `docker stop svc` where the step container is `slipway-<run>-svc`).
    pub name_prefix: String,
    /// Declared network name -> engine network name of this run (e.g.
    /// "acb_default_network" -> "acb_default_network_<run>").
    pub networks: HashMap<String, String>,
    /// Engine network a container joins when it names none, or "default"/"bridge".
    pub default_network: Option<String>,
    /// The host directory that steps see at /workspace: a bind source of `/workspace` or
    /// `/workspace/sub/dir` is rewritten to this directory (joined, must stay beneath it
    /// after resolving symlinks; `..` refused). Any other host bind source is refused.
    pub workspace: Option<PathBuf>,
    /// Volumes the run owns that were not created through the proxy (its shared volume);
    /// their names are used as given.
    pub volumes: Vec<String>,
    pub allow_public_ports: bool,
    pub allow_host_network: bool,
    pub allow_privileged: bool,
    /// The task's author owns the machine (`slipway exec`): host paths, privileges,
    /// devices, capabilities and host namespaces pass. Names, labels and networks are
    /// still the run's, so step ids work as container names and nothing outlives it.
    pub trust_host: bool,
    /// Keeps the run's images its own (`policy::images`); `None` passes image names as
    /// they are (a person's own engine).
    pub images: Option<ImageRules>,
    /// Capabilities every container created through the proxy loses.
    pub cap_drop: Vec<String>,
    /// Memory, processes, `/dev/shm` and tmpfs sizes of containers created through the
    /// proxy: defaults and the most they may ask for; `None` leaves them as asked.
    pub step_limits: Option<slipway_limits::StepLimits>,
}

/// What a proxy lets a run hold: connections, counted per run in a gate every run's
/// proxy of a daemon shares, and how long a connection may stay silent before its
/// next request's head (as the daemon's API allows).
#[derive(Clone, Debug)]
pub struct Limits {
    pub connections: Arc<slipway_limits::Gate>,
    pub header_timeout: Duration,
}

impl Default for Limits {
    /// One run's own: 64 connections, 30 s to send a request's head.
    fn default() -> Self {
        Limits {
            connections: slipway_limits::Gate::new(64, 64),
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// A running proxy. Dropping it stops it too, without waiting.
pub struct Proxy {
    socket: PathBuf,
    shutdown: watch::Sender<bool>,
    /// The accept loop, and a channel that closes when every task has ended.
    running: Option<(JoinHandle<()>, mpsc::Receiver<()>)>,
}

impl Proxy {
    /// Listens on `socket` (mode 0666, parent dir must exist), forwarding allowed requests
    /// to the engine's socket at `upstream`.
    pub async fn start(scope: Scope, limits: Limits, socket: &Path, upstream: &Path) -> io::Result<Proxy> {
        check_scope(&scope)?;
        let socket = std::path::absolute(socket)?;
        remove_stale_socket(&socket)?;
        let listener = UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
        let (shutdown, stop) = watch::channel(false);
        let (alive, all_ended) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            policy: policy::Policy::new(scope, socket.clone()),
            upstream: upstream.to_path_buf(),
            state: Mutex::new(policy::State::default()),
            tasks: Tasks { stop, alive },
            limits,
            warnings: slipway_limits::Throttle::new(20, Duration::from_secs(10)),
        });
        let accept = tokio::spawn(accept_loop(listener, shared));
        Ok(Proxy {
            socket,
            shutdown,
            running: Some((accept, all_ended)),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stops listening, ends every open connection (hijacked attach/exec streams too) and
    /// removes the socket file.
    pub async fn stop(mut self) {
        self.shutdown.send_replace(true);
        if let Some((accept, mut all_ended)) = self.running.take() {
            let _ = accept.await;
            // Every task watches the same signal; this only waits for them to notice.
            let _ = tokio::time::timeout(Duration::from_secs(10), all_ended.recv()).await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.running.is_some() {
            self.shutdown.send_replace(true);
            let _ = std::fs::remove_file(&self.socket);
        }
    }
}

/// This process's hard limit for a ulimit by its Docker name (`nofile`, `nproc`…):
/// what a container may be given at most. `None` for a name the engine would not know.
pub(crate) fn host_limit(name: &str) -> Option<u64> {
    use nix::sys::resource::{getrlimit, Resource};
    let resource = match name {
        "core" => Resource::RLIMIT_CORE,
        "cpu" => Resource::RLIMIT_CPU,
        "data" => Resource::RLIMIT_DATA,
        "fsize" => Resource::RLIMIT_FSIZE,
        "locks" => Resource::RLIMIT_LOCKS,
        "memlock" => Resource::RLIMIT_MEMLOCK,
        "msgqueue" => Resource::RLIMIT_MSGQUEUE,
        "nice" => Resource::RLIMIT_NICE,
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "rss" => Resource::RLIMIT_RSS,
        "rtprio" => Resource::RLIMIT_RTPRIO,
        "rttime" => Resource::RLIMIT_RTTIME,
        "sigpending" => Resource::RLIMIT_SIGPENDING,
        "stack" => Resource::RLIMIT_STACK,
        _ => return None,
    };
    getrlimit(resource).ok().map(|(_, hard)| hard)
}

/// An empty prefix or label would make everything on the engine look like the run's.
fn check_scope(scope: &Scope) -> io::Result<()> {
    let missing = [
        (scope.run_id.is_empty(), "run_id"),
        (scope.label.0.is_empty() || scope.label.1.is_empty(), "label"),
        (scope.name_prefix.is_empty(), "name_prefix"),
    ];
    match missing.iter().find(|(empty, _)| *empty) {
        Some((_, what)) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the proxy's scope has no {what}"),
        )),
        None => Ok(()),
    }
}

fn remove_stale_socket(socket: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(socket),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", socket.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

async fn accept_loop(listener: UnixListener, shared: Arc<Shared>) {
    let mut stop = shared.tasks.stop.clone();
    let run_id = shared.policy.scope().run_id.clone();
    loop {
        let stream = tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: let some connections end.
                    if let Some(held_back) = shared.warnings.admit() {
                        tracing::warn!(%run_id, error = %e, held_back, "engine proxy cannot accept");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        match shared.limits.connections.enter(&run_id) {
            Ok(pass) => {
                let connection = forward::serve_connection(shared.clone(), stream);
                shared.tasks.spawn(async move {
                    connection.await;
                    drop(pass);
                });
            }
            Err(full) => {
                if let Some(held_back) = shared.warnings.admit() {
                    tracing::warn!(%run_id, held_back, "engine proxy refused a connection: {full}");
                }
                shared.tasks.spawn(refuse_connection(stream, full));
            }
        }
    }
}

/// Answers a connection over the cap with a 429 once its request's head has come (a
/// client that is still writing would see a broken pipe, not the reason), then closes
/// it; a client that sends nothing within a second is closed without one.
async fn refuse_connection(mut stream: tokio::net::UnixStream, full: slipway_limits::Full) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = serde_json::json!({ "message": format!("too many connections to the engine: {full}") }).to_string();
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Spawns the proxy's tasks so that stopping it ends them all, and tells when they have.
#[derive(Clone)]
pub(crate) struct Tasks {
    stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
}

impl Tasks {
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut stop = self.stop.clone();
        let alive = self.alive.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = task => {}
                _ = stopped(&mut stop) => {}
            }
            drop(alive);
        });
    }
}

/// Resolves once the proxy is told to stop (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}
