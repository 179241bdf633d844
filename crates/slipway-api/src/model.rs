//! The API's JSON, shaped like ACR's run objects and run requests.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RunStatus {
    Queued,
    Started,
    Running,
    Succeeded,
    Failed,
    Canceled,
    Error,
    Timeout,
}

impl RunStatus {
    pub const ALL: [RunStatus; 8] = [
        RunStatus::Queued,
        RunStatus::Started,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Canceled,
        RunStatus::Error,
        RunStatus::Timeout,
    ];

    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Started | RunStatus::Running)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "Queued",
            RunStatus::Started => "Started",
            RunStatus::Running => "Running",
            RunStatus::Succeeded => "Succeeded",
            RunStatus::Failed => "Failed",
            RunStatus::Canceled => "Canceled",
            RunStatus::Error => "Error",
            RunStatus::Timeout => "Timeout",
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunType {
    QuickBuild,
    QuickRun,
    AutoBuild,
    AutoRun,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::QuickBuild => "QuickBuild",
            RunType::QuickRun => "QuickRun",
            RunType::AutoBuild => "AutoBuild",
            RunType::AutoRun => "AutoRun",
        }
    }
    pub fn parse(s: &str) -> Option<RunType> {
        [RunType::QuickBuild, RunType::QuickRun, RunType::AutoBuild, RunType::AutoRun]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub run_id: String,
    /// The tenant it belongs to.
    #[serde(default)]
    pub tenant: String,
    pub status: RunStatus,
    pub run_type: RunType,
    pub task: Option<String>,
    pub create_time: String,
    pub start_time: Option<String>,
    pub finish_time: Option<String>,
    pub last_updated_time: String,
    pub output_images: Vec<crate::results::OutputImage>,
    pub image_dependencies: Vec<crate::results::ImageDependency>,
    pub run_error_message: Option<String>,
    pub platform: Platform,
    pub source_trigger: Option<crate::results::SourceTriggerEvent>,
    pub image_update_trigger: Option<crate::results::ImageUpdateTriggerEvent>,
    pub timer_trigger: Option<crate::results::TimerTriggerEvent>,
    /// Each step: `{id, when, status, startTime, durationSeconds, error, executions}`,
    /// updated as the run goes.
    #[serde(default)]
    pub steps: Vec<crate::results::StepView>,
    /// Kept past the daemon's retention period (`az acr task update-run`).
    #[serde(default)]
    pub is_archive_enabled: bool,
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

/// `{name, value, isSecret}`: a build argument or a task value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Argument {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_secret: bool,
}

/// The body of `POST /v1/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RunRequest {
    DockerBuildRequest(DockerBuildRequest),
    FileTaskRunRequest(FileTaskRunRequest),
    EncodedTaskRunRequest(EncodedTaskRunRequest),
}

impl RunRequest {
    /// Where the run's source is, if it names one.
    pub fn source_location(&self) -> Option<&str> {
        match self {
            RunRequest::DockerBuildRequest(r) => r.source_location.as_deref(),
            RunRequest::FileTaskRunRequest(r) => r.source_location.as_deref(),
            RunRequest::EncodedTaskRunRequest(r) => r.source_location.as_deref(),
        }
    }

    /// Whether it has secret values (secret arguments or values, build secrets): once
    /// stored, their values are kept apart and deleted when the run ends.
    pub fn has_secrets(&self) -> bool {
        let secret = |list: &[Argument]| list.iter().any(|a| a.is_secret);
        match self {
            RunRequest::DockerBuildRequest(r) => secret(&r.arguments) || !r.build_secrets.is_empty(),
            RunRequest::FileTaskRunRequest(r) => secret(&r.values),
            RunRequest::EncodedTaskRunRequest(r) => secret(&r.values),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Secrets the Dockerfile reads with `RUN --mount=type=secret,id=NAME` (a Slipway
    /// extension): `name` is the id. Values are never stored, logged or shown.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub build_secrets: Vec<Argument>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// A list as the API answers it: `{"value": [...]}`, with the token of the next page
/// when there may be one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub value: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_skip_token: Option<String>,
}

impl<T> Page<T> {
    /// A whole list: no next page.
    pub fn of(value: Vec<T>) -> Page<T> {
        Page {
            value,
            next_skip_token: None,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::RunRequest;

    fn request(v: serde_json::Value) -> RunRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn statuses_fill_a_table_column() {
        assert_eq!(format!("{:<10}|", super::RunStatus::Queued), "Queued    |");
    }

    #[test]
    fn secret_arguments_values_and_build_secrets_are_found() {
        let build = |args: serde_json::Value| request(serde_json::json!({"type": "DockerBuildRequest", "arguments": args}));
        assert!(build(serde_json::json!([{"name": "a", "value": "", "isSecret": true}])).has_secrets());
        assert!(!build(serde_json::json!([{"name": "a", "value": "x", "isSecret": false}])).has_secrets());
        assert!(request(serde_json::json!({"type": "DockerBuildRequest", "buildSecrets": [{"name": "npm", "value": ""}]})).has_secrets());
        assert!(
            request(serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": "",
            "values": [{"name": "v", "value": "", "isSecret": true}]}))
            .has_secrets()
        );
        assert!(!request(serde_json::json!({"type": "FileTaskRunRequest", "taskFilePath": "t.yaml"})).has_secrets());
    }
}
