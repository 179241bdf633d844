//! Runs a task [`Plan`] on an [`Engine`]: the step graph, timeouts, retries,
//! detached services, and cleanup of everything the run created.
//!
//! Steps whose dependencies have succeeded start at once and run concurrently. A
//! failed step (unless `ignoreErrors`) fails the run: running steps are stopped and
//! steps that can no longer run are marked skipped. The run's `totalTimeout`, a
//! step's `timeout` and cancellation all kill containers; at the end every
//! container, network and volume labelled with the run id is removed, whichever
//! way the run ended. Secret values are masked in every line this crate emits.

mod build;
mod graph;
mod images;
mod outcome;
mod report;
mod step;
mod workspace;

pub use report::{ImageDependencies, OutputImage, RunReport, StepEvent, StepReport, StepStatus, StepWatcher};
pub use slipway_plan::{new_run_id, Redactor};
pub use tokio_util::sync::CancellationToken;

use slipway_engine::{Engine, LogSink, RegistryCredential, RUN_LABEL};
use slipway_plan::{NetworkMode, Plan, Step};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// What a run needs besides its plan.
#[derive(Clone)]
pub struct RunConfig {
    pub run_id: String,
    /// The build context, bind-mounted at `/workspace` in every step.
    pub context_dir: PathBuf,
    /// The run's shared volume name (`{{.Run.SharedVolume}}`).
    pub shared_volume: String,
    /// What the task may reach of the machine running it.
    pub host: HostAccess,
    /// The engine's socket on the host, mounted (or proxied) at the same path in steps.
    pub docker_socket: String,
    /// Registry credentials given on the command line; `~/.docker/config.json` is the fallback.
    pub credentials: Vec<RegistryCredential>,
    /// Values to mask in logs and errors (besides `credentials`' passwords, always masked).
    pub secret_values: Vec<String>,
    /// Where secret volume files are written before they are mounted.
    pub scratch_dir: PathBuf,
    /// The image of the container that holds the network namespace in shared network
    /// mode; it must have `sleep`.
    pub sandbox_image: String,
    /// A network created ahead of the run, used as its default network when the task
    /// declares no networks of its own (network creation is the slowest part of a
    /// run's start). The runner removes it when the run ends.
    pub prepared_network: Option<String>,
    /// The builder of `build` steps unless a step's `DOCKER_BUILDKIT` says otherwise.
    pub builder: slipway_engine::Builder,
    /// Which builds share this run's cache mounts: `None` for every build on the node
    /// (a person's own machine), else a namespace (the daemon's: the task, the source
    /// repository, or the run alone), so one tenant's cache cannot feed another's build.
    pub cache_mount_namespace: Option<String>,
    /// The task's name, in registry cache tags (`cache_<task>_<step>`); acb's
    /// `quickrun` for a task without one.
    pub task_name: String,
    /// Told as each step starts and ends (the daemon shows steps live).
    pub on_step: Option<StepWatcher>,
    /// Keeps the run's images its own in an engine others share (`slipway serve`):
    /// names it makes live in its namespace, the operator's images are pinned for it,
    /// anything else comes from a registry by digest, and all it made goes when it
    /// ends. `None` uses images by the names a task gives (`slipway exec`).
    pub images: Option<ImageScope>,
    /// Which repositories pushes may go to (`slipway serve`: a tenant's, in the
    /// daemon's registries); `None` lets the registry decide.
    pub may_push: Option<slipway_engine_proxy::PushCheck>,
    /// Which repositories the run may read from (`slipway serve`: in the daemon's
    /// registries, its tenant's and those no tenant owns); `None` lets the registry decide.
    pub may_read: Option<slipway_engine_proxy::ReadCheck>,
    /// Checks each URL a Dockerfile's `ADD` fetches (the engine fetches it from the
    /// host's network); `None` checks nothing. Called on a blocking thread.
    pub url_check: Option<UrlCheck>,
    /// Fetches what a Dockerfile's `ADD URL` names to a file the build then copies
    /// (`slipway serve`: by the sources' reach rules, each redirect and address checked),
    /// so the engine fetches nothing from the host's network; `None` lets the engine fetch.
    pub url_fetch: Option<UrlFetch>,
    /// Capabilities step containers (and those a step starts) lose.
    pub cap_drop: Vec<String>,
    /// The connections the run's engine proxy holds, counted with every other run's.
    pub proxy_limits: slipway_engine_proxy::Limits,
    /// Bytes the run's workspace may hold (checked every few seconds while it runs);
    /// `None`: no limit.
    pub max_workspace_bytes: Option<u64>,
    /// Memory, processes, `/dev/shm` and tmpfs sizes of step containers and of those
    /// steps start through the proxy; `None` leaves them to the engine (a person's own).
    pub step_limits: Option<slipway_limits::StepLimits>,
}

