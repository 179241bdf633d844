//! The plan a task file becomes, and the runner executes: task properties with their
//! defaults filled in and steps whose dependencies are resolved. Plain values with no
//! behaviour of their own: `slipway-taskfile` makes them from YAML, `slipway-runner`
//! runs them, and neither needs the other.

pub mod build_secret;
pub mod choices;
pub mod credential;
pub mod ids;
pub mod output_image;
pub mod ports;
pub mod redact;

pub use choices::{Builder, EngineAccess};
pub use credential::Credential;
pub use ids::new_run_id;
pub use output_image::OutputImage;
pub use ports::PortMapping;
pub use redact::Redactor;

use serde::Serialize;
use slipway_reference::Reference;
use std::collections::BTreeMap;

pub const VERSIONS: &[&str] = &["v1.0.0", "v1.1.0", "1.0-preview-1"];
pub const DEFAULT_VERSION: &str = "v1.0.0";
pub const DEFAULT_STEP_TIMEOUT: u64 = 600;
pub const DEFAULT_TOTAL_TIMEOUT: u64 = 3600;
pub const MAX_TOTAL_TIMEOUT: u64 = 28800;
/// acb retries after 5 s by default, although the ACR docs say 0.
pub const DEFAULT_RETRY_DELAY: u64 = 5;
pub const DEFAULT_NETWORK: &str = "acb_default_network";
pub const ROOT_ID: &str = "acb_root";
pub const PARALLEL: &str = "-";

/// A task ready to run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub version: String,
    pub step_timeout: u64,
    pub total_timeout: u64,
    pub working_directory: String,
    pub env: Vec<String>,
    pub network_mode: NetworkMode,
    pub networks: Vec<Network>,
    pub volumes: Vec<Volume>,
    pub secrets: Vec<Secret>,
    pub steps: Vec<Step>,
}

/// How step containers are networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkMode {
    /// Each step container joins the run's network (as ACR does).
    #[default]
    PerStep,
    /// Every step shares one network namespace held by a sandbox container; faster to
    /// start, but two steps cannot serve the same port.
    Shared,
}

impl std::str::FromStr for NetworkMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "per-step" | "perStep" => Ok(NetworkMode::PerStep),
            "shared" => Ok(NetworkMode::Shared),
            other => Err(format!("network mode {other:?} is not one of per-step, shared")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub name: String,
    pub driver: String,
    pub ipv6: bool,
    pub skip_creation: bool,
    pub is_default: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    /// File name → content. Never serialised: it is secret.
    #[serde(skip)]
    pub files: BTreeMap<String, Vec<u8>>,
    #[serde(rename = "files")]
    pub file_names: Vec<String>,
}

/// Where a secret's value comes from. The value itself is never part of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    pub id: String,
    pub source: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "from")]
pub enum SecretSource {
    /// Given with `--set-secret id=value` (or the daemon's request).
    Provided,
    Env(String),
    File(String),
    KeyVault(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub name: String,
    pub mount_path: String,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // A handful per plan; boxing would only add noise.
pub enum StepKind {
    Build {
        build: String,
        #[serde(flatten)]
        spec: BuildSpec,
    },
    Push {
        push: Vec<String>,
    },
    Cmd {
        cmd: String,
        image: String,
        args: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub id: String,
    #[serde(flatten)]
    pub kind: StepKind,
    /// Ids this step waits for; empty to start at once.
    pub when: Vec<String>,
    pub timeout: u64,
    pub start_delay: u64,
    pub retries: u64,
    pub retry_delay: u64,
    pub retry_on_errors: Vec<String>,
    pub repeat: u64,
    pub detach: bool,
    pub keep: bool,
    pub ignore_errors: bool,
    pub disable_working_directory_override: bool,
    pub entry_point: Option<String>,
    pub env: Vec<String>,
    pub expose: Vec<String>,
    pub ports: Vec<PortMapping>,
    pub network: String,
    pub user: Option<String>,
    pub working_directory: String,
    pub privileged: bool,
    pub pull: bool,
    pub isolation: Option<String>,
    pub cpus: Option<f64>,
    /// What the step asks for with `cmd: -m …`, `--pids-limit …`, `--shm-size …`:
    /// bytes, processes, bytes; within the daemon's step limits.
    pub memory: Option<u64>,
    pub pids_limit: Option<u64>,
    pub shm_size: Option<u64>,
    pub cache: bool,
    /// `cache: enabled`, as acb reads it: a build imports and exports its layer cache
    /// through the registry (`<repository>:cache_<task>_<step>`), so any node can use it.
    pub registry_cache: bool,
    pub volume_mounts: Vec<Mount>,
    pub cmd_download_retries: u64,
    pub cmd_download_retry_delay: u64,
    pub exited_with: Vec<i64>,
    pub exited_without: Vec<i64>,
    /// 1-based line of the step in the rendered task file.
    pub line: usize,
}

impl Step {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            StepKind::Build { .. } => "build",
            StepKind::Push { .. } => "push",
            StepKind::Cmd { .. } => "cmd",
        }
    }
}

/// A `docker build` invocation, parsed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildSpec {
    pub tags: Vec<String>,
    /// `-f`; relative to the context unless absolute. Empty means `Dockerfile`.
    pub dockerfile: String,
    /// `--build-arg K=V`, or `K` alone to take the value from the environment.
    pub build_args: Vec<String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub pull: bool,
    pub labels: Vec<String>,
    pub platform: Option<String>,
    pub network: Option<String>,
    pub secrets: Vec<String>,
    pub cache_from: Vec<String>,
    pub add_hosts: Vec<String>,
    pub isolation: Option<String>,
    pub quiet: bool,
    /// The context: a path relative to the run's context, or a URL.
    pub context: String,
}

/// `app` → `app:latest`; a tag or digest already written is kept.
pub fn with_default_tag(image: &str) -> String {
    match Reference::parse(image) {
        Ok(r) if r.explicit_tag.is_none() && r.digest.is_none() => format!("{image}:latest"),
        _ => image.to_string(),
    }
}
