//! The container engine as the runner sees it: an [`Engine`] trait over container
//! specs, and [`Docker`], its adapter to the Docker Engine API through `bollard`.
//!
//! Nothing here knows about tasks or steps: the runner translates a step into a
//! [`ContainerSpec`] or an [`ImageBuild`], and this crate makes the API calls.
//! Everything created for a run carries the label [`RUN_LABEL`] so that
//! [`Engine::sweep`] can remove it whatever happened to the run.

mod buildkit;
mod docker;

pub use docker::{hold_name, Docker};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use std::collections::HashMap;
use std::sync::Arc;

/// The label every container, network and volume of a run carries, with the run id as value.
pub const RUN_LABEL: &str = "io.slipway.run";

/// The label of networks a daemon creates ahead of runs, with the daemon instance as value.
pub const POOL_LABEL: &str = "io.slipway.pool";

/// Receives output one line at a time.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// A build context as a stream of tar bytes.
pub type ContextStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {endpoint}: {message}")]
    Unreachable { endpoint: String, message: String },
    #[error("{0}")]
    Api(String),
    #[error("image {image} not found locally and it could not be pulled: {message}")]
    ImageUnavailable { image: String, message: String },
    #[error("build failed: {0}")]
    Build(String),
    #[error("push of {image} failed: {message}")]
    Push { image: String, message: String },
}

/// A container to create.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub privileged: bool,
    /// What it mounts, each given to the engine as a typed mount (a path with a `:` in
    /// it stays one path).
    pub mounts: Vec<Mount>,
    pub network: Option<String>,
    /// Names other containers on `network` reach this one by.
    pub aliases: Vec<String>,
    /// Published ports, as the task file gave them (the runner binds them to loopback
    /// where it must).
    pub ports: Vec<slipway_plan::PortMapping>,
    pub expose: Vec<String>,
    pub labels: HashMap<String, String>,
    pub cpus: Option<f64>,
    /// `name:address` entries for `/etc/hosts`.
    pub extra_hosts: Vec<String>,
    /// Capabilities taken from the engine's default set (`MKNOD`, `NET_RAW`).
    pub cap_drop: Vec<String>,
    /// Memory in bytes; `None`: the engine's default (none).
    pub memory: Option<u64>,
    /// Most processes; `None`: the engine's default (none).
    pub pids_limit: Option<u64>,
    /// `/dev/shm`'s size in bytes; `None`: the engine's default (64 MiB).
    pub shm_size: Option<u64>,
    /// The log driver and its options; `None`: the engine's default driver.
    pub log_driver: Option<(String, Vec<(String, String)>)>,
}

pub use slipway_plan::Builder;

/// Something a container mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// A named volume of the engine, made if missing.
    Volume { name: String, target: String },
    /// A directory or a socket of the host, which must exist.
    Host {
        source: std::path::PathBuf,
        target: String,
        read_only: bool,
    },
}

/// A secret a build reads with `RUN --mount=type=secret,id=…`. `Debug` never shows
/// the value.
#[derive(Clone, Default)]
pub struct BuildSecret {
    pub id: String,
    pub value: Vec<u8>,
}

impl std::fmt::Debug for BuildSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildSecret").field("id", &self.id).field("value", &"***").finish()
    }
}

/// An image build.
#[derive(Debug, Clone, Default)]
pub struct ImageBuild {
    pub builder: Builder,
    pub tags: Vec<String>,
    /// Path of the Dockerfile inside the context.
    pub dockerfile: String,
    pub build_args: HashMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    pub labels: HashMap<String, String>,
    pub platform: Option<String>,
    pub network: Option<String>,
    pub cache_from: Vec<String>,
    pub extra_hosts: Vec<String>,
    pub secrets: Vec<BuildSecret>,
    /// Writes cache metadata into the image (BuildKit's inline cache), so a later
    /// build elsewhere can use it with `cache_from`.
    pub inline_cache: bool,
    /// The namespace of the build's cache mounts (`RUN --mount=type=cache`): builds in
    /// one namespace share them, builds in others cannot see them. `None` shares them
    /// node-wide. Set by BuildKit's `BUILDKIT_CACHE_MOUNT_NS`, which a build argument
    /// of the same name cannot then override.
    pub cache_mount_namespace: Option<String>,
}

/// Credentials for one registry. `Debug` never shows the password.
#[derive(Clone, Default)]
pub struct RegistryCredential {
    pub registry: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredential")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
    pub oom_killed: bool,
}