/// Whether the engine may fetch a URL for the run (a git `ADD`): `Err` says why not.
/// It may resolve names, so it is called on a blocking thread.
pub type UrlCheck = Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Fetches `url` to the file `to`: `Err` says why not.
pub type UrlFetch =
    Arc<dyn Fn(String, PathBuf) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The images a run in a shared engine may use by name besides its own.
#[derive(Debug, Clone, Default)]
pub struct ImageScope {
    /// The operator's images (aliases' images, the sandbox image, `local_images`).
    pub operator_images: Vec<String>,
    /// The Dockerfile frontends builds may use: repositories, or images by digest.
    pub allowed_frontends: Vec<String>,
}

impl ImageScope {
    /// Whether the frontend `r` is one the operator allows: its repository is listed,
    /// or, where an entry names a digest, `r` has that digest (a reference without a
    /// digest is asked about its repository only).
    pub fn allows_frontend(&self, r: &slipway_reference::Reference) -> bool {
        self.allowed_frontends
            .iter()
            .filter_map(|a| slipway_reference::Reference::parse(a).ok())
            .any(|a| {
                a.name() == r.name()
                    && match (&a.digest, &r.digest) {
                        (Some(want), Some(has)) => want == has,
                        _ => true,
                    }
            })
    }

    /// Whether `r` names one of the operator's images.
    pub fn is_operators(&self, r: &slipway_reference::Reference) -> bool {
        self.operator_images
            .iter()
            .filter_map(|o| slipway_reference::Reference::parse(o).ok())
            .any(|o| o.tagged() == r.tagged())
    }
}

impl RunConfig {
    pub fn new(run_id: &str, context_dir: PathBuf) -> RunConfig {
        RunConfig {
            run_id: run_id.to_string(),
            context_dir,
            shared_volume: format!("slipway_vol_{run_id}"),
            host: HostAccess::trusted(),
            docker_socket: "/var/run/docker.sock".into(),
            credentials: Vec::new(),
            secret_values: Vec::new(),
            scratch_dir: std::env::temp_dir(),
            sandbox_image: "busybox:latest".into(),
            prepared_network: None,
            builder: slipway_engine::Builder::default(),
            task_name: "quickrun".into(),
            cache_mount_namespace: None,
            on_step: None,
            images: None,
            may_push: None,
            may_read: None,
            url_check: None,
            url_fetch: None,
            cap_drop: Vec::new(),
            proxy_limits: slipway_engine_proxy::Limits::default(),
            step_limits: None,
            max_workspace_bytes: None,
        }
    }
}

pub use slipway_plan::EngineAccess;

/// What a task may reach of the machine that runs it. `slipway exec` runs a person's
/// own task on their own machine and trusts it as acb does; `slipway serve` runs
/// strangers' tasks and does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAccess {
    /// A build's context and Dockerfile must resolve beneath the run's context.
    pub confine_paths: bool,
    /// `--build-arg NAME` without a value may take NAME from this process's environment.
    pub build_args_from_env: bool,
    /// Registry credentials may come from this machine's `~/.docker/config.json`.
    pub docker_config_credentials: bool,
    /// Ports a step publishes without an address go on every interface; otherwise on
    /// loopback only.
    pub public_ports: bool,
    /// What the engine proxy lets `docker` commands in steps do besides the run's own
    /// objects: privileged containers, and the host's network.
    pub privileged: bool,
    pub host_network: bool,
    /// `docker` commands in steps may use the host through the proxy (host paths,
    /// devices, capabilities, host namespaces), as on the person's own machine.
    pub engine_host: bool,
    pub engine: EngineAccess,
}

