//! Runs as the queue keeps them.

use serde::{Deserialize, Serialize};

pub use slipway_api::{RunStatus, RunType};

/// A run to queue. `request` must hold no secret values.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub run_type: RunType,
    pub task: Option<String>,
    pub platform: String,
    pub request: serde_json::Value,
    pub image_names: Vec<String>,
    pub triggers: Triggers,
}

/// Why a run started, when a trigger started it (ACR's trigger objects, as JSON).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Triggers {
    pub source: Option<serde_json::Value>,
    pub image_update: Option<serde_json::Value>,
    pub timer: Option<serde_json::Value>,
}

/// A saved task. `spec` holds no secret values.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub name: String,
    pub spec: serde_json::Value,
    pub enabled: bool,
    pub create_time: i64,
    pub last_updated_time: i64,
}

/// A base image a task's last build used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub task: String,
    /// Normalised `registry/repository:tag`.
    pub image: String,
    /// `runtime` or `buildtime`.
    pub kind: String,
    /// The digest the build used, when known.
    pub digest: String,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub status: RunStatus,
    pub run_type: RunType,
    pub task: Option<String>,
    pub platform: String,
    pub request: serde_json::Value,
    pub image_names: Vec<String>,
    pub create_time: i64,
    pub start_time: Option<i64>,
    pub finish_time: Option<i64>,
    pub last_updated_time: i64,
    pub output_images: serde_json::Value,
    pub image_dependencies: serde_json::Value,
    pub error_message: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_expires: Option<i64>,
    pub attempt: i64,
    pub cancel_requested: bool,
    pub triggers: Triggers,
}

/// Filters and paging for listing runs, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<RunStatus>,
    pub run_type: Option<RunType>,
    pub task: Option<String>,
    /// Matches runs whose image names contain this text.
    pub image: Option<String>,
    pub limit: u32,
    /// Only runs created before this run (its `seq`), for paging.
    pub before_id: Option<String>,
}
