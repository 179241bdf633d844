//! Run requests as ARM's `scheduleRun` takes them from the Azure CLI, and their
//! translation into Slipway's [`RunRequest`]. ARM's shapes carry more than Slipway's
//! (`agentConfiguration`, `credentials`, `isArchiveEnabled`, `"type"` inside each
//! argument, the platform as an object): what Slipway has no use for is read and
//! dropped here, once, so `/v1` keeps refusing unknown fields.

use crate::model::{Argument, DockerBuildRequest, EncodedTaskRunRequest, FileTaskRunRequest, RunRequest};
use serde::Deserialize;

/// The body of `POST {registry}/scheduleRun`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type")]
pub enum ArmRunRequest {
    DockerBuildRequest(ArmDockerBuild),
    FileTaskRunRequest(ArmTaskFile),
    EncodedTaskRunRequest(ArmEncodedTask),
    TaskRunRequest(ArmTaskRun),
}

/// A run of a saved task (`az acr task run`), with what the run changes of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmTaskRun {
    /// The task's resource id, `…/tasks/NAME`.
    pub task_id: String,
    #[serde(default)]
    pub override_task_step_properties: ArmOverrides,
}

/// `overrideTaskStepProperties`; `updateTriggerToken` is read and dropped.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmOverrides {
    pub context_path: Option<String>,
    pub file: Option<String>,
    #[serde(default)]
    pub arguments: Vec<ArmArgument>,
    pub target: Option<String>,
    #[serde(default)]
    pub values: Vec<ArmArgument>,
}

/// What `scheduleRun` starts: a run of its own, or a run of a saved task.
#[derive(Debug, Clone)]
pub enum Scheduled {
    Run(RunRequest),
    Task { name: String, overrides: crate::task::Overrides },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmDockerBuild {
    #[serde(default)]
    pub image_names: Vec<String>,
    #[serde(default = "yes")]
    pub is_push_enabled: bool,
    #[serde(default)]
    pub no_cache: bool,
    pub docker_file_path: Option<String>,
    pub target: Option<String>,
    #[serde(default)]
    pub arguments: Vec<ArmArgument>,
    pub timeout: Option<u64>,
    pub platform: Option<ArmPlatform>,
    pub source_location: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmTaskFile {
    pub task_file_path: String,
    pub values_file_path: Option<String>,
    #[serde(default)]
    pub values: Vec<ArmArgument>,
    pub timeout: Option<u64>,
    pub platform: Option<ArmPlatform>,
    pub source_location: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmEncodedTask {
    pub encoded_task_content: String,
    pub encoded_values_content: Option<String>,
    #[serde(default)]
    pub values: Vec<ArmArgument>,
    pub timeout: Option<u64>,
    pub platform: Option<ArmPlatform>,
    pub source_location: Option<String>,
}

/// The body of `PATCH {registry}/runs/{id}` (`az acr task update-run --no-archive`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmRunUpdate {
    pub is_archive_enabled: Option<bool>,
}

/// An argument or a value, as `az` sends it (`{"type": "Argument", name, value, isSecret}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmArgument {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub is_secret: bool,
}

/// `{"os": "linux", "architecture": "amd64", "variant": "v8"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ArmPlatform {
    #[serde(default = "linux")]
    pub os: String,
    pub architecture: Option<String>,
    pub variant: Option<String>,
}

pub(crate) fn yes() -> bool {
    true
}

fn linux() -> String {
    "linux".into()
}

impl ArmPlatform {
    /// `os/architecture[/variant]`, lower case, as Slipway names platforms.
    pub(crate) fn text(&self) -> String {
        let mut t = self.os.to_ascii_lowercase();
        t.push('/');
        t.push_str(&self.architecture.as_deref().unwrap_or("amd64").to_ascii_lowercase());
        if let Some(v) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            t.push('/');
            t.push_str(&v.to_ascii_lowercase());
        }
        t
    }
}

/// ARM's arguments or values as Slipway's (`type` dropped, a missing value empty).
pub(crate) fn arguments(list: Vec<ArmArgument>) -> Vec<Argument> {
    list.into_iter()
        .map(|a| Argument {
            name: a.name,
            value: a.value.unwrap_or_default(),
            is_secret: a.is_secret,
        })
        .collect()
}

/// `az acr run --cmd … /dev/null` and a build without a context send no source, or
/// `/dev/null`: no source.
fn source(location: Option<String>) -> Option<String> {
    location.filter(|l| !l.is_empty() && l != "/dev/null")
}

