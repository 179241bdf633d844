//! The API's JSON, shaped like ACR's run objects and run requests.

use serde::{Deserialize, Serialize};
use slipway_store::RunRecord;

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub run_id: String,
    pub status: String,
    pub run_type: String,
    pub task: Option<String>,
    pub create_time: String,
    pub start_time: Option<String>,
    pub finish_time: Option<String>,
    pub last_updated_time: String,
    pub output_images: serde_json::Value,
    pub image_dependencies: serde_json::Value,
    pub run_error_message: Option<String>,
    pub platform: Platform,
    pub source_trigger: Option<serde_json::Value>,
    pub image_update_trigger: Option<serde_json::Value>,
    pub timer_trigger: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub os: String,
    pub architecture: String,
}

impl Platform {
    pub fn parse(s: &str) -> Platform {
        let (os, arch) = s.split_once('/').unwrap_or((s, "amd64"));
        Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
        }
    }
    pub fn as_string(&self) -> String {
        format!("{}/{}", self.os, self.architecture)
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl From<&RunRecord> for Run {
    fn from(r: &RunRecord) -> Run {
        Run {
            run_id: r.id.clone(),
            status: r.status.to_string(),
            run_type: r.run_type.as_str().to_string(),
            task: r.task.clone(),
            create_time: time(r.create_time),
            start_time: r.start_time.map(time),
            finish_time: r.finish_time.map(time),
            last_updated_time: time(r.last_updated_time),
            output_images: r.output_images.clone(),
            image_dependencies: r.image_dependencies.clone(),
            run_error_message: r.error_message.clone(),
            platform: Platform::parse(&r.platform),
            source_trigger: r.triggers.source.clone(),
            image_update_trigger: r.triggers.image_update.clone(),
            timer_trigger: r.triggers.timer.clone(),
        }
    }
}

/// `{name, value, isSecret}`: a build argument or a task value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Argument {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_secret: bool,
}

/// The body of `POST /v1/runs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RunRequest {
    DockerBuildRequest(DockerBuildRequest),
    FileTaskRunRequest(FileTaskRunRequest),
    EncodedTaskRunRequest(EncodedTaskRunRequest),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DockerBuildRequest {
    #[serde(default)]
    pub image_names: Vec<String>,
    #[serde(default = "yes")]
    pub is_push_enabled: bool,
    #[serde(default)]
    pub no_cache: bool,
    #[serde(default = "dockerfile")]
    pub docker_file_path: String,
    pub target: Option<String>,
    #[serde(default)]
    pub arguments: Vec<Argument>,
    pub platform: Option<String>,
    pub timeout: Option<u64>,
    pub source_location: Option<String>,
    /// Pull base images even when they are present locally.
    #[serde(default)]
    pub pull: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileTaskRunRequest {
    pub task_file_path: String,
    pub values_file_path: Option<String>,
    #[serde(default)]
    pub values: Vec<Argument>,
    pub platform: Option<String>,
    pub timeout: Option<u64>,
    pub source_location: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EncodedTaskRunRequest {
    pub encoded_task_content: String,
    pub encoded_values_content: Option<String>,
    #[serde(default)]
    pub values: Vec<Argument>,
    pub platform: Option<String>,
    pub timeout: Option<u64>,
    pub source_location: Option<String>,
}

fn yes() -> bool {
    true
}

fn dockerfile() -> String {
    "Dockerfile".into()
}

/// The answer to an upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upload {
    pub id: String,
    /// Pass this as a request's `sourceLocation`.
    pub source_location: String,
    pub size: u64,
}

/// Every error the API returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}