impl HostAccess {
    pub fn trusted() -> HostAccess {
        HostAccess {
            confine_paths: false,
            build_args_from_env: true,
            docker_config_credentials: true,
            public_ports: true,
            privileged: true,
            host_network: true,
            engine_host: true,
            // The proxy still, so step ids work as container names and everything a
            // step starts is removed with the run.
            engine: EngineAccess::Proxy,
        }
    }

    pub fn untrusted() -> HostAccess {
        HostAccess {
            confine_paths: true,
            build_args_from_env: false,
            docker_config_credentials: false,
            public_ports: false,
            privileged: false,
            host_network: false,
            engine_host: false,
            engine: EngineAccess::Proxy,
        }
    }
}

/// The volume every step of a run has as `$HOME` (at [`HOME_DIR`]).
pub fn home_volume(run_id: &str) -> String {
    format!("slipway_home_{run_id}")
}

/// Where the run's home volume is mounted, as acb mounts it.
pub const HOME_DIR: &str = "/acb/home";

/// The name a declared network gets in the engine for one run.
pub fn run_network_name(name: &str, run_id: &str) -> String {
    format!("{name}_{run_id}")
}

pub(crate) struct Shared {
    pub engine: Arc<dyn Engine>,
    pub cfg: RunConfig,
    pub log: LogSink,
    pub redactor: Redactor,
    /// Declared network name → the engine's name for this run.
    pub networks: HashMap<String, String>,
    /// Secret volume name → host directory holding its files.
    pub volume_dirs: HashMap<String, PathBuf>,
    pub labels: HashMap<String, String>,
    /// In shared network mode, the container whose network namespace every step joins.
    pub sandbox: Option<String>,
    /// The run's engine proxy socket on the host, when steps get one.
    pub engine_socket: Option<PathBuf>,
    /// Images built for several platforms in this run: tag → (platform, image id) in
    /// the order built. Pushing such a tag pushes an image index.
    pub platform_images: std::sync::Mutex<HashMap<String, Vec<(String, String)>>>,
}

impl Shared {
    pub fn say(&self, line: &str) {
        (self.log)(&self.redactor.mask(line));
    }

    /// A sink that prefixes each line with the step id and masks secrets.
    pub fn step_sink(self: &Arc<Self>, id: &str) -> LogSink {
        let me = self.clone();
        let prefix = format!("{id} | ");
        Arc::new(move |line: &str| (me.log)(&format!("{prefix}{}", me.redactor.mask(line))))
    }

    pub fn credential_for(&self, image: &str) -> Option<RegistryCredential> {
        let registry = slipway_reference::Reference::parse(image).ok()?.registry;
        if let Some(c) = self.cfg.credentials.iter().find(|c| c.registry == registry) {
            return Some(c.clone());
        }
        if !self.cfg.host.docker_config_credentials {
            return None;
        }
        slipway_engine::docker_config_credential(&registry)
    }
}