/// An image name as ACR reads `-t`: within the registry (`app:1` is `REGISTRY/app:1`),
/// unless its first part names a registry host (has a `.` or a `:`, or is `localhost`).
pub(crate) fn qualified(name: String, registry: &str) -> String {
    let first = name.split('/').next().unwrap_or("");
    let names_host = name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if names_host || registry.is_empty() {
        name
    } else {
        format!("{registry}/{name}")
    }
}

impl ArmTaskRun {
    /// The task's name and the overrides as Slipway takes them; `taskId` must name a task.
    fn into_scheduled(self) -> Result<Scheduled, String> {
        let name = self.task_id.rsplit('/').next().unwrap_or("").to_string();
        if !self.task_id.contains("/tasks/") || name.is_empty() {
            return Err(format!("taskId {:?} must be the task's resource id (…/tasks/NAME)", self.task_id));
        }
        let o = self.override_task_step_properties;
        let overrides = crate::task::Overrides {
            values: arguments(o.values),
            arguments: arguments(o.arguments),
            target: o.target.filter(|t| !t.is_empty()),
            file: o.file.filter(|f| !f.is_empty()),
            context_path: o.context_path.filter(|c| !c.is_empty()),
            ..Default::default()
        };
        Ok(Scheduled::Task { name, overrides })
    }
}

impl ArmRunRequest {
    /// What the request starts, image names within `registry` as ACR reads them.
    pub fn into_scheduled(self, registry: &str) -> Result<Scheduled, String> {
        Ok(Scheduled::Run(match self {
            ArmRunRequest::TaskRunRequest(r) => return r.into_scheduled(),
            ArmRunRequest::DockerBuildRequest(r) => RunRequest::DockerBuildRequest(DockerBuildRequest {
                image_names: r.image_names.into_iter().map(|n| qualified(n, registry)).collect(),
                is_push_enabled: r.is_push_enabled,
                no_cache: r.no_cache,
                docker_file_path: r.docker_file_path.unwrap_or_else(|| "Dockerfile".into()),
                target: r.target.filter(|t| !t.is_empty()),
                arguments: arguments(r.arguments),
                platform: r.platform.map(|p| p.text()),
                timeout: r.timeout,
                source_location: source(r.source_location),
                pull: false,
                build_secrets: Vec::new(),
            }),
            ArmRunRequest::FileTaskRunRequest(r) => RunRequest::FileTaskRunRequest(FileTaskRunRequest {
                task_file_path: r.task_file_path,
                values_file_path: r.values_file_path.filter(|v| !v.is_empty()),
                values: arguments(r.values),
                platform: r.platform.map(|p| p.text()),
                timeout: r.timeout,
                source_location: source(r.source_location),
            }),
            ArmRunRequest::EncodedTaskRunRequest(r) => RunRequest::EncodedTaskRunRequest(EncodedTaskRunRequest {
                encoded_task_content: r.encoded_task_content,
                encoded_values_content: r.encoded_values_content.filter(|v| !v.is_empty()),
                values: arguments(r.values),
                platform: r.platform.map(|p| p.text()),
                timeout: r.timeout,
                source_location: source(r.source_location),
            }),
        }))
    }
}

/// The `$filter` of `GET {registry}/runs`, as `az acr task list-runs` writes it:
/// `TaskName eq 'x'`, `Status eq 'x'` and `contains(OutputImageManifests, 'repo@digest')`,
/// joined by ` and `.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    pub task: Option<String>,
    pub status: Option<String>,
    /// `(repository, digest)` of an image the run pushed.
    pub manifest: Option<(String, String)>,
}

