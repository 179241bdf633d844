//! Runs as the queue keeps them.

use serde::{Deserialize, Serialize};

pub use slipway_api::{RunStatus, RunType};

/// A run to queue. `request` must hold no secret values.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    /// The tenant the run belongs to: only its callers (and operators) see it.
    pub tenant: String,
    /// Where its build-cache mounts live (`slipway_api::requests::cache_namespace`).
    pub cache_namespace: Option<String>,
    pub run_type: RunType,
    pub task: Option<String>,
    pub platform: String,
    pub request: slipway_api::model::RunRequest,
    pub image_names: Vec<String>,
    pub triggers: Triggers,
}

/// Why a run started, when a trigger started it (ACR's trigger objects, as JSON).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Triggers {
    pub source: Option<slipway_api::results::SourceTriggerEvent>,
    pub image_update: Option<slipway_api::results::ImageUpdateTriggerEvent>,
    pub timer: Option<slipway_api::results::TimerTriggerEvent>,
}

/// A saved task. `spec` holds no secret values. Named within its tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub tenant: String,
    pub name: String,
    pub spec: slipway_api::task::TaskSpec,
    pub enabled: bool,
    pub create_time: i64,
    pub last_updated_time: i64,
}

/// A base image a task's last build used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub tenant: String,
    pub task: String,
    /// Normalised `registry/repository:tag`.
    pub image: String,
    pub kind: slipway_api::results::DependencyKind,
    /// The digest the build used, when known.
    pub digest: String,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub tenant: String,
    pub cache_namespace: Option<String>,
    pub status: RunStatus,
    pub run_type: RunType,
    pub task: Option<String>,
    pub platform: String,
    pub request: slipway_api::model::RunRequest,
    pub image_names: Vec<String>,
    pub create_time: i64,
    pub start_time: Option<i64>,
    pub finish_time: Option<i64>,
    pub last_updated_time: i64,
    pub output_images: Vec<slipway_api::results::OutputImage>,
    pub image_dependencies: Vec<slipway_api::results::ImageDependency>,
    /// `[{id, status, startTime, durationSeconds, error}]`, as the worker last wrote it.
    pub steps: Vec<slipway_api::results::StepView>,
    pub error_message: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires: Option<i64>,
    pub attempt: i64,
    pub cancel_requested: bool,
    /// Kept past the retention period.
    pub archived: bool,
    pub triggers: Triggers,
}

/// Filters and paging for listing runs, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only this tenant's runs; `None` for every tenant's (an operator, the daemon).
    pub tenant: Option<String>,
    pub status: Option<RunStatus>,
    pub run_type: Option<RunType>,
    pub task: Option<String>,
    /// Matches runs whose image names contain this text.
    pub image: Option<String>,
    pub limit: u32,
    /// Only runs created before this run (its `seq`), for paging.
    pub before_id: Option<String>,
    /// What started the runs.
    pub trigger: Option<TriggerKind>,
    /// Only runs changed after this time (ms), oldest change first, for watching the queue.
    pub updated_after: Option<i64>,
}

/// What started a run, as `az acr task list-runs` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerKind {
    Manual,
    Commit,
    ImageUpdate,
    Timer,
}

impl TriggerKind {
    pub const ALL: [TriggerKind; 4] = [
        TriggerKind::Manual,
        TriggerKind::Commit,
        TriggerKind::ImageUpdate,
        TriggerKind::Timer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Manual => "Manual",
            TriggerKind::Commit => "Commit",
            TriggerKind::ImageUpdate => "Image Update",
            TriggerKind::Timer => "Timer",
        }
    }

    /// Accepts the names `as_str` gives, and `imageUpdate`, in any case.
    pub fn parse(s: &str) -> Option<TriggerKind> {
        let key: String = s.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
        TriggerKind::ALL
            .into_iter()
            .find(|k| k.as_str().replace(' ', "").to_lowercase() == key)
    }

    /// What started `t`'s run.
    pub fn of(t: &Triggers) -> TriggerKind {
        if t.source.is_some() {
            TriggerKind::Commit
        } else if t.image_update.is_some() {
            TriggerKind::ImageUpdate
        } else if t.timer.is_some() {
            TriggerKind::Timer
        } else {
            TriggerKind::Manual
        }
    }
}

pub use slipway_api::time::from_ms as rfc3339;

impl RunRecord {
    /// The run as the API shows it (`GET /v1/runs/{id}`, run events).
    pub fn view(&self) -> slipway_api::model::Run {
        slipway_api::model::Run {
            run_id: self.id.clone(),
            tenant: self.tenant.clone(),
            status: self.status,
            run_type: self.run_type,
            task: self.task.clone(),
            create_time: rfc3339(self.create_time),
            start_time: self.start_time.map(rfc3339),
            finish_time: self.finish_time.map(rfc3339),
            last_updated_time: rfc3339(self.last_updated_time),
            output_images: self.output_images.clone(),
            image_dependencies: self.image_dependencies.clone(),
            run_error_message: self.error_message.clone(),
            platform: slipway_api::model::Platform::parse(&self.platform),
            source_trigger: self.triggers.source.clone(),
            image_update_trigger: self.triggers.image_update.clone(),
            timer_trigger: self.triggers.timer.clone(),
            steps: self.steps.clone(),
            is_archive_enabled: self.archived,
        }
    }
}