/// Runs `plan` and reports how each step ended. Never leaves anything labelled with
/// the run id behind in the engine, even when cancelled.
pub async fn run(engine: Arc<dyn Engine>, plan: Plan, cfg: RunConfig, log: LogSink, cancel: CancellationToken) -> RunReport {
    let started = Instant::now();
    let redactor = run_redactor(&cfg);
    let labels = HashMap::from([(RUN_LABEL.to_string(), cfg.run_id.clone())]);
    let mut report = RunReport::new(&cfg.run_id);
    let say = |line: &str| log(&redactor.mask(line));

    if let Err(e) = engine.ping().await {
        report.error = Some(redactor.mask(&e.to_string()));
        say(&format!(
            "Run {} failed: {}",
            cfg.run_id,
            report.error.as_deref().unwrap_or_default()
        ));
        return report;
    }
    let scratch = cfg.scratch_dir.join(format!("slipway-{}", cfg.run_id));
    let containers = starts_containers(&plan);
    // A run whose images are its own leaves images to remove, containers or not.
    let sweep = containers || cfg.images.is_some();
    let setup = if containers {
        set_up(&*engine, &plan, &cfg, &labels, &scratch).await
    } else {
        Ok((HashMap::new(), HashMap::new(), None))
    };
    let (networks, volume_dirs, sandbox) = match setup {
        Ok(v) => v,
        Err(e) => {
            report.error = Some(redactor.mask(&e));
            say(&format!(
                "Run {} failed: {}",
                cfg.run_id,
                report.error.as_deref().unwrap_or_default()
            ));
            tear_down(&*engine, &cfg, &scratch, &say, containers).await;
            return report;
        }
    };
    let proxy = match cfg.host.engine {
        EngineAccess::Proxy if containers => match start_proxy(&plan, &cfg, &networks, &scratch).await {
            Ok(p) => Some(p),
            Err(e) => {
                report.error = Some(redactor.mask(&e));
                say(&format!("Run {} failed: {e}", cfg.run_id));
                tear_down(&*engine, &cfg, &scratch, &say, containers).await;
                return report;
            }
        },
        _ => None,
    };
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        cfg: cfg.clone(),
        log: log.clone(),
        redactor: redactor.clone(),
        networks,
        volume_dirs,
        labels,
        sandbox,
        engine_socket: proxy.as_ref().map(|p| p.socket().to_path_buf()),
        platform_images: Default::default(),
    });
    images::pin_operator_images(&shared).await;

    let outcome = steps_within_limits(&shared, &plan, &cancel, &mut report, &say).await;
    for step_report in outcome {
        report.record(step_report);
    }
    if cancel.is_cancelled() && !report.timed_out {
        report.canceled = true;
        report.error = Some("the run was canceled".into());
    }
    // Nothing new can be made through the proxy while the run's objects are swept.
    if let Some(p) = proxy {
        p.stop().await;
    }
    tear_down(&*engine, &cfg, &scratch, &say, sweep).await;
    report.finish(started.elapsed());
    for line in report.summary_lines() {
        say(&line);
    }
    report
}

/// What the run's log masks: the run's secrets, and registry passwords whoever gave them.
fn run_redactor(cfg: &RunConfig) -> Redactor {
    Redactor::new(
        cfg.secret_values
            .iter()
            .cloned()
            .chain(cfg.credentials.iter().map(|c| c.password.clone()))
            .collect(),
    )
}

/// Whether any step starts a container (a `cmd` step, or a build on a network).
/// A run of builds and pushes alone needs no network, no volumes and no engine proxy,
/// and skipping them is most of its set-up time.
fn starts_containers(plan: &Plan) -> bool {
    plan.steps.iter().any(|s| matches!(s.kind, slipway_plan::StepKind::Cmd { .. }))
        || plan
            .steps
            .iter()
            .any(|s| matches!(&s.kind, slipway_plan::StepKind::Build { spec, .. } if spec.network.is_some()))
}

/// Runs the steps until they end, the run's /workspace holds more than it may, or the
/// run's totalTimeout passes: either limit stops every step and is recorded in `report`.
/// The steps' cancellation is the run's child, canceled once they are done.
async fn steps_within_limits(
    shared: &Arc<Shared>,
    plan: &Plan,
    cancel: &CancellationToken,
    report: &mut RunReport,
    say: &(dyn Fn(&str) + Sync),
) -> Vec<StepReport> {
    let cfg = &shared.cfg;
    let total = Duration::from_secs(plan.total_timeout);
    let steps_cancel = cancel.child_token();
    let outcome = tokio::select! {
        r = schedule(shared.clone(), plan, steps_cancel.clone()) => r,
        held = workspace::overfull(cfg.context_dir.clone(), cfg.max_workspace_bytes) => {
            steps_cancel.cancel();
            let max = cfg.max_workspace_bytes.unwrap_or_default();
            let e = format!(
                "the run's /workspace holds {} or more, past the {} it may (max_workspace_bytes); stopping every step",
                slipway_limits::step::bytes(held),
                slipway_limits::step::bytes(max)
            );
            say(&format!("Run {} failed: {e}", cfg.run_id));
            report.error = Some(e);
            report.over_limit = true;
            Vec::new()
        }
        _ = tokio::time::sleep(total) => {
            steps_cancel.cancel();
            report.timed_out = true;
            report.error = Some(format!("the run exceeded its totalTimeout of {} s", plan.total_timeout));
            say(&format!("Run {} timed out after {} s; stopping every step", cfg.run_id, plan.total_timeout));
            Vec::new()
        }
    };
    steps_cancel.cancel();
    outcome
}