/// What the runner needs from a container engine.
#[async_trait]
pub trait Engine: Send + Sync {
    /// Fails with [`EngineError::Unreachable`] when the engine does not answer.
    async fn ping(&self) -> Result<(), EngineError>;
    async fn create_network(&self, name: &str, driver: &str, ipv6: bool, labels: HashMap<String, String>) -> Result<(), EngineError>;
    /// Creates a volume; with `bind`, one that is that host directory (the local
    /// driver's bind option), so it can be named where a path cannot.
    async fn create_volume(&self, name: &str, labels: HashMap<String, String>, bind: Option<&std::path::Path>) -> Result<(), EngineError>;
    /// Removes a network; a missing one is fine.
    async fn remove_network(&self, name: &str) -> Result<(), EngineError>;
    /// The networks carrying label `key`: their names and the label's value.
    async fn networks_labelled(&self, key: &str) -> Result<Vec<(String, String)>, EngineError>;
    /// Makes `image` available locally: pulls it when missing or when `always` is set.
    async fn ensure_image(
        &self,
        image: &str,
        always: bool,
        credential: Option<RegistryCredential>,
        log: LogSink,
    ) -> Result<(), EngineError>;
    /// Builds and tags an image; returns its id. With a platform, the image is that
    /// platform's or the build fails: never an image of another architecture.
    async fn build(
        &self,
        build: ImageBuild,
        context: ContextStream,
        credentials: Vec<RegistryCredential>,
        log: LogSink,
    ) -> Result<String, EngineError>;
    /// Gives the image `image_id` the name `tag` too.
    async fn tag_image(&self, image_id: &str, tag: &str) -> Result<(), EngineError>;
    /// Pushes one image per platform (`variants`: platform, image id) and puts an OCI
    /// image index of them under `image`'s tag, which the engine cannot push itself.
    /// Returns the index digest and each platform's manifest digest. `image` names the
    /// first platform's image afterwards when `keep_name`, else no image.
    async fn push_index(
        &self,
        image: &str,
        variants: &[(String, String)],
        credential: Option<RegistryCredential>,
        log: LogSink,
        keep_name: bool,
    ) -> Result<(String, Vec<(String, String)>), EngineError>;
    /// Pushes `image`; returns the manifest digest the registry reported.
    async fn push(&self, image: &str, credential: Option<RegistryCredential>, log: LogSink) -> Result<String, EngineError>;
    /// Pushes the local image `source` (a name or an id) as `target`: it has that name
    /// only while it is pushed (a push is by name), one push of a name at a time, then
    /// the name is the image's that had it before, or nobody's. Returns the digest.
    async fn push_as(
        &self,
        source: &str,
        target: &str,
        credential: Option<RegistryCredential>,
        log: LogSink,
    ) -> Result<String, EngineError>;
    /// Removes the name `image` (the image itself goes when no other name holds it and
    /// no container uses it). Missing is fine.
    async fn untag(&self, image: &str) -> Result<(), EngineError>;
    /// The repository digest of a local image for `image`'s repository, if it has one.
    async fn image_digest(&self, image: &str) -> Option<String>;
    async fn image_id(&self, image: &str) -> Option<String>;
    /// The image's `ONBUILD` triggers (none when the engine does not have it).
    async fn image_triggers(&self, image: &str) -> Vec<String>;
    async fn create_container(&self, spec: &ContainerSpec) -> Result<(), EngineError>;
    async fn start_container(&self, name: &str) -> Result<(), EngineError>;
    /// Sends the container's output to `log`, line by line, until it stops. `emitted`
    /// counts the bytes of output sent so far (whole lines only, until the stream ends),
    /// so [`Engine::logs_after`] can send what a follow missed.
    async fn follow_logs(&self, name: &str, log: LogSink, emitted: Arc<std::sync::atomic::AtomicU64>);
    /// Sends the container's output after its first `offset` bytes to `log`. The
    /// engine can end a follow before the last chunk of a container that exits while
    /// the follow starts; reading the whole log after the container stopped cannot.
    async fn logs_after(&self, name: &str, offset: u64, log: LogSink) -> Result<(), EngineError>;
    /// Waits for the container to stop and reports how it ended.
    async fn wait_container(&self, name: &str) -> Result<Exit, EngineError>;
    /// Kills (if running) and removes a container with its anonymous volumes. Missing is fine.
    async fn remove_container(&self, name: &str) -> Result<(), EngineError>;
    /// Removes every container, network and volume labelled with this run id, and the
    /// run's images: every name in its namespace (`slipway_reference::namespace`) and
    /// every image labelled with it that no name holds any more.
    async fn sweep(&self, run_id: &str) -> Result<usize, EngineError>;
    /// Counts what is still labelled with this run id (for tests and checks).
    async fn leftovers(&self, run_id: &str) -> Result<Vec<String>, EngineError>;
}

/// Sends the non-empty lines of `text` (an engine's output) to `log`.
pub(crate) fn emit_lines(log: &LogSink, text: &str) {
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if !line.is_empty() {
            log(line);
        }
    }
}

/// Credentials for `registry` from `~/.docker/config.json` (auths, credHelpers, credsStore).
pub fn docker_config_credential(registry: &str) -> Option<RegistryCredential> {
    match docker_credential::get_credential(registry) {
        Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => Some(RegistryCredential {
            registry: registry.to_string(),
            username,
            password,
        }),
        Ok(docker_credential::DockerCredential::IdentityToken(_)) => {
            tracing::warn!(
                registry,
                "identity tokens from the docker config are not supported; pushing without credentials"
            );
            None
        }
        Err(_) => None,
    }
}