impl RunFilter {
    /// Reads `text`; a clause of another form is refused by name.
    pub fn parse(text: &str) -> Result<RunFilter, String> {
        let mut f = RunFilter::default();
        let quoted = |v: &str| -> Option<String> { v.trim().strip_prefix('\'')?.strip_suffix('\'').map(str::to_string) };
        for clause in text.split(" and ").map(str::trim).filter(|c| !c.is_empty()) {
            let bad = || format!("$filter: {clause:?} is not TaskName eq '…', Status eq '…' or contains(OutputImageManifests, '…')");
            if let Some(inner) = clause.strip_prefix("contains(").and_then(|c| c.strip_suffix(')')) {
                let (field, value) = inner.split_once(',').ok_or_else(bad)?;
                let value = quoted(value).ok_or_else(bad)?;
                if field.trim() != "OutputImageManifests" {
                    return Err(bad());
                }
                let (repo, digest) = value.split_once('@').ok_or_else(bad)?;
                f.manifest = Some((repo.to_string(), digest.to_string()));
                continue;
            }
            let (field, value) = clause.split_once(" eq ").ok_or_else(bad)?;
            let value = quoted(value).ok_or_else(bad)?;
            match field.trim() {
                "TaskName" => f.task = Some(value),
                "Status" => f.status = Some(value),
                _ => return Err(bad()),
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_filter_reads_what_az_writes() {
        let f = RunFilter::parse(
            "TaskName eq 'build-app' and Status eq 'Succeeded' and contains(OutputImageManifests, 'team-a/app@sha256:ab')",
        )
        .unwrap();
        assert_eq!(f.task.as_deref(), Some("build-app"));
        assert_eq!(f.status.as_deref(), Some("Succeeded"));
        assert_eq!(f.manifest, Some(("team-a/app".into(), "sha256:ab".into())));
        assert_eq!(RunFilter::parse("").unwrap(), RunFilter::default());
        for bad in ["RunId eq 'x'", "TaskName eq x", "contains(Other, 'a@b')", "TaskName ne 'x'"] {
            let e = RunFilter::parse(bad).unwrap_err();
            assert!(e.contains("$filter") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn a_task_run_names_its_task_and_overrides() {
        // `az acr task run -n build-app --arg A=2 --set-secret s=x`.
        let sent = serde_json::json!({"type": "TaskRunRequest", "taskId": "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerRegistry/registries/r/tasks/build-app",
            "overrideTaskStepProperties": {"arguments": [{"type": "Argument", "name": "A", "value": "2", "isSecret": false}],
                "values": [{"type": "SetValue", "name": "s", "value": "x", "isSecret": true}], "updateTriggerToken": null}});
        let r: ArmRunRequest = serde_json::from_value(sent).unwrap();
        let Ok(Scheduled::Task { name, overrides }) = r.into_scheduled("") else {
            panic!("a task run")
        };
        assert_eq!(name, "build-app");
        assert_eq!((overrides.arguments[0].value.as_str(), overrides.values[0].is_secret), ("2", true));
        let bad: ArmRunRequest = serde_json::from_value(serde_json::json!({"type": "TaskRunRequest", "taskId": "build-app"})).unwrap();
        assert!(bad.into_scheduled("").unwrap_err().contains("taskId"));
    }

    #[test]
    fn what_az_acr_build_sends_becomes_a_docker_build() {
        // As azure-cli 2.91.0 sends it for `az acr build -t app:1 --secret-build-arg S=x .`.
        let sent = serde_json::json!({
            "type": "DockerBuildRequest", "imageNames": ["app:1"], "isPushEnabled": true, "noCache": false,
            "dockerFilePath": "Dockerfile", "arguments": [{"type": "Argument", "name": "S", "value": "x", "isSecret": true}],
            "timeout": 3600, "platform": {"os": "Linux", "architecture": "amd64"},
            "agentConfiguration": {"cpu": 2}, "sourceLocation": "upload://abc", "credentials": {},
            "isArchiveEnabled": false
        });
        let r: ArmRunRequest = serde_json::from_value(sent).unwrap();
        let Ok(Scheduled::Run(RunRequest::DockerBuildRequest(b))) = r.into_scheduled("reg.local:5000") else {
            panic!()
        };
        assert_eq!(b.image_names, ["reg.local:5000/app:1"]);
        assert_eq!(b.platform.as_deref(), Some("linux/amd64"));
        assert_eq!((b.arguments[0].name.as_str(), b.arguments[0].is_secret), ("S", true));
        assert_eq!(b.source_location.as_deref(), Some("upload://abc"));
    }

    #[test]
    fn a_run_without_a_context_has_no_source() {
        let sent = serde_json::json!({"type": "EncodedTaskRunRequest", "encodedTaskContent": "c3RlcHM6IFtd",
            "values": [], "sourceLocation": "/dev/null", "platform": {"os": "linux"}});
        let r: ArmRunRequest = serde_json::from_value(sent).unwrap();
        let Ok(Scheduled::Run(r)) = r.into_scheduled("") else {
            panic!("a run")
        };
        assert_eq!(r.source_location(), None);
    }

    #[test]
    fn image_names_are_within_the_registry_unless_they_name_a_host() {
        for (given, want) in [
            ("app:1", "reg/app:1"),
            ("team/app:{{.Run.ID}}", "reg/team/app:{{.Run.ID}}"),
            ("other.io/app:1", "other.io/app:1"),
            ("127.0.0.1:5000/app", "127.0.0.1:5000/app"),
            ("localhost/app", "localhost/app"),
        ] {
            assert_eq!(qualified(given.to_string(), "reg"), want);
        }
    }
}