type Setup = (HashMap<String, String>, HashMap<String, PathBuf>, Option<String>);

async fn set_up(
    engine: &dyn Engine,
    plan: &Plan,
    cfg: &RunConfig,
    labels: &HashMap<String, String>,
    scratch: &std::path::Path,
) -> Result<Setup, String> {
    // Networks and the shared volume are created concurrently: each is an engine round trip.
    let mut networks = HashMap::new();
    let mut creations = Vec::new();
    let implicit_default = plan.networks.len() == 1 && plan.networks[0].name == slipway_plan::DEFAULT_NETWORK;
    for n in &plan.networks {
        if let (true, Some(prepared)) = (implicit_default, &cfg.prepared_network) {
            networks.insert(n.name.clone(), prepared.clone());
            continue;
        }
        if n.skip_creation {
            networks.insert(n.name.clone(), n.name.clone());
            continue;
        }
        let name = run_network_name(&n.name, &cfg.run_id);
        networks.insert(n.name.clone(), name.clone());
        creations.push(async move {
            engine
                .create_network(&name, &n.driver, n.ipv6, labels.clone())
                .await
                .map_err(|e| format!("cannot create network {}: {e}", n.name))
        });
    }
    // `{{.Run.SharedVolume}}` is the volume mounted at /workspace, as the ACR docs say:
    // the context directory itself, so `docker run -v <it>:/w` from a step sees the files.
    let volume = async {
        engine
            .create_volume(&cfg.shared_volume, labels.clone(), Some(&cfg.context_dir))
            .await
            .map_err(|e| format!("cannot create the shared volume: {e}"))
    };
    // Every step's $HOME, as acb gives it: a login in one step holds in the next. Its
    // files live in the run's scratch dir, so they carry its mount's flags and go with it.
    let home_dir = scratch.join("home");
    std::fs::create_dir_all(&home_dir).map_err(|e| format!("cannot create the run's home directory: {e}"))?;
    let home = async {
        engine
            .create_volume(&home_volume(&cfg.run_id), labels.clone(), Some(&home_dir))
            .await
            .map_err(|e| format!("cannot create the run's home volume: {e}"))
    };
    let (created, volume, home) = tokio::join!(futures_util::future::join_all(creations), volume, home);
    created.into_iter().collect::<Result<Vec<()>, String>>()?;
    volume?;
    home?;
    let mut volume_dirs = HashMap::new();
    for v in &plan.volumes {
        let dir = scratch.join("volumes").join(&v.name);
        write_secret_files(&dir, &v.files).map_err(|e| format!("cannot write the files of volume {}: {e}", v.name))?;
        volume_dirs.insert(v.name.clone(), dir);
    }
    let sandbox = match plan.network_mode {
        NetworkMode::PerStep => None,
        NetworkMode::Shared => Some(start_sandbox(engine, plan, cfg, labels, &networks).await?),
    };
    Ok((networks, volume_dirs, sandbox))
}

/// The run's engine proxy, on a socket in its scratch directory: `docker` commands in
/// steps reach the engine through it, confined to the run.
async fn start_proxy(
    plan: &Plan,
    cfg: &RunConfig,
    networks: &HashMap<String, String>,
    scratch: &std::path::Path,
) -> Result<slipway_engine_proxy::Proxy, String> {
    let socket = scratch.join("docker.sock");
    // A Unix socket's path is limited to 107 bytes.
    if socket.as_os_str().len() > 100 {
        return Err(format!(
            "the engine proxy's socket path {} is too long; use a shorter data dir",
            socket.display()
        ));
    }
    std::fs::create_dir_all(scratch).map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let default_network = plan
        .networks
        .iter()
        .find(|n| n.is_default)
        .or(plan.networks.first())
        .and_then(|n| networks.get(&n.name))
        .cloned();
    let scope = slipway_engine_proxy::Scope {
        run_id: cfg.run_id.clone(),
        label: (RUN_LABEL.to_string(), cfg.run_id.clone()),
        name_prefix: step::container_name(&cfg.run_id, ""),
        networks: networks.clone(),
        default_network,
        workspace: Some(cfg.context_dir.clone()),
        volumes: vec![cfg.shared_volume.clone(), home_volume(&cfg.run_id)],
        allow_public_ports: cfg.host.public_ports,
        allow_host_network: cfg.host.host_network,
        allow_privileged: cfg.host.privileged,
        trust_host: cfg.host.engine_host,
        images: cfg.images.as_ref().map(|_| proxy_image_rules(cfg)),
        cap_drop: cfg.cap_drop.clone(),
        step_limits: cfg.step_limits,
    };
    let upstream = cfg.docker_socket.trim_start_matches("unix://");
    slipway_engine_proxy::Proxy::start(scope, cfg.proxy_limits.clone(), &socket, std::path::Path::new(upstream))
        .await
        .map_err(|e| format!("cannot start the run's engine proxy: {e}"))
}

/// The rules the run's proxy keeps its images by: registry digests asked with the
/// step's own credentials (as the engine's pull would be), the run's push and URL checks.
fn proxy_image_rules(cfg: &RunConfig) -> slipway_engine_proxy::ImageRules {
    let may_read = cfg.may_read.clone();
    let digest: slipway_engine_proxy::DigestLookup = Arc::new(move |image: String, auth: Option<(String, String)>| {
        let may_read = may_read.clone();
        Box::pin(async move { images::registry_digest(may_read.as_ref(), &image, auth).await })
    });
    let triggers: slipway_engine_proxy::TriggerLookup = Arc::new(|image: String, auth: Option<(String, String)>| {
        Box::pin(async move {
            let client = images::registry_client().ok_or_else(|| "no HTTP client".to_string())?;
            slipway_registry::image_triggers(&client, &image, auth).await
        })
    });
    slipway_engine_proxy::ImageRules {
        digest,
        triggers,
        operator_images: cfg.images.as_ref().map(|i| i.operator_images.clone()).unwrap_or_default(),
        may_push: cfg.may_push.clone().unwrap_or_else(|| Arc::new(|_: &str, _: &str| Ok(()))),
        hold_name: Arc::new(|name: String| {
            Box::pin(async move { Box::new(slipway_engine::hold_name(&name).await) as slipway_engine_proxy::NameGuard })
        }),
    }
}

/// Shared network mode: one container holds the network namespace every step joins
/// (`container:<sandbox>`), so a step skips the network attach that dominates its
/// start. Step ids resolve to loopback through the sandbox's `/etc/hosts`, which
/// joined containers share; published ports are declared on the sandbox.
async fn start_sandbox(
    engine: &dyn Engine,
    plan: &Plan,
    cfg: &RunConfig,
    labels: &HashMap<String, String>,
    networks: &HashMap<String, String>,
) -> Result<String, String> {
    let name = format!("slipway-{}-sandbox", cfg.run_id);
    let quiet: LogSink = Arc::new(|_: &str| {});
    engine
        .ensure_image(&cfg.sandbox_image, false, None, quiet)
        .await
        .map_err(|e| format!("shared network mode needs its sandbox image: {e}"))?;
    let default_network = plan
        .networks
        .iter()
        .find(|n| n.is_default)
        .and_then(|n| networks.get(&n.name))
        .cloned();
    let spec = slipway_engine::ContainerSpec {
        name: name.clone(),
        image: cfg.sandbox_image.clone(),
        entrypoint: Some(vec!["sleep".into()]),
        cmd: vec!["2147483647".into()],
        network: default_network,
        ports: step::host_ports(
            &plan.steps.iter().flat_map(|s| s.ports.clone()).collect::<Vec<_>>(),
            cfg.host.public_ports,
        ),
        expose: plan.steps.iter().flat_map(|s| s.expose.clone()).collect(),
        extra_hosts: plan.steps.iter().map(|s| format!("{}:127.0.0.1", s.id)).collect(),
        labels: labels.clone(),
        ..Default::default()
    };
    engine
        .create_container(&spec)
        .await
        .map_err(|e| format!("cannot create the network sandbox: {e}"))?;
    engine
        .start_container(&name)
        .await
        .map_err(|e| format!("cannot start the network sandbox: {e}"))?;
    Ok(name)
}

fn write_secret_files(dir: &std::path::Path, files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    for (name, content) in files {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join(name))?;
        std::io::Write::write_all(&mut f, content)?;
    }
    Ok(())
}

async fn tear_down(engine: &dyn Engine, cfg: &RunConfig, scratch: &std::path::Path, say: &(dyn Fn(&str) + Sync), sweep: bool) {
    // A run that started no container, made no network or volume and keeps no images
    // of its own has nothing labelled.
    if sweep {
        match engine.sweep(&cfg.run_id).await {
            Ok(n) => tracing::debug!(run_id = %cfg.run_id, removed = n, "run resources removed"),
            Err(e) => say(&format!("Cleanup of run {} was incomplete: {e}", cfg.run_id)),
        }
    }
    if let Some(prepared) = &cfg.prepared_network {
        if let Err(e) = engine.remove_network(prepared).await {
            say(&format!("Cleanup of run {} was incomplete: {e}", cfg.run_id));
        }
    }
    if scratch.exists() {
        let _ = std::fs::remove_dir_all(scratch);
    }
}

/// Starts steps as their dependencies succeed; returns a report per step.
async fn schedule(shared: Arc<Shared>, plan: &Plan, cancel: CancellationToken) -> Vec<StepReport> {
    let mut done: HashMap<String, StepStatus> = HashMap::new();
    let mut reports: Vec<StepReport> = Vec::new();
    let mut started: Vec<bool> = vec![false; plan.steps.len()];
    let mut running: JoinSet<StepReport> = JoinSet::new();
    let mut failed = false;
    let when: Vec<&[String]> = plan.steps.iter().map(|s| s.when.as_slice()).collect();
    loop {
        if !failed {
            for i in graph::ready(&when, &started, &done) {
                let s = &plan.steps[i];
                started[i] = true;
                let shared = shared.clone();
                let step: Step = s.clone();
                let token = cancel.child_token();
                if let Some(watch) = &shared.cfg.on_step {
                    watch(StepEvent::Started(&s.id));
                }
                running.spawn(async move { step::execute(shared, step, token).await });
            }
        }
        let Some(joined) = running.join_next().await else { break };
        let r = match joined {
            Ok(r) => r,
            Err(e) => {
                shared.say(&format!("A step task ended abnormally: {e}"));
                failed = true;
                cancel.cancel();
                continue;
            }
        };
        if !r.status.lets_dependents_run() && !failed {
            failed = true;
            if r.status != StepStatus::Canceled {
                shared.say(&format!("Step ID: {} failed; stopping the run", r.id));
            }
            cancel.cancel();
        }
        done.insert(r.id.clone(), r.status);
        if let Some(watch) = &shared.cfg.on_step {
            watch(StepEvent::Ended(&r));
        }
        reports.push(r);
    }
    for (i, s) in plan.steps.iter().enumerate() {
        if !started[i] {
            reports.push(StepReport::skipped(&s.id));
        }
    }
    let order: HashMap<&str, usize> = plan.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    reports.sort_by_key(|r| order.get(r.id.as_str()).copied().unwrap_or(usize::MAX));
    reports
}
